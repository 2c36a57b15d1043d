/**
 * One better-sqlite3 connection per process, with the pragmas Prefect uses (WAL, foreign keys,
 * synchronous=NORMAL). better-sqlite3 is synchronous, so a statement never interleaves with another;
 * a transaction, which may await between statements, holds an in-process lock from BEGIN to COMMIT
 * and other work on the connection waits for it.
 *
 * Transactions begin IMMEDIATE (take the write lock up front, so they never deadlock upgrading
 * a read lock). Other processes on the same file are waited for a few milliseconds inside SQLite,
 * then with asynchronous backoff, so a busy file never freezes the event loop; after the configured
 * timeout the caller gets a BusyError.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { Statement } from "better-sqlite3";
import type { SqliteConfig } from "../../config.js";
import { Mutex } from "../../driver/mutex.js";
import { TransactionScope } from "../../driver/scope.js";
import type { Driver, Queryable, Row } from "../../driver/types.js";
import { BusyError, InvalidError } from "../../errors.js";
import type { Sql } from "../../sql.js";
import { sqliteDialect } from "./dialect.js";
import { isSqliteBusy, translateSqliteError } from "./errors.js";

/**
 * Prefect needs 3.24 (`INSERT ... ON CONFLICT DO UPDATE`); our statements also use `RETURNING` (3.35),
 * `UPDATE ... FROM` (3.33) and `NULLS FIRST/LAST` (3.30). better-sqlite3 bundles a newer SQLite.
 */
export const MIN_SQLITE_VERSION = "3.35.0";

/** Throws unless `version` is at least MIN_SQLITE_VERSION. */
export function checkSqliteVersion(version: string): void {
  const parts = version.split(".").map(Number);
  const min = MIN_SQLITE_VERSION.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const have = parts[i] ?? 0;
    const need = min[i] ?? 0;
    if (have > need) return;
    if (have < need) {
      throw new InvalidError(
        `SQLite ${version} is too old: this server needs SQLite ${MIN_SQLITE_VERSION} or newer. ` +
          "Reinstall better-sqlite3 (which bundles a current SQLite) or upgrade the system SQLite it was built against.",
        [],
        { reason: "misconfigured" },
      );
    }
  }
}

/** How long SQLite itself waits for a lock before handing control back to our backoff loop. */
const SQLITE_BUSY_WAIT_MS = 25;
const STATEMENT_CACHE_SIZE = 500;
/** Most transactions that share one COMMIT (see `SqliteDriver.transaction`). */
const MAX_GROUP = 64;

