/**
 * A node-postgres pool. Every transaction keeps its statements on one pooled connection at READ
 * COMMITTED (Prefect relies on it: conditional updates of concurrency slots are re-evaluated after a
 * concurrent commit). Sessions run in UTC, and timestamptz values are read back as canonical
 * timestamps with their microseconds. Statements are prepared once per connection (StatementNames).
 * Connections pipeline (node-postgres' `pipeline` mode), so that a transaction's BEGIN costs no round
 * trip.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import type { PostgresConfig } from "../../config.js";
import type { Driver, Queryable, Row } from "../../driver/types.js";
import { TransactionScope } from "../../driver/scope.js";
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
    // A statement is written without waiting for the answer to the one before it: a transaction's
    // BEGIN goes out with its first statement.
    pipeline: true,
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

/**
 * Most statement texts given a name. Beyond it (filters composed into ever new texts), a statement is
 * parsed and planned each time it runs, as an unnamed one.
 */
const MAX_NAMED_STATEMENTS = 1000;

/**
 * Statement names for node-postgres' per-connection prepared-statement cache: a named statement is
 * parsed once per connection and its plan kept, which on PostgreSQL costs more than running it (a
 * flow run read with its state and pool: about 1.8k reads/s unnamed, 5k named, on one connection).
 */
