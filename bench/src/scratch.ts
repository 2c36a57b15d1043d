/**
 * A throwaway database per backend: a SQLite file in a temp folder, or a PostgreSQL database created
 * on PREFECT_BENCH_POSTGRES_URL's server. The server migrates it when it starts; it is deleted
 * (dropped) afterwards, whatever happened.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DatabaseConfig, loadDatabaseConfig, redactUrl } from "@prefect/db";
import pg from "pg";
import { openPostgresRaw, openSqliteRaw, type RawDatabase } from "./raw.js";
import type { BackendName } from "./settings.js";

export interface ScratchDatabase {
  readonly backend: BackendName;
  /** The settings that point the server and the worker at it. */
  readonly env: Record<string, string>;
  /** The same, for @prefect/db in this process. */
  readonly config: DatabaseConfig;
  /** For PostgreSQL, its URL (the round-trip count puts a counting proxy in front of it). */
  readonly url: string | null;
  /** The raw driver on it, with `poolSize` connections on PostgreSQL. */
  openRaw(poolSize?: number): RawDatabase;
  drop(): Promise<void>;
}

export class UnreachableError extends Error {}

let created = 0;

export async function createScratch(backend: BackendName, postgresUrl: string): Promise<ScratchDatabase> {
  if (backend === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "prefect-bench-"));
    const path = join(dir, "bench.db");
    return {
      backend,
      env: { PREFECT_DATABASE_BACKEND: "sqlite", PREFECT_DATABASE_PATH: path },
      config: loadDatabaseConfig({ PREFECT_DATABASE_PATH: path }),
      url: null,
      openRaw: () => openSqliteRaw(path),
      async drop() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const admin = new pg.Client({ connectionString: postgresUrl });
  try {
    await admin.connect();
  } catch (error) {
    throw new UnreachableError(`no PostgreSQL server at ${redactUrl(postgresUrl)} (${error instanceof Error ? error.message : String(error)})`);
  }
  created += 1;
  const name = `prefect_bench_${process.pid}_${created}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  const scratchUrl = url.toString();
  return {
    backend,
    env: { PREFECT_DATABASE_BACKEND: "postgres", PREFECT_DATABASE_URL: scratchUrl },
    config: loadDatabaseConfig({ PREFECT_DATABASE_BACKEND: "postgres", PREFECT_DATABASE_URL: scratchUrl }),
    url: scratchUrl,
    openRaw: (poolSize = 10) => openPostgresRaw(scratchUrl, poolSize),
    async drop() {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