/** Transactions run in one database transaction, waiting for its COMMIT to be answered. */
interface CommitGroup {
  members: number;
  readonly pending: { resolve: () => void; reject: (error: unknown) => void }[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** File path (or `:memory:`), and how long to keep trying when another process holds the write lock. */
export type SqliteDriverOptions = Pick<SqliteConfig, "path" | "timeoutSeconds">;

/** A prepared statement of `db`, from `cache` (oldest dropped beyond STATEMENT_CACHE_SIZE). */
function prepared(db: Database.Database, cache: Map<string, Statement>, text: string): Statement {
  let statement = cache.get(text);
  if (statement) return statement;
  try {
    statement = db.prepare(text);
  } catch (error) {
    throw translateSqliteError(error);
  }
  if (cache.size >= STATEMENT_CACHE_SIZE) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(text, statement);
  return statement;
}

/** Builds the row objects of a statement's results from their values (see `allRows`). */
type RowBuilder = (values: unknown[]) => Row;
const rowBuilders = new WeakMap<Statement, RowBuilder | null>();

/**
 * The builder of `statement`'s rows: generated code that returns one object literal with the result's
 * column names as fixed keys (later columns of the same name win, as in better-sqlite3's own rows).
 * Null for a statement whose columns may change while it is cached: one with a `*` (a table's columns
 * change with the schema, and SQLite prepares such a statement again on its own), or whose column
 * names cannot be a literal's keys (`__proto__`). Every statement of the hot paths names its columns.
 */
function rowBuilder(statement: Statement): RowBuilder | null {
  let build = rowBuilders.get(statement);
  if (build !== undefined) return build;
  const names = statement.source.includes("*") ? null : statement.columns().map((column) => column.name);
  build =
    names === null || names.includes("__proto__")
      ? null
      : (new Function("a", `"use strict"; return { ${names.map((name, i) => `${JSON.stringify(name)}: a[${i}]`).join(", ")} };`) as RowBuilder);
  if (build) statement.raw(true);
  rowBuilders.set(statement, build);
  return build;
}

/**
 * Every row of a statement that returns rows. The statement hands over each row's values as an
 * array and the generated builder makes the object: better-sqlite3's own row objects look every
 * column name up in V8's string table and add it to an empty object, row after row, which made its
 * rows cost about twice as much (a run with its state: 43 columns, 13 against 7 µs).
 */
function allRows<R>(statement: Statement, params: readonly unknown[]): R[] {
  const build = rowBuilder(statement);
  if (!build) return statement.all(params) as R[];
  const values = statement.all(params) as unknown[][];
  const rows = new Array<R>(values.length);
  for (let i = 0; i < values.length; i++) rows[i] = build(values[i]!) as R;
  return rows;
}

/** Page cache of the writing connection, in KiB. */
const WRITER_CACHE_KIB = 8_000;
/** Page cache of the reading connection, in KiB: its reads are short, and the writer keeps the hot pages. */
const READER_CACHE_KIB = 4_000;

export class SqliteDriver implements Driver {
  readonly dialect = sqliteDialect;
  readonly inTransaction = false;
  readonly coalescesReads = false;
  readonly #db: Database.Database;
  /**
   * A second connection to the same file for reads outside a transaction: in WAL mode it reads the
   * last committed state while the writer works, so reads never wait for a write transaction (or a
   * group of them), and never see what is not committed yet. None for `:memory:` (a second
   * connection would be another database).
   */
  #reader: Database.Database | null = null;
  readonly #readStatements = new Map<string, Statement>();
  readonly #lock = new Mutex();
  readonly #statements = new Map<string, Statement>();
  readonly #busyBudgetMs: number;
  readonly #version: string;
  /** Where calls on the driver from inside its own transactions are caught (see driver/scope.ts). */
  readonly #scope = new TransactionScope<SqliteTransaction>();
  /** The open group of transactions awaiting one COMMIT, while the lock passes from one to the next. */
  #group: CommitGroup | null = null;

  constructor(options: SqliteDriverOptions) {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: SQLITE_BUSY_WAIT_MS });
    this.#busyBudgetMs = options.timeoutSeconds * 1000;
    this.#version = (this.#db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
    try {
      checkSqliteVersion(this.#version);
      if (options.path !== ":memory:") this.#db.pragma("journal_mode = WAL");
      this.#db.pragma("foreign_keys = ON");
      this.#db.pragma("legacy_alter_table = OFF");
      this.#db.pragma("synchronous = NORMAL");
      // 8 MB of page cache for the writer, 4 MB for the reader: Prefect's 20,000 pages (80 MB) kept the
      // server's memory after a load near 400 MB, and measured no faster (pages not cached are read
      // from the operating system's cache); 16 MB for the writer left it 7-12 MB higher than 8 MB, with
      // throughput the same within the bench's run-to-run noise.
      this.#db.pragma(`cache_size = -${WRITER_CACHE_KIB}`);
      this.#db.pragma("wal_autocheckpoint = 10000");
      if (options.path !== ":memory:") {
        this.#reader = new Database(options.path, { timeout: SQLITE_BUSY_WAIT_MS });
        this.#reader.pragma("foreign_keys = ON");
        this.#reader.pragma(`cache_size = -${READER_CACHE_KIB}`);
      }
    } catch (error) {
      this.#reader?.close();
      this.#db.close();
      throw translateSqliteError(error);
    }
  }

  statement(text: string): Statement {
    return prepared(this.#db, this.#statements, text);
  }

  /** The statement on the read connection when `text` only reads and there is one; else null. */
  #readStatement(text: string): Statement | null {
    if (!this.#reader) return null;
    const statement = prepared(this.#reader, this.#readStatements, text);
    return statement.reader && statement.readonly ? statement : null;
  }

  /** Runs one statement now, on the connection as it is. */
  runQuery<R>(text: string, params: readonly unknown[]): R[] {
    const statement = this.statement(text);
    if (statement.reader) return allRows<R>(statement, params);
    statement.run(params);
    return [];
  }

  runExecute(text: string, params: readonly unknown[]): number {
    const statement = this.statement(text);
    if (statement.reader) return statement.all(params).length;
    return statement.run(params).changes;
  }

  /** Runs work outside any transaction: at once when the connection is free, else in turn. */
  async #outside<T>(work: () => T): Promise<T> {
    if (!this.#lock.locked) {
      try {
        return work();
      } catch (error) {
        if (!isSqliteBusy(error)) throw translateSqliteError(error);
      }
    }
    const release = await this.#lock.acquire();
    try {
      await this.#settle();
      return await this.#retryWhileBusy(work);
    } finally {
      release();
    }
  }

  async #retryWhileBusy<T>(work: () => T): Promise<T> {
    const deadline = Date.now() + this.#busyBudgetMs;
    let delay = 2;
    for (;;) {
      try {
        return work();
      } catch (error) {
        if (!isSqliteBusy(error) || Date.now() >= deadline) throw translateSqliteError(error);
        await sleep(delay + Math.random() * delay);
        delay = Math.min(delay * 2, 100);
      }
    }
  }

  query<R = Row>(query: Sql): Promise<R[]> {
    const { text, params } = sqliteDialect.render(query);
    return this.queryText<R>(text, params);
  }

  execute(query: Sql): Promise<number> {
    const { text, params } = sqliteDialect.render(query);
    return this.executeText(text, params);
  }

  /** The write lock makes a transaction's statements cost alike, first or last: as `queryText`. */
  queryFinal<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  /** COMMIT costs no round trip here: as `queryText`. */
  queryThenCommit<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    this.#scope.check();
    try {
      const read = this.#readStatement(text);
      if (read) return Promise.resolve(allRows<R>(read, params));
    } catch (error) {
      // Busy (another process switching the file to WAL, say): the writer's path waits it out.
      if (!(isSqliteBusy(error) || error instanceof BusyError)) return Promise.reject(translateSqliteError(error));
    }
    return this.#outside(() => this.runQuery<R>(text, params));
  }