class StatementNames {
  readonly #names = new Map<string, string>();
  nameFor(text: string): string | undefined {
    let name = this.#names.get(text);
    if (!name && this.#names.size < MAX_NAMED_STATEMENTS) {
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

/** The head an append's notification names (its payload: a position), if it names one. */
function headOf(payload: string | undefined): number | undefined {
  const head = Number(payload);
  return payload && Number.isSafeInteger(head) && head > 0 ? head : undefined;
}

/** For the 'error' events of connections: their statements fail with the error, which callers see. */
const ignoreConnectionError = () => undefined;

export class PostgresDriver implements Driver {
  readonly dialect = postgresDialect;
  readonly inTransaction = false;
  readonly coalescesReads = true;
  readonly #pool: pg.Pool;
  readonly #names = new StatementNames();
  readonly #config: PostgresConfig;
  #version = "";
  /** Where calls on the driver from inside its own transactions are caught (see driver/scope.ts). */
  readonly #scope = new TransactionScope<PostgresTransaction>();

  private constructor(config: PostgresConfig) {
    this.#config = config;
    this.#pool = new pg.Pool(poolConfig(config));
    // An idle connection that dies (server restart) is dropped by the pool; never crash on it.
    this.#pool.on("error", ignoreConnectionError);
    // Nor on a connection that dies while checked out between two of its statements (or, pipelining,
    // before its next statement was answered): node-postgres then emits 'error' on the client, which
    // without a listener crashes the process. Its statements fail anyway, which callers see, and a
    // connection that failed is dropped when it is released.
    this.#pool.on("connect", (client) => client.on("error", ignoreConnectionError));
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

  nameFor(text: string): string | undefined {
    return this.#names.nameFor(text);
  }

  query<R = Row>(query: Sql): Promise<R[]> {
    this.#scope.check();
    const { text, params } = postgresDialect.render(query);
    return run<R>(this.#pool, text, params, this.nameFor(text)).then((r) => r.rows);
  }

  execute(query: Sql): Promise<number> {
    this.#scope.check();
    const { text, params } = postgresDialect.render(query);
    return run(this.#pool, text, params, this.nameFor(text)).then((r) => r.rowCount ?? 0);
  }

  queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    this.#scope.check();
    return run<R>(this.#pool, text, params, this.nameFor(text)).then((r) => r.rows);
  }

  queryFinal<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  queryThenCommit<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  executeText(text: string, params: readonly unknown[]): Promise<number> {
    this.#scope.check();
    return run(this.#pool, text, params, this.nameFor(text)).then((r) => r.rowCount ?? 0);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#scope.check();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw translatePostgresError(error);
    }
    // A connection that dies meanwhile fails its statements; the failed ROLLBACK below drops it from the pool.
    let broken: Error | undefined;
    const tx = new PostgresTransaction(client, this);
    try {
      const result = await this.#scope.run(tx, () => fn(tx));
      tx.finish();
      // Nothing was sent, nothing to commit; or COMMIT went with the last statement.
      if (!tx.begun || tx.committed) return result;
      // A statement that failed (its error caught by `fn`) aborts the transaction, and PostgreSQL then
      // answers COMMIT with a rollback, without an error.
      const committed = await run(client, "COMMIT", []);
      if (committed.command === "ROLLBACK") {
        throw new InvalidError("The transaction was rolled back because a statement in it failed; nothing was committed.", [], { reason: "transaction_aborted" });
      }
      return result;
    } catch (error) {
      tx.finish();
      if (tx.committed) {
        // COMMIT went with the last statement and something failed after or with it: the connection
        // may be gone (no ROLLBACK tells), so it is not reused.
        broken = error instanceof Error ? error : new Error(String(error));
      } else if (tx.begun) {
        await client.query("ROLLBACK").catch((rollbackError: Error) => {
          broken = rollbackError;
        });
      }
      throw translatePostgresError(error);
    } finally {
      client.release(broken);
    }
  }

  async serverVersion(): Promise<string> {
    return `PostgreSQL ${this.#version}`;
  }

  async executeScript(tx: Queryable, script: string): Promise<void> {
    if (!(tx instanceof PostgresTransaction)) throw new Error("migration scripts run inside a transaction");
    // Migrations may run longer than an API statement is allowed to.
    await tx.executeText("SET LOCAL statement_timeout = 0", []);
    await tx.executeScript(script);
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

  watchEventAppends(wake: (head?: number) => void): () => Promise<void> {
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
      client.on("notification", (message) => wake(headOf(message.payload)));
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

/**
 * A transaction on one pooled connection. Its BEGIN is not a round trip of its own: it goes out with
 * the transaction's first statement, in one write on a pipelining connection (BEGIN as a simple
 * query, then the statement with its Sync), and a transaction that sends nothing sends no BEGIN.
 */
class PostgresTransaction implements Queryable {
  readonly dialect = postgresDialect;
  readonly inTransaction = true;
  readonly coalescesReads = false;
  #finished = false;
  #begun = false;
  /** A final write went alone (see `queryFinal`): every statement after it goes alone too. */
  #alone = false;
  /** COMMIT went with the last statement (see `queryThenCommit`): every statement after it goes alone. */
  #committed = false;
  #savepoints = 0;
  /** Nested transactions (savepoints) open. */
  #depth = 0;
  /**
   * Savepoint statements that go out with the transaction's next statement, in the same write: a
   * nested transaction's SAVEPOINT with its first statement, its RELEASE with whatever follows it
   * (COMMIT releases every savepoint, so one still queued then is dropped).
   */
  #queued: string[] = [];

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

  /** Whether BEGIN has been sent (COMMIT or ROLLBACK are due). */
  get begun(): boolean {
    return this.#begun;
  }

  /** Whether COMMIT has been sent with the transaction's last statement. */
  get committed(): boolean {
    return this.#committed;
  }

  #send<R>(text: string, params: readonly unknown[], name?: string, final = false): Promise<pg.QueryResult<R & pg.QueryResultRow>> {
    if (this.#finished) throw new Error("This transaction has already finished; use the database outside it.");
    if ((this.#begun || this.#alone) && this.#queued.length === 0) return run<R>(this.client, text, params, name);
    if (final && !this.#begun && this.#queued.length === 0) {
      // Nothing was sent yet: the transaction is this statement, which PostgreSQL runs atomically.
      this.#alone = true;
      return run<R>(this.client, text, params, name);
    }
    const ahead = [...(this.#begun ? [] : ["BEGIN"]), ...this.#queued];
    this.#begun = true;
    this.#queued = [];
    // node-postgres exposes no way to put several queries in one write; corking its socket does.
    const stream = (this.client as unknown as { connection: { stream: { cork(): void; uncork(): void } } }).connection.stream;
    stream.cork();
    let before: Promise<unknown>;
    let statement: Promise<pg.QueryResult<R & pg.QueryResultRow>>;
    try {
      before = Promise.all(ahead.map((simple) => run(this.client, simple, [])));
      statement = run<R>(this.client, text, params, name);
    } finally {
      stream.uncork();
    }
    // When BEGIN (or a savepoint statement) fails, its error is the one to report (the statement's
    // outcome is moot).
    return before.then(
      () => statement,
      (error: unknown) => statement.then(() => Promise.reject(error), () => Promise.reject(error)),
    );
  }

  async query<R = Row>(query: Sql): Promise<R[]> {
    const { text, params } = postgresDialect.render(query);
    return (await this.#send<R>(text, params, this.driver.nameFor(text))).rows;
  }

  async execute(query: Sql): Promise<number> {
    const { text, params } = postgresDialect.render(query);
    return (await this.#send(text, params, this.driver.nameFor(text))).rowCount ?? 0;
  }

  async queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return (await this.#send<R>(text, params, this.driver.nameFor(text))).rows;
  }

  async executeText(text: string, params: readonly unknown[]): Promise<number> {
    return (await this.#send(text, params, this.driver.nameFor(text))).rowCount ?? 0;
  }

  async queryFinal<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return (await this.#send<R>(text, params, this.driver.nameFor(text), true)).rows;
  }

  async queryThenCommit<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    if (this.#finished) throw new Error("This transaction has already finished; use the database outside it.");
    if (!this.#begun || this.#alone || this.#depth > 0) return this.queryText<R>(text, params);
    // At the outermost level only RELEASEs of finished savepoints can wait: COMMIT releases them.
    this.#queued = [];
    this.#committed = true;
    this.#alone = true;
    const stream = (this.client as unknown as { connection: { stream: { cork(): void; uncork(): void } } }).connection.stream;
    stream.cork();
    let statement: Promise<pg.QueryResult<R & pg.QueryResultRow>>;
    let commit: Promise<pg.QueryResult>;
    try {
      statement = run<R>(this.client, text, params, this.driver.nameFor(text));
      commit = run(this.client, "COMMIT", []);
    } finally {
      stream.uncork();
    }
    // A failed statement aborts the transaction, and PostgreSQL answers the COMMIT with a rollback:
    // the statement's error is the one to report.
    const [written, committed] = await Promise.allSettled([statement, commit]);
    if (written.status === "rejected") throw written.reason;
    if (committed.status === "rejected") throw committed.reason;
    if (committed.value.command === "ROLLBACK") {
      throw new InvalidError("The transaction was rolled back because a statement in it failed; nothing was committed.", [], { reason: "transaction_aborted" });
    }
    return written.value.rows;
  }

  /** A script of several statements (a migration), sent as one simple query. */
  async executeScript(script: string): Promise<void> {
    await this.#send(script, []);
  }

  /**
   * A savepoint whose statements cost no round trip of their own: SAVEPOINT goes out with the nested
   * transaction's first statement, RELEASE with whatever the transaction sends after it (neither is
   * sent when nothing was sent between them); a failure waits for ROLLBACK TO SAVEPOINT.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    if (this.#alone) throw new Error("This transaction's final write has committed; a nested transaction cannot follow it.");
    const name = `sp_${++this.#savepoints}`;
    const savepoint = `SAVEPOINT ${name}`;
    this.#queued.push(savepoint);
    this.#depth++;
    try {
      const result = await fn(this).finally(() => {
        this.#depth--;
      });
      if (this.#queued.at(-1) === savepoint) this.#queued.pop();
      else this.#queued.push(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      const unsent = this.#queued.indexOf(savepoint);
      // Nothing of it was sent: nothing to roll back.
      if (unsent >= 0) this.#queued.splice(unsent);
      else await this.#send(`ROLLBACK TO SAVEPOINT ${name}`, []);
      throw translatePostgresError(error);
    }
  }
}
