/**
 * Database settings, read once from the environment and validated. A bad value stops start-up with
 * the variable's name and what is wrong with it; passwords never appear in messages.
 *
 * Our own variables:
 *   PREFECT_DATABASE_BACKEND   sqlite | postgres (default sqlite, or whatever the URL says)
 *   PREFECT_DATABASE_PATH      SQLite file (default $PREFECT_HOME/prefect.db, ~/.prefect/prefect.db); `:memory:`
 *   PREFECT_DATABASE_URL       postgresql://user:pass@host:5432/db (or a SQLite URL)
 * Prefect's own (PREFECT_SERVER_DATABASE_* with the PREFECT_API_DATABASE_* aliases) are understood too:
 *   CONNECTION_URL (sqlite+aiosqlite:///path, postgresql+asyncpg://...), DRIVER, HOST, PORT, USER, NAME,
 *   PASSWORD, MIGRATE_ON_START, TIMEOUT, CONNECTION_TIMEOUT, SQLALCHEMY_POOL_SIZE, SQLALCHEMY_MAX_OVERFLOW,
 *   SQLALCHEMY_POOL_RECYCLE, SQLALCHEMY_POOL_TIMEOUT, SQLALCHEMY_CONNECT_ARGS_APPLICATION_NAME,
 *   SQLALCHEMY_CONNECT_ARGS_SEARCH_PATH, SQLALCHEMY_CONNECT_ARGS_TLS_{ENABLED,CA_FILE,CERT_FILE,KEY_FILE,CHECK_HOSTNAME}.
 */
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { InvalidError } from "./errors.js";

/** Which database a configuration names. */
export type BackendName = "sqlite" | "postgres";

interface CommonConfig {
  /** Apply pending migrations when the database is opened. */
  readonly migrateOnStart: boolean;
  /** How long one statement (PostgreSQL) or one wait for the write lock (SQLite) may take. */
  readonly timeoutSeconds: number;
}

export interface SqliteConfig extends CommonConfig {
  readonly backend: "sqlite";
  /** Absolute file path, or `:memory:`. */
  readonly path: string;
}

export interface PostgresTls {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly checkHostname: boolean;
}

export interface PostgresConfig extends CommonConfig {
  readonly backend: "postgres";
  /** postgresql://user:password@host:port/database */
  readonly url: string;
  readonly poolSize: number;
  readonly connectionTimeoutSeconds: number;
  /** Close connections older than this many seconds (0: never). */
  readonly poolRecycleSeconds: number;
  readonly applicationName?: string;
  readonly searchPath?: string;
  readonly tls?: PostgresTls;
}

export type DatabaseConfig = SqliteConfig | PostgresConfig;

type Env = Readonly<Record<string, string | undefined>>;

/** Reads one setting from the first of its names that is set, remembering which name it was. */
function setting(env: Env, ...names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== "") return { name, value: value.trim() };
  }
  return undefined;
}

const prefectNames = (suffix: string) => [`PREFECT_SERVER_DATABASE_${suffix}`, `PREFECT_API_DATABASE_${suffix}`];

function fail(name: string, problem: string): never {
  throw new InvalidError(`Invalid database setting: ${name} ${problem}`, [{ path: [name], message: problem }], { reason: "misconfigured" });
}

function parseWith<T>(schema: z.ZodType<T>, found: { name: string; value: string } | undefined, fallback: T): T {
  if (!found) return fallback;
  const result = schema.safeParse(found.value);
  if (!result.success) fail(found.name, `${result.error.issues[0]?.message ?? "is not valid"} (got ${JSON.stringify(found.value)})`);
  return result.data;
}

const positiveNumber = z.coerce.number({ message: "must be a number" }).positive({ message: "must be a number greater than 0" });
const positiveInt = z.coerce.number({ message: "must be a whole number" }).int({ message: "must be a whole number" }).positive({ message: "must be a whole number greater than 0" });
const nonNegativeInt = z.coerce.number({ message: "must be a whole number" }).int({ message: "must be a whole number" }).min(0, { message: "must be a whole number of 0 or more" });
const boolean = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(["true", "false", "1", "0", "yes", "no", "on", "off"], { message: "must be true or false" }))
  .transform((v) => ["true", "1", "yes", "on"].includes(v));