  executeText(text: string, params: readonly unknown[]): Promise<number> {
    this.#scope.check();
    return this.#outside(() => this.runExecute(text, params));
  }

  /**
   * Runs `fn` in a transaction. Concurrent transactions share one COMMIT (group commit): when a
   * transaction ends while others wait for the connection (or start waiting within one turn of the
   * event loop), the database transaction stays open and
   * the next one runs inside it, each in a savepoint of its own (a failure rolls back only its own
   * writes); the last of the group commits for all. Each caller gets its answer only once its writes
   * are committed, and a failed COMMIT fails every transaction of the group, so nothing is
   * acknowledged that is not stored. A COMMIT writes every page the transaction changed to the WAL;
   * transactions that write the same tables and indexes (a run and its state, say) share most pages.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#scope.check();
    const release = await this.#lock.acquire();
    let group: CommitGroup;
    try {
      group = this.#group ?? (await this.#begin());
      this.statement("SAVEPOINT member").run();
    } catch (error) {
      if (this.#group) this.#failGroup(this.#group, error);
      release();
      throw translateSqliteError(error);
    }
    group.members += 1;
    const tx = new SqliteTransaction(this);
    let failure: { error: unknown } | null = null;
    let result: T | undefined;
    try {
      result = await this.#scope.run(tx, () => fn(tx));
      tx.finish();
      this.statement("RELEASE SAVEPOINT member").run();
    } catch (error) {
      tx.finish();
      failure = { error: translateSqliteError(error) };
      if (!this.#undoMember()) {
        // SQLite rolled the whole transaction back (or could not roll back to the savepoint): the
        // writes of the group's other transactions are gone with it.
        this.#failGroup(group, failure.error);
        release();
        throw failure.error;
      }
    }
    // Nobody waits yet: give the requests already on their way one turn of the event loop to join
    // (work that never leaves the event loop, as most transactions here, would otherwise always
    // find an empty queue and commit alone).
    if (this.#lock.waiting === 0 && group.members < MAX_GROUP) await new Promise((resolve) => setImmediate(resolve));
    if (this.#lock.waiting > 0 && group.members < MAX_GROUP) {
      // Leave the transaction open for the next one; answer once the group commits.
      if (failure) {
        release();
        throw failure.error;
      }
      const committed = new Promise<void>((resolve, reject) => group.pending.push({ resolve, reject }));
      release();
      await committed;
      return result as T;
    }
    try {
      await this.#commit(group);
    } finally {
      release();
    }
    if (failure) throw failure.error;
    return result as T;
  }

  async #begin(): Promise<CommitGroup> {
    await this.#retryWhileBusy(() => this.statement("BEGIN IMMEDIATE").run());
    const group: CommitGroup = { members: 0, pending: [] };
    this.#group = group;
    return group;
  }

  /** Rolls the failed member's writes back; false when the database transaction is gone or unusable. */
  #undoMember(): boolean {
    if (!this.#db.inTransaction) return false;
    try {
      this.statement("ROLLBACK TO SAVEPOINT member").run();
      this.statement("RELEASE SAVEPOINT member").run();
      return true;
    } catch {
      return false;
    }
  }

