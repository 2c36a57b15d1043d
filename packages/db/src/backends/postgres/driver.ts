/**
 * A node-postgres pool. Every transaction keeps its statements on one pooled connection at READ
 * COMMITTED (Prefect relies on it: conditional updates of concurrency slots are re-evaluated after a
 * concurrent commit). Sessions run in UTC, and timestamptz values are read back as canonical
 * timestamps with their microseconds. Hot statements are prepared once per connection.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import pg from "pg";
import type { PostgresConfig } from "../../config.js";
import type { Driver, Queryable, Row } from "../../driver/types.js";
import { InvalidError } from "../../errors.js";
import type { Sql } from "../../sql.js";
import type { Timestamp } from "../../timestamps.js";
import { postgresDialect } from "./dialect.js";
import { EVENTS_CHANNEL } from "./event-log.js";
import { translatePostgresError } from "./errors.js";

export const MIN_POSTGRES_VERSION_NUM = 130000;

const TIMESTAMPTZ_OID = 1184;
const TIMESTAMP_OID = 1114;
const INT8_OID = 20;

/** `2026-11-22 02:34:42.123456+00` (the session is in UTC) to `2026-11-22T02:34:42.123456Z`. */
export function parsePostgresTimestamp(text: string): Timestamp {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:\+00(?::00)?)?$/.exec(text);
  if (match) return `${match[1]}T${match[2]}.${(match[3] ?? "").padEnd(6, "0")}Z` as Timestamp;
  throw new RangeError(`unexpected timestamp from PostgreSQL: ${text}`);
}

const typeParsers = {
  getTypeParser(oid: number, format?: string): (value: string) => unknown {
    if (format === undefined || format === "text") {
      if (oid === TIMESTAMPTZ_OID || oid === TIMESTAMP_OID) return parsePostgresTimestamp;
      if (oid === INT8_OID) return Number;
    }
    return pg.types.getTypeParser(oid, format as "text");
  },
};

/** Throws unless the server is PostgreSQL 13 or newer (gen_random_uuid() in core, ...). */
export function checkPostgresVersion(versionNum: number, version: string): void {
  if (versionNum < MIN_POSTGRES_VERSION_NUM) {
    throw new InvalidError(`PostgreSQL ${version} is too old: this server needs PostgreSQL 13 or newer.`, [], { reason: "misconfigured" });
  }
}

function poolConfig(config: PostgresConfig): pg.PoolConfig {
  const options = ["-c TimeZone=UTC"];
  if (config.searchPath) options.push(`-c search_path=${config.searchPath.replace(/[\s\\]/g, "")}`);
  return {
    connectionString: config.url,
    max: config.poolSize,
    connectionTimeoutMillis: Math.round(config.connectionTimeoutSeconds * 1000),
    idleTimeoutMillis: 30_000,
    ...(config.poolRecycleSeconds > 0 ? { maxLifetimeSeconds: config.poolRecycleSeconds } : {}),
    statement_timeout: Math.round(config.timeoutSeconds * 1000),
    application_name: config.applicationName ?? "prefect-ts",
    options: options.join(" "),
    types: typeParsers,
    ...(config.tls
      ? {
          ssl: {
            rejectUnauthorized: true,
            ...(config.tls.caFile ? { ca: readFileSync(config.tls.caFile, "utf8") } : {}),
            ...(config.tls.certFile ? { cert: readFileSync(config.tls.certFile, "utf8") } : {}),
            ...(config.tls.keyFile ? { key: readFileSync(config.tls.keyFile, "utf8") } : {}),
            ...(config.tls.checkHostname ? {} : { checkServerIdentity: () => undefined }),
          },
        }
      : {}),
  };
}

/** How long a dropped LISTEN connection waits before connecting again. */
const LISTEN_RETRY_MS = 1_000;

/** Advisory lock key for migrations: any fixed 64-bit number unlikely to clash with others'. */
const MIGRATION_LOCK_KEY = "72707369455178";

