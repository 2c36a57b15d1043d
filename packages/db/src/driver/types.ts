import type { Sql } from "../sql.js";
import type { Dialect } from "../dialect.js";

export type Row = Record<string, unknown>;

/** Something that runs SQL: the connection (pool) itself, or one open transaction. */
export interface Queryable {
  readonly dialect: Dialect;
  /** Rows of a query built with `sql`. */
  query<R = Row>(query: Sql): Promise<R[]>;
  /** Affected row count of a statement built with `sql`. */
  execute(query: Sql): Promise<number>;
  /**
   * Pre-rendered SQL for hot paths: `text` uses the dialect's placeholders and `params` are already
   * encoded. Statements are prepared once and reused.
   */
  queryText<R = Row>(text: string, params: readonly unknown[]): Promise<R[]>;
  executeText(text: string, params: readonly unknown[]): Promise<number>;
  /**
   * As `queryText`, for a transaction's last write: nothing the transaction does after it may need to
   * undo it (it may still read). On PostgreSQL, when nothing was sent in the transaction before it, it
   * runs alone and commits by itself (one statement is atomic), sparing the BEGIN and COMMIT round trip;
   * whatever the transaction sends after it then runs alone as well, and the transaction can no longer
   * roll it back. Elsewhere it is `queryText`.
   */
  queryFinal<R = Row>(text: string, params: readonly unknown[]): Promise<R[]>;
  /**
   * As `queryText`, for the last statement of a transaction that wants nothing undone once it has
   * run: on PostgreSQL, at the outermost level of a transaction that has begun, the statement goes
   * with COMMIT in one write, sparing COMMIT's round trip (a statement that fails takes the
   * transaction with it, as always; statements after it run alone, outside the transaction).
   * Elsewhere (nested, not begun, SQLite) it is `queryText`.
   */
  queryThenCommit<R = Row>(text: string, params: readonly unknown[]): Promise<R[]>;
  /** Runs `fn` atomically; nested calls use savepoints. Rolls back when `fn` throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** True inside a transaction. */
  readonly inTransaction: boolean;
  /**
   * True where point reads asked for in the same turn of the event loop are better sent as one
   * statement (see coalesce.ts): a PostgreSQL pool outside any transaction.
   */
  readonly coalescesReads: boolean;
}

export interface Driver extends Queryable {
  /** A short description of the server, e.g. "SQLite 3.50.2". */
  serverVersion(): Promise<string>;
  /** Runs a multi-statement SQL script (migrations) on one connection, without parameters. */
  executeScript(tx: Queryable, script: string): Promise<void>;
  /**
   * Runs `fn` holding the database-wide migration lock: PostgreSQL's advisory lock, or SQLite's write
   * lock (taken per migration by `transaction`, which is immediate on SQLite).
   */
  withMigrationLock<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Calls `wake` when events may have been appended by any connection (PostgreSQL: LISTEN on a
   * connection of its own, connected again when it drops, with a `wake` each time since notifications
   * may have been missed meanwhile); SQLite never calls it (readers poll). `head` is the position of
   * the newest event an append stored, when the notification says it (nothing was stored beyond it
   * by that append). Returns how to stop.
   */
  watchEventAppends(wake: (head?: number) => void): () => Promise<void>;
  close(): Promise<void>;
}