  /** Commits the group's transaction and answers its waiting members (or fails them all). */
  async #commit(group: CommitGroup): Promise<void> {
    try {
      await this.#retryWhileBusy(() => this.statement("COMMIT").run());
    } catch (error) {
      this.#failGroup(group, error);
      throw error;
    }
    this.#group = null;
    for (const member of group.pending) member.resolve();
  }

  #failGroup(group: CommitGroup, error: unknown): void {
    this.#group = null;
    this.#rollback();
    const reason = translateSqliteError(error);
    for (const member of group.pending) member.reject(reason);
  }

  /** Commits a group left open for the caller, which holds the lock and does not join it. */
  async #settle(): Promise<void> {
    if (this.#group) await this.#commit(this.#group);
  }

  /**
   * Runs synchronous statements (through `runQuery` / `runExecute`) as one IMMEDIATE transaction.
   * When the connection is free this happens at once, without yielding to the event loop, which makes
   * the hot write paths nearly as fast as plain better-sqlite3.
   */
  atomic<T>(work: () => T): Promise<T> {
    this.#scope.check();
    if (!this.#lock.locked) {
      let begun = false;
      try {
        this.statement("BEGIN IMMEDIATE").run();
        begun = true;
        const result = work();
        this.statement("COMMIT").run();
        return Promise.resolve(result);
      } catch (error) {
        if (begun) this.#rollback();
        // Another process holds the write lock: wait for it the patient way.
        if (!(isSqliteBusy(error) && !begun)) return Promise.reject(translateSqliteError(error));
      }
    }
    return this.transaction(async () => work());
  }

  #rollback(): void {
    if (this.#db.inTransaction) this.statement("ROLLBACK").run();
  }

  async serverVersion(): Promise<string> {
    return `SQLite ${this.#version}`;
  }

  async executeScript(tx: Queryable, script: string): Promise<void> {
    if (!tx.inTransaction) throw new Error("migration scripts run inside a transaction");
    try {
      this.#db.exec(script);
    } catch (error) {
      throw translateSqliteError(error);
    } finally {
      // A script may change the tables cached statements read (and the columns their rows have).
      this.#statements.clear();
      this.#readStatements.clear();
    }
  }

  /**
   * Each migration is its own IMMEDIATE transaction, which already excludes other processes. Foreign
   * keys are off meanwhile (SQLite ignores the pragma inside a transaction) so that a migration may
   * rebuild a table; each migration checks them before it commits.
   */
  async withMigrationLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.#lock.acquire();
    try {
      await this.#settle();
      this.#db.pragma("foreign_keys = OFF");
    } finally {
      release();
    }
    try {
      return await fn();
    } finally {
      const again = await this.#lock.acquire();
      this.#db.pragma("foreign_keys = ON");
      again();
    }
  }

  /** Violations of foreign keys in the open transaction, as `table` names. */
  foreignKeyViolations(): string[] {
    return (this.#db.pragma("foreign_key_check") as { table: string }[]).map((row) => row.table);
  }

  watchEventAppends(): () => Promise<void> {
    return async () => undefined;
  }

  async close(): Promise<void> {
    const release = await this.#lock.acquire();
    try {
      if (this.#db.open) await this.#settle().catch(() => undefined);
      if (this.#reader?.open) this.#reader.close();
      if (this.#db.open) this.#db.close();
    } finally {
      release();
    }
  }
}

/** An open transaction on the connection; statements run directly (the driver's lock is held). */
export class SqliteTransaction implements Queryable {
  readonly dialect = sqliteDialect;
  readonly inTransaction = true;
  readonly coalescesReads = false;
  #finished = false;
  #savepoints = 0;

  constructor(readonly driver: SqliteDriver) {}

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
    const { text, params } = sqliteDialect.render(query);
    return this.queryText<R>(text, params);
  }

  async execute(query: Sql): Promise<number> {
    const { text, params } = sqliteDialect.render(query);
    return this.executeText(text, params);
  }

  queryFinal<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  queryThenCommit<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.queryText<R>(text, params);
  }

  async queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]> {
    this.#check();
    try {
      return this.driver.runQuery<R>(text, params);
    } catch (error) {
      throw translateSqliteError(error);
    }
  }

  async executeText(text: string, params: readonly unknown[]): Promise<number> {
    this.#check();
    try {
      return this.driver.runExecute(text, params);
    } catch (error) {
      throw translateSqliteError(error);
    }
  }

  /** Synchronous statements as one savepoint of this transaction. */
  atomic<T>(work: () => T): Promise<T> {
    this.#check();
    const name = `sp_${++this.#savepoints}`;
    this.driver.statement(`SAVEPOINT ${name}`).run();
    try {
      const result = work();
      this.driver.statement(`RELEASE SAVEPOINT ${name}`).run();
      return Promise.resolve(result);
    } catch (error) {
      this.driver.statement(`ROLLBACK TO SAVEPOINT ${name}`).run();
      this.driver.statement(`RELEASE SAVEPOINT ${name}`).run();
      return Promise.reject(translateSqliteError(error));
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#check();
    const name = `sp_${++this.#savepoints}`;
    this.driver.statement(`SAVEPOINT ${name}`).run();
    try {
      const result = await fn(this);
      this.driver.statement(`RELEASE SAVEPOINT ${name}`).run();
      return result;
    } catch (error) {
      this.driver.statement(`ROLLBACK TO SAVEPOINT ${name}`).run();
      this.driver.statement(`RELEASE SAVEPOINT ${name}`).run();
      throw translateSqliteError(error);
    }
  }
}

/**
 * The connection under `q` (the driver itself, or one of its transactions), with a way to run
 * synchronous statements on it as one atomic step: the hot write paths use it to skip the event loop.
 */
export function syncConnection(q: Queryable): { driver: SqliteDriver; atomic: <T>(work: () => T) => Promise<T> } {
  if (q instanceof SqliteDriver) return { driver: q, atomic: (work) => q.atomic(work) };
  if (q instanceof SqliteTransaction) return { driver: q.driver, atomic: (work) => q.atomic(work) };
  throw new Error("not a SQLite connection");
}