type Client = pg.Pool | pg.PoolClient | pg.Client;

/** Statement names for node-postgres' per-connection prepared-statement cache. */
class StatementNames {
  readonly #names = new Map<string, string>();
  nameFor(text: string): string {
    let name = this.#names.get(text);
    if (!name) {
      name = `prefect_${this.#names.size + 1}`;
      this.#names.set(text, name);
    }
    return name;
  }
}

async function run<R>(client: Client, text: string, params: readonly unknown[], name?: string): Promise<pg.QueryResult<R & pg.QueryResultRow>> {
  try {
    return await client.query<R & pg.QueryResultRow>({ text, values: params as unknown[], ...(name ? { name } : {}) });
  } catch (error) {
    throw translatePostgresError(error);
  }
}

/** For the 'error' events of connections: their statements fail with the error, which callers see. */
const ignoreConnectionError = () => undefined;

export class PostgresDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly inTransaction = false;
  readonly #pool: pg.Pool;
  readonly #names = new StatementNames();
  readonly #config: PostgresConfig;
  #version = "";
  /** The transaction the current async context runs in, so that calls on the driver join it. */
  readonly #current = new AsyncLocalStorage<PostgresTransaction>();

  private constructor(config: PostgresConfig) {
    this.#config = config;
    this.#pool = new pg.Pool(poolConfig(config));
    // An idle connection that dies (server restart) is dropped by the pool; never crash on it.
    this.#pool.on("error", ignoreConnectionError);
  }

  static async open(config: PostgresConfig): Promise<PostgresDriver> {
    const driver = new PostgresDriver(config);
    try {
      const rows = await driver.queryText<{ server_version: string; num: string }>(
        "SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS num",
        [],
      );
      const version = rows[0]!.server_version;
      checkPostgresVersion(Number(rows[0]!.num), version);
      driver.#version = version;
      return driver;
    } catch (error) {
      await driver.close();
      throw error;
    }
  }

  get pool(): pg.Pool {
    return this.#pool;
  }

  nameFor(text: string): string {
    return this.#names.nameFor(text);
  }

  #joined(): PostgresTransaction | undefined {
    const tx = this.#current.getStore();
    return tx && !tx.finished ? tx : undefined;
  }

  query<R = Row>(query: Sql): Promise<R[]> {
    const tx = this.#joined();
    if (tx) return tx.query<R>(query);
    const { text, params } = postgresDialect.render(query);
    return run<R>(this.#pool, text, params).then((r) => r.rows);
  }

  execute(query: Sql): Promise<number> {
    const tx = this.#joined();
    if (tx) return tx.execute(query);
    const { text, params } = postgresDialect.render(query);
    return run(this.#pool, text, params).then((r) => r.rowCount ?? 0);
  }

  queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    const tx = this.#joined();
    if (tx) return tx.queryText<R>(text, params);
    return run<R>(this.#pool, text, params, this.nameFor(text)).then((r) => r.rows);
  }

  executeText(text: string, params: readonly unknown[]): Promise<number> {
    const tx = this.#joined();
    if (tx) return tx.executeText(text, params);
    return run(this.#pool, text, params, this.nameFor(text)).then((r) => r.rowCount ?? 0);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const joined = this.#joined();
    if (joined) return joined.transaction(fn);
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw translatePostgresError(error);
    }
    let broken: Error | undefined;
    // A connection that dies while checked out (server restart, terminated backend) emits 'error' on
    // the client, which crashes the process without a listener; its pending statement fails anyway,
    // and the failed ROLLBACK below drops the connection from the pool.
    client.on("error", ignoreConnectionError);
    try {
      await run(client, "BEGIN", []);
      const tx = new PostgresTransaction(client, this);
      try {
        const result = await this.#current.run(tx, () => fn(tx));
        tx.finish();
        // A statement that failed (its error caught by `fn`) aborts the transaction, and PostgreSQL then
        // answers COMMIT with a rollback, without an error.
        const committed = await run(client, "COMMIT", []);
        if (committed.command === "ROLLBACK") {
          throw new InvalidError("The transaction was rolled back because a statement in it failed; nothing was committed.", [], { reason: "transaction_aborted" });
        }
        return result;
      } catch (error) {
        tx.finish();
        await client.query("ROLLBACK").catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw translatePostgresError(error);
      }
    } finally {
      client.off("error", ignoreConnectionError);
      client.release(broken);
    }
  }

  async serverVersion(): Promise<string> {
    return `PostgreSQL ${this.#version}`;
  }

  async executeScript(tx: Queryable, script: string): Promise<void> {
    if (!(tx instanceof PostgresTransaction)) throw new Error("migration scripts run inside a transaction");
    // Migrations may run longer than an API statement is allowed to.
    await run(tx.client, "SET LOCAL statement_timeout = 0", []);
    await run(tx.client, script, []);
  }

  async withMigrationLock<T>(fn: () => Promise<T>): Promise<T> {
    // A connection of its own, outside the pool, so that the migrations' transactions can still use
    // every pooled connection while this one holds the lock.
    const client = new pg.Client({ ...poolConfig(this.#config), statement_timeout: 0 });
    client.on("error", ignoreConnectionError);
    try {
      await client.connect();
      await run(client, "SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw translatePostgresError(error);
    }
    try {
      return await fn();
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  }

  watchEventAppends(wake: () => void): () => Promise<void> {
    let stopped = false;
    let current: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    const reconnectLater = () => {
      if (stopped || retry) return;
      retry = setTimeout(() => {
        retry = undefined;
        void listen();
      }, LISTEN_RETRY_MS);
      retry.unref();
    };
    const listen = async () => {
      const client = new pg.Client({ ...poolConfig(this.#config), statement_timeout: 0 });
      client.on("notification", () => wake());
      client.on("error", () => undefined);
      client.on("end", () => {
        if (current === client) current = undefined;
        reconnectLater();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${EVENTS_CHANNEL}`);
        if (stopped) return void client.end().catch(() => undefined);
        current = client;
        wake();
      } catch {
        await client.end().catch(() => undefined);
        reconnectLater();
      }
    };
    void listen();
    return async () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      await current?.end().catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    if (!this.#pool.ended) await this.#pool.end();
  }
}

class PostgresTransaction implements Queryable {
  readonly dialect = postgresDialect;
  readonly inTransaction = true;
  #finished = false;
  #savepoints = 0;

  constructor(
    readonly client: pg.PoolClient,
    readonly driver: PostgresDriver,
  ) {}

  finish(): void {
    this.#finished = true;
  }

  get finished(): boolean {
    return this.#finished;
  }

  #check(): void {
    if (this.#finished) throw new Error("This transaction has already finished; use the database outside it.");
  }

  async query<R = Row>(query: Sql): Promise<R[]> {
    this.#check();
    const { text, params } = postgresDialect.render(query);
    return (await run<R>(this.client, text, params)).rows;
  }

  async execute(query: Sql): Promise<number> {
    this.#check();
    const { text, params } = postgresDialect.render(query);
    return (await run(this.client, text, params)).rowCount ?? 0;
  }

  async queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    this.#check();
    return (await run<R>(this.client, text, params, this.driver.nameFor(text))).rows;
  }

  async executeText(text: string, params: readonly unknown[]): Promise<number> {
    this.#check();
    return (await run(this.client, text, params, this.driver.nameFor(text))).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#check();
    const name = `sp_${++this.#savepoints}`;
    await run(this.client, `SAVEPOINT ${name}`, []);
    try {
      const result = await fn(this);
      await run(this.client, `RELEASE SAVEPOINT ${name}`, []);
      return result;
    } catch (error) {
      await run(this.client, `ROLLBACK TO SAVEPOINT ${name}`, []);
      throw translatePostgresError(error);
    }
  }
}
