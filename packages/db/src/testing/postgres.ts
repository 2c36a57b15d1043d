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

/** Names of a template's copies: the template's name, this, a random part. */
const COPY_SUFFIX = "__";

/**
 * Clean copies of the template this process keeps for its next tests, by admin URL and template.
 * Copying a database (CREATE DATABASE ... TEMPLATE) takes most of a second on a small machine, and
 * dropping one more; emptying the tables a test wrote takes a few milliseconds.
 */
const spare = new Map<string, string[]>();
/** The shape (columns, indexes, constraints, applied migrations) of a fresh copy of each template. */
const shapes = new Map<string, string>();

const SHAPE = `SELECT
  (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public') || '/' ||
  (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public') || '/' ||
  (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public') || '/' ||
  (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) || '/' ||
  (SELECT count(*) FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL) AS shape`;

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Empties a used copy of the template for the next test: ends every other session on it (a server
 * process a test left behind must not write into the next test's database), checks that its schema
 * is still the template's, and deletes every row but the migration history. False when it cannot
 * be reused.
 */
async function emptyForReuse(url: string, key: string): Promise<boolean> {
  try {
    return await withClient(url, async (client) => {
      await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
      const shape = (await client.query<{ shape: string }>(SHAPE)).rows[0]?.shape;
      if (!shape || shape !== shapes.get(key)) return false;
      const tables = await client.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'",
      );
      const deletes = tables.rows.map((t) => `DELETE FROM "${t.name.replace(/"/g, '""')}";`).join(" ");
      await client.query(`SET lock_timeout = '5s'; SET session_replication_role = replica; ${deletes}`);
      return true;
    });
  } catch {
    return false;
  }
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/**
 * A database for one test: a copy of the migrated template (one this process emptied after an
 * earlier test, else a new one), or an empty one. `release` empties it for this process's next test,
 * or drops it when that cannot be done (an empty database, a changed schema).
 */
export async function createTestDatabase(
  adminUrl: string,
  template: string,
  options: { empty?: boolean } = {},
): Promise<{ url: string; release: () => Promise<void> }> {
  const key = `${adminUrl} ${template}`;
  const reused = options.empty ? undefined : spare.get(key)?.pop();
  const name = reused ?? `${template}${COPY_SUFFIX}${randomBytes(6).toString("hex")}`;
  const url = withDatabase(adminUrl, name);
  if (!reused) {
    await withClient(adminUrl, (client) => client.query(options.empty ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${template}`));
    if (!options.empty && !shapes.has(key)) {
      const shape = await withClient(url, async (client) => (await client.query<{ shape: string }>(SHAPE)).rows[0]?.shape);
      if (shape) shapes.set(key, shape);
    }
  }
  return {
    url,
    release: async () => {
      if (!options.empty && (await emptyForReuse(url, key))) {
        const list = spare.get(key) ?? [];
        list.push(name);
        spare.set(key, list);
        return;
      }
      await dropDatabase(adminUrl, name);
    },
  };
}

/** Drops every database made from `template` (at the end of the run, with the template). */
export async function dropCopies(adminUrl: string, template: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    const copies = await client.query<{ name: string }>("SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1)", [`${template}${COPY_SUFFIX}`]);
    for (const { name } of copies.rows) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
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
