import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, inject } from "vitest";
import { type Database, type DatabaseConfig, loadDatabaseConfig, openDatabase } from "../index.js";
import { selectedBackends, type TestBackend } from "./backends.js";
import { createTestDatabase } from "./postgres.js";

export interface TestDatabase {
  readonly db: Database;
  readonly backend: TestBackend;
  readonly config: DatabaseConfig;
  cleanup(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** An empty database (no tables), not migrated. */
  readonly empty?: boolean;
}

/** A location for a fresh database on `backend`, and how to remove it afterwards. */
export async function freshConfig(backend: TestBackend, options: TestDatabaseOptions = {}): Promise<{ config: DatabaseConfig; remove: () => Promise<void> }> {
  if (backend === "sqlite-memory") return { config: loadDatabaseConfig({ PREFECT_DATABASE_PATH: ":memory:" }), remove: async () => undefined };
  if (backend === "sqlite-file") {
    const dir = mkdtempSync(join(tmpdir(), "prefect-db-test-"));
    return {
      config: loadDatabaseConfig({ PREFECT_DATABASE_PATH: join(dir, "prefect.db") }),
      remove: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const created = await createTestDatabase(inject("postgresUrl"), inject("postgresTemplate"), { empty: options.empty ?? false });
  return { config: loadDatabaseConfig({ PREFECT_DATABASE_URL: created.url }), remove: created.release };
}

/** Opens a fresh database on `backend`: migrated (PostgreSQL clones the migrated template), or empty. */
export async function openTestDatabase(backend: TestBackend, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const { config, remove } = await freshConfig(backend, options);
  const migrate = !options.empty && backend !== "postgres";
  const db = await openDatabase(config, { migrate });
  return {
    db,
    backend,
    config,
    cleanup: async () => {
      await db.close();
      await remove();
    },
  };
}

export interface BackendContext {
  /** The current test's database (fresh for every test). */
  readonly db: Database;
  readonly backend: TestBackend;
  /** Where the current test's database is, for opening more connections to it (not sqlite-memory's). */
  readonly config: DatabaseConfig;
}

/** Declares `body` once per selected backend; every test gets a fresh, migrated database. */
export function describeEachBackend(title: string, body: (t: BackendContext) => void, options: TestDatabaseOptions = {}): void {
  for (const backend of selectedBackends()) {
    describe(`${title} [${backend}]`, () => {
      let current: TestDatabase | undefined;
      beforeEach(async () => {
        current = await openTestDatabase(backend, options);
      });
      afterEach(async () => {
        await current?.cleanup();
        current = undefined;
      });
      body({
        get db() {
          if (!current) throw new Error("the database is only available inside a test");
          return current.db;
        },
        get config() {
          if (!current) throw new Error("the database is only available inside a test");
          return current.config;
        },
        backend,
      });
    });
  }
}