/** Replaces the password in a connection URL, for anything that is shown to people. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^@/?#]*@/i, "$1:***@");
}

interface ParsedUrl {
  backend: BackendName;
  sqlitePath?: string;
  postgresUrl?: string;
}

function parseConnectionUrl(name: string, raw: string, password: string | undefined): ParsedUrl {
  let url = raw;
  if (/\$\{PREFECT_(SERVER|API)_DATABASE_PASSWORD\}/.test(url)) {
    if (password === undefined) fail(name, "refers to the database password placeholder but PREFECT_SERVER_DATABASE_PASSWORD is not set");
    url = url.replace(/\$\{PREFECT_(SERVER|API)_DATABASE_PASSWORD\}/g, encodeURIComponent(password));
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) fail(name, `must be a URL such as postgresql://user:password@host:5432/prefect or sqlite:///path/to/prefect.db (got ${JSON.stringify(redactUrl(raw))})`);
  if (scheme === "sqlite" || scheme.startsWith("sqlite+") || scheme === "file") {
    // SQLAlchemy form: sqlite+aiosqlite:///relative or ////absolute; also file:/abs and :memory: variants.
    let rest = url.slice(scheme.length + 1).replace(/\?.*$/, "");
    if (rest.startsWith("///")) rest = rest.slice(3);
    else if (rest.startsWith("//")) rest = rest.slice(2);
    if (rest === "" || rest.includes(":memory:") || /mode=memory/.test(url)) return { backend: "sqlite", sqlitePath: ":memory:" };
    return { backend: "sqlite", sqlitePath: decodeURIComponent(rest) };
  }
  if (scheme === "postgres" || scheme === "postgresql" || scheme.startsWith("postgresql+")) {
    const normalised = url.replace(/^[a-z0-9+.-]+:/i, "postgresql:");
    try {
      const parsed = new URL(normalised);
      if (!parsed.hostname && !parsed.searchParams.get("host")) fail(name, `needs a host (got ${JSON.stringify(redactUrl(raw))})`);
    } catch (error) {
      if (error instanceof InvalidError) throw error;
      fail(name, `is not a valid URL (got ${JSON.stringify(redactUrl(raw))})`);
    }
    return { backend: "postgres", postgresUrl: normalised };
  }
  fail(name, `names an unsupported database ${JSON.stringify(scheme)}; use sqlite or postgresql`);
}

function defaultSqlitePath(env: Env): string {
  const home = setting(env, "PREFECT_HOME")?.value ?? join(homedir(), ".prefect");
  return join(home.replace(/^~(?=$|\/)/, homedir()), "prefect.db");
}

function absolutePath(path: string): string {
  if (path === ":memory:") return path;
  const expanded = path.replace(/^~(?=$|\/)/, homedir());
  return isAbsolute(expanded) ? expanded : resolve(expanded);
}

function postgresUrlFromParts(env: Env): { name: string; url: string } | undefined {
  const driver = setting(env, ...prefectNames("DRIVER"));
  const host = setting(env, ...prefectNames("HOST"));
  if (!driver && !host) return undefined;
  if (driver && !/^postgres(ql)?(\+asyncpg)?$/.test(driver.value)) {
    if (/^sqlite/.test(driver.value)) return undefined;
    fail(driver.name, `names an unsupported driver ${JSON.stringify(driver.value)}; use postgresql+asyncpg or sqlite+aiosqlite`);
  }
  const user = setting(env, ...prefectNames("USER"));
  const name = setting(env, ...prefectNames("NAME"));
  const password = setting(env, ...prefectNames("PASSWORD"));
  const port = parseWith(positiveInt, setting(env, ...prefectNames("PORT")), 5432);
  if (!host) fail(prefectNames("HOST")[0]!, "is required when the driver is postgresql");
  if (!user) fail(prefectNames("USER")[0]!, "is required when the driver is postgresql");
  if (!name) fail(prefectNames("NAME")[0]!, "is required when the driver is postgresql");
  const auth = password ? `${encodeURIComponent(user.value)}:${encodeURIComponent(password.value)}` : encodeURIComponent(user.value);
  return {
    name: host.name,
    url: `postgresql://${auth}@${host.value}:${port}/${encodeURIComponent(name.value)}`,
  };
}

/** Reads and validates the database settings. Throws InvalidError naming the offending variable. */
export function loadDatabaseConfig(env: Env = process.env): DatabaseConfig {
  const backendSetting = setting(env, "PREFECT_DATABASE_BACKEND");
  const requestedBackend = parseWith(
    z.enum(["sqlite", "postgres", "postgresql"], { message: "must be sqlite or postgres" }).transform((v): BackendName => (v === "postgresql" ? "postgres" : v)),
    backendSetting ? { ...backendSetting, value: backendSetting.value.toLowerCase() } : undefined,
    undefined as BackendName | undefined,
  );

  const password = setting(env, ...prefectNames("PASSWORD"))?.value;
  const urlSetting = setting(env, "PREFECT_DATABASE_URL", ...prefectNames("CONNECTION_URL"));
  const fromParts = urlSetting ? undefined : postgresUrlFromParts(env);
  const parsed = urlSetting
    ? parseConnectionUrl(urlSetting.name, urlSetting.value, password)
    : fromParts
      ? parseConnectionUrl(fromParts.name, fromParts.url, password)
      : undefined;
  const source = urlSetting?.name ?? fromParts?.name;

  if (parsed && requestedBackend && parsed.backend !== requestedBackend) {
    fail("PREFECT_DATABASE_BACKEND", `is ${requestedBackend} but ${source} names a ${parsed.backend} database`);
  }
  const backend: BackendName = parsed?.backend ?? requestedBackend ?? "sqlite";

  const common: CommonConfig = {
    migrateOnStart: parseWith(boolean, setting(env, ...prefectNames("MIGRATE_ON_START")), true),
    timeoutSeconds: parseWith(positiveNumber, setting(env, ...prefectNames("TIMEOUT")), 10),
  };

  const pathSetting = setting(env, "PREFECT_DATABASE_PATH");
  if (backend === "sqlite") {
    if (pathSetting && parsed?.sqlitePath && source !== undefined) {
      fail("PREFECT_DATABASE_PATH", `conflicts with ${source}; set only one of them`);
    }
    const path = absolutePath(pathSetting?.value ?? parsed?.sqlitePath ?? defaultSqlitePath(env));
    return { backend, path, ...common };
  }

  if (!parsed?.postgresUrl) {
    fail("PREFECT_DATABASE_URL", "is required when PREFECT_DATABASE_BACKEND=postgres (postgresql://user:password@host:5432/database)");
  }
  if (pathSetting) fail("PREFECT_DATABASE_PATH", "applies to SQLite only, but the backend is postgres");

  const poolSize = parseWith(positiveInt, setting(env, ...prefectNames("SQLALCHEMY_POOL_SIZE"), "PREFECT_SQLALCHEMY_POOL_SIZE"), 10);
  const maxOverflow = parseWith(nonNegativeInt, setting(env, ...prefectNames("SQLALCHEMY_MAX_OVERFLOW"), "PREFECT_SQLALCHEMY_MAX_OVERFLOW"), 0);
  const connectionTimeout = parseWith(positiveNumber, setting(env, ...prefectNames("CONNECTION_TIMEOUT")), 5);
  const poolTimeout = parseWith(positiveNumber, setting(env, ...prefectNames("SQLALCHEMY_POOL_TIMEOUT")), connectionTimeout);
  const recycle = parseWith(z.coerce.number({ message: "must be a number of seconds" }), setting(env, ...prefectNames("SQLALCHEMY_POOL_RECYCLE")), 3600);
  const connectArg = (suffix: string) => setting(env, `PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_${suffix}`);
  const tlsEnabled = parseWith(boolean, connectArg("TLS_ENABLED"), false);

  return {
    backend,
    url: parsed.postgresUrl,
    ...common,
    poolSize: poolSize + maxOverflow,
    connectionTimeoutSeconds: Math.max(connectionTimeout, poolTimeout),
    poolRecycleSeconds: Math.max(recycle, 0),
    ...(connectArg("APPLICATION_NAME") ? { applicationName: connectArg("APPLICATION_NAME")!.value } : {}),
    ...(connectArg("SEARCH_PATH") ? { searchPath: connectArg("SEARCH_PATH")!.value } : {}),
    ...(tlsEnabled
      ? {
          tls: {
            ...(connectArg("TLS_CA_FILE") ? { caFile: connectArg("TLS_CA_FILE")!.value } : {}),
            ...(connectArg("TLS_CERT_FILE") ? { certFile: connectArg("TLS_CERT_FILE")!.value } : {}),
            ...(connectArg("TLS_KEY_FILE") ? { keyFile: connectArg("TLS_KEY_FILE")!.value } : {}),
            checkHostname: parseWith(boolean, connectArg("TLS_CHECK_HOSTNAME"), true),
          },
        }
      : {}),
  };
}

/** Where the database lives, safe to print (no password). */
export function describeLocation(config: DatabaseConfig): string {
  return config.backend === "sqlite" ? (config.path === ":memory:" ? "in memory" : config.path) : redactUrl(config.url);
}
