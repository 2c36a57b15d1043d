import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * The migrated template database of one test run: its own name per run, so that runs sharing one
 * PostgreSQL server (PREFECT_TEST_POSTGRES_URL) never drop each other's template.
 */
export function templateDatabaseName(): string {
  return `prefect_test_template_${randomBytes(6).toString("hex")}`;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export interface PostgresServer {
  url: string;
  stop: () => Promise<void>;
}

/** A PostgreSQL server for the test run: a testcontainers container, else PREFECT_TEST_POSTGRES_URL. */
export async function startPostgres(): Promise<PostgresServer> {
  const fallback = process.env.PREFECT_TEST_POSTGRES_URL;
  const image = process.env.PREFECT_TEST_POSTGRES_IMAGE || "postgres:15";
  let containerError: unknown;
  try {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer(image).withCommand(["-c", "max_connections=300", "-c", "fsync=off"]).start();
    return { url: container.getConnectionUri(), stop: async () => void (await container.stop()) };
  } catch (error) {
    containerError = error;
  }
  if (fallback) {
    console.warn(`PostgreSQL container could not start (${String(containerError)}); using PREFECT_TEST_POSTGRES_URL instead.`);
    const client = new pg.Client({ connectionString: fallback });
    await client.connect();
    await client.end();
    return { url: fallback, stop: async () => undefined };
  }
  throw new Error(
    `The tests need PostgreSQL but neither a container (image ${image}) could start nor PREFECT_TEST_POSTGRES_URL names a server. ` +
      `Run with PREFECT_TEST_BACKEND=sqlite to test SQLite only. Container error: ${String(containerError)}`,
    { cause: containerError },
  );
}

/** Creates a database for one test: a copy of the migrated template, or an empty one. */
export async function createTestDatabase(adminUrl: string, template: string, options: { empty?: boolean } = {}): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `prefect_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(options.empty ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A connection of a test's own to a PostgreSQL database, for what the repositories do not offer (locks, pg_stat_activity). */
export interface PostgresSession {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export async function openPostgresSession(url: string): Promise<PostgresSession> {
  const client = new pg.Client({ connectionString: url });
  // A session whose backend is terminated fails its statements; the 'error' event must not crash the test.
  client.on("error", () => undefined);
  await client.connect();
  return {
    query: async <R extends Record<string, unknown>>(text: string, params: readonly unknown[] = []) => (await client.query<R>(text, [...params])).rows,
    close: () => client.end().catch(() => undefined),
  };
}

/**
 * Terminates every connection to `session`'s database but its own (to the clients, what a server
 * restart looks like); returns how many were terminated.
 */
export async function terminateConnections(session: PostgresSession): Promise<number> {
  const rows = await session.query<{ terminated: boolean }>(
    "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
  );
  return rows.filter((row) => row.terminated).length;
}
