import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeLocation, InvalidError, loadDatabaseConfig, redactUrl } from "../../src/index.js";

const fails = (env: Record<string, string>) => {
  try {
    loadDatabaseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidError);
    expect((error as InvalidError).reason).toBe("misconfigured");
    return (error as Error).message;
  }
  throw new Error("expected the settings to be refused");
};

describe("database settings", () => {
  it("defaults to SQLite in ~/.prefect/prefect.db, migrating on start", () => {
    const config = loadDatabaseConfig({});
    expect(config).toEqual({ backend: "sqlite", path: join(homedir(), ".prefect", "prefect.db"), migrateOnStart: true, timeoutSeconds: 10 });
  });

  it("puts the default file under PREFECT_HOME", () => {
    expect(loadDatabaseConfig({ PREFECT_HOME: "/srv/prefect" })).toMatchObject({ path: "/srv/prefect/prefect.db" });
  });

  it("takes PREFECT_DATABASE_PATH, relative paths made absolute, and :memory:", () => {
    expect(loadDatabaseConfig({ PREFECT_DATABASE_PATH: "/data/p.db" })).toMatchObject({ backend: "sqlite", path: "/data/p.db" });
    expect(loadDatabaseConfig({ PREFECT_DATABASE_PATH: "rel/p.db" })).toMatchObject({ path: join(process.cwd(), "rel/p.db") });
    expect(loadDatabaseConfig({ PREFECT_DATABASE_PATH: ":memory:" })).toMatchObject({ path: ":memory:" });
  });

  it("understands Prefect's SQLAlchemy URLs for both backends", () => {
    expect(loadDatabaseConfig({ PREFECT_SERVER_DATABASE_CONNECTION_URL: "sqlite+aiosqlite:////var/lib/prefect.db" })).toMatchObject({
      backend: "sqlite",
      path: "/var/lib/prefect.db",
    });
    expect(loadDatabaseConfig({ PREFECT_API_DATABASE_CONNECTION_URL: "sqlite+aiosqlite:///file::memory:?cache=shared&uri=true" })).toMatchObject({
      path: ":memory:",
    });
    expect(loadDatabaseConfig({ PREFECT_SERVER_DATABASE_CONNECTION_URL: "postgresql+asyncpg://u:p@db:5432/prefect" })).toMatchObject({
      backend: "postgres",
      url: "postgresql://u:p@db:5432/prefect",
    });
  });

  it("builds a PostgreSQL URL from Prefect's component settings and substitutes the password", () => {
    expect(
      loadDatabaseConfig({
        PREFECT_SERVER_DATABASE_DRIVER: "postgresql+asyncpg",
        PREFECT_SERVER_DATABASE_HOST: "db",
        PREFECT_SERVER_DATABASE_USER: "prefect",
        PREFECT_SERVER_DATABASE_NAME: "orion",
        PREFECT_SERVER_DATABASE_PASSWORD: "p@ss",
      }),
    ).toMatchObject({ backend: "postgres", url: "postgresql://prefect:p%40ss@db:5432/orion" });
    expect(
      loadDatabaseConfig({
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Prefect's own placeholder syntax, not a template
        PREFECT_API_DATABASE_CONNECTION_URL: "postgresql+asyncpg://prefect:${PREFECT_API_DATABASE_PASSWORD}@db/prefect",
        PREFECT_API_DATABASE_PASSWORD: "s3cret",
      }),
    ).toMatchObject({ url: "postgresql://prefect:s3cret@db/prefect" });
  });

  it("reads pool, timeout and migration settings, with Prefect's aliases", () => {
    const config = loadDatabaseConfig({
      PREFECT_DATABASE_URL: "postgresql://u@h/db",
      PREFECT_SQLALCHEMY_POOL_SIZE: "5",
      PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW: "10",
      PREFECT_API_DATABASE_TIMEOUT: "2.5",
      PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT: "3",
      PREFECT_SERVER_DATABASE_MIGRATE_ON_START: "false",
      PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_APPLICATION_NAME: "api",
    });
    expect(config).toMatchObject({ poolSize: 15, timeoutSeconds: 2.5, connectionTimeoutSeconds: 3, migrateOnStart: false, applicationName: "api" });
    expect(loadDatabaseConfig({ PREFECT_DATABASE_URL: "postgresql://u@h/db" })).toMatchObject({ poolSize: 10 });
  });

  it("names the variable and the problem when a value is bad", () => {
    expect(fails({ PREFECT_DATABASE_BACKEND: "mysql" })).toMatch(/PREFECT_DATABASE_BACKEND must be sqlite or postgres \(got "mysql"\)/);
    expect(fails({ PREFECT_DATABASE_BACKEND: "postgres" })).toMatch(/PREFECT_DATABASE_URL is required/);
    expect(fails({ PREFECT_DATABASE_URL: "postgresql://u@h/db", PREFECT_SQLALCHEMY_POOL_SIZE: "lots" })).toMatch(/PREFECT_SQLALCHEMY_POOL_SIZE must be a whole number/);
    expect(fails({ PREFECT_SERVER_DATABASE_MIGRATE_ON_START: "maybe" })).toMatch(/PREFECT_SERVER_DATABASE_MIGRATE_ON_START must be true or false/);
    expect(fails({ PREFECT_DATABASE_URL: "mysql://u:p@h/db" })).toMatch(/PREFECT_DATABASE_URL names an unsupported database "mysql"/);
    expect(fails({ PREFECT_DATABASE_BACKEND: "sqlite", PREFECT_DATABASE_URL: "postgresql://u@h/db" })).toMatch(/PREFECT_DATABASE_BACKEND is sqlite/);
    expect(fails({ PREFECT_DATABASE_URL: "postgresql://u@h/db", PREFECT_DATABASE_PATH: "/x.db" })).toMatch(/PREFECT_DATABASE_PATH applies to SQLite only/);
  });

  it("never shows a password", () => {
    const message = fails({ PREFECT_DATABASE_URL: "postgresql://user:hunter2@/db" });
    expect(message).not.toContain("hunter2");
    expect(message).toContain("user:***@");
    expect(redactUrl("postgresql://user:hunter2@host:5432/db")).toBe("postgresql://user:***@host:5432/db");
    expect(describeLocation(loadDatabaseConfig({ PREFECT_DATABASE_URL: "postgresql://user:hunter2@host/db" }))).toBe("postgresql://user:***@host/db");
  });
});
