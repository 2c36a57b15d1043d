/**
 * The hot write paths of run tracking, implemented once per backend (backends/sqlite/writes.ts,
 * backends/postgres/writes.ts) because the fastest atomic form differs: SQLite runs a few synchronous
 * statements inside one IMMEDIATE transaction, PostgreSQL sends one statement with data-modifying
 * CTEs (one round trip, atomic by itself). Both take plain domain values and bind them by column kind.
 */
import type { Queryable } from "./driver/types.js";
import type { TableSpec } from "./tables.js";

export interface RunTables {
  readonly run: TableSpec;
  readonly state: TableSpec;
  /** The state table's column pointing at its run. */
  readonly parentColumn: "flow_run_id" | "task_run_id";
  /** Prefect's upsert key of the run table. */
  readonly upsertKey: readonly string[];
}

/** `taken`: the run already has a state at exactly that timestamp (the unique index refused it). */
export type StateWriteResult = "written" | "taken";

export interface RunWrites {
  /**
   * Inserts a run (every column given) and, when `state` is given, its first state, with the run's
   * state pointer already set. Returns false, writing nothing, when the upsert key is taken. `final`:
   * the insert is the last write of `q`'s transaction (see `Queryable.queryFinal`).
   */
  insertRun(q: Queryable, t: RunTables, run: Record<string, unknown>, state: Record<string, unknown> | null, final?: boolean): Promise<boolean>;
  /**
   * Inserts a state row and applies `assignments` (pointer, bookkeeping) to its run, atomically.
   * `final`: the write is the last statement of `q`'s transaction, which commits with it where that
   * spares a round trip (see `Queryable.queryThenCommit`); a taken timestamp then throws
   * StateTimestampTakenError, the transaction rolled back.
   */
  writeState(
    q: Queryable,
    t: RunTables,
    runId: string,
    state: Record<string, unknown>,
    assignments: Record<string, unknown>,
    final?: boolean,
  ): Promise<StateWriteResult>;
  /** The SQL texts these send, in order, for review (test/sql keeps them as snapshots). */
  readonly statements: {
    insertRun(t: RunTables, withState: boolean): readonly string[];
    /** `assigned`: the run's columns the write sets. */
    writeState(t: RunTables, assigned: readonly string[]): readonly string[];
  };
}

/** Caches statement texts built from a table and a list of column names. */
export class TextCache {
  readonly #texts = new Map<string, string>();
  get(key: string, build: () => string): string {
    let text = this.#texts.get(key);
    if (text === undefined) {
      text = build();
      this.#texts.set(key, text);
    }
    return text;
  }
}

export const quote = (column: string) => `"${column}"`;
