/**
 * The states of flow runs and task runs: building state rows, writing a state and moving the run's
 * pointer in one atomic step, reading a run together with its current state, the state history, and
 * the run history of Prefect's dashboards. runs.ts builds the run repositories on them.
 */
import type { Dialect } from "../dialect.js";
import { InvalidError, NotFoundError } from "../errors.js";
import { checkId, uuid7 } from "../ids.js";
import { RunBookkeeping, type State, StateCreate, defaultStateName } from "../schemas/runs.js";
import { type Sql, sql } from "../sql.js";
import { rowDecoder, selectList } from "../tables.js";
import { fromMicros, now, type Timestamp, toMicros, toTimestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import { parseInput, type RepositoryContext } from "./context.js";

export type ParsedState = ReturnType<typeof StateCreate.parse>;

/** A complete state row, ready to insert. */
export function buildStateRow(
  t: RunTables,
  runId: string,
  state: ParsedState,
): Record<string, unknown> & { id: string; type: string; name: string; timestamp: Timestamp } {
  const ts = now();
  return {
    id: state.id ?? uuid7(),
    created: ts,
    updated: ts,
    [t.parentColumn]: runId,
    type: state.type,
    timestamp: state.timestamp ?? ts,
    name: state.name ?? defaultStateName(state.type),
    message: state.message ?? null,
    state_details: state.state_details ?? {},
    data: state.data === undefined ? null : state.data,
    result_artifact_id: state.result_artifact_id ?? null,
  };
}

export function stateFromRow(row: Record<string, unknown>): State {
  return {
    id: row.id as string,
    type: row.type as State["type"],
    name: row.name as string,
    timestamp: row.timestamp as Timestamp,
    message: (row.message as string | null) ?? null,
    data: row.data ?? null,
    state_details: (row.state_details as Record<string, unknown>) ?? {},
    result_artifact_id: (row.result_artifact_id as string | null) ?? null,
  };
}

/** The pointer columns a run gets from its current state. */
export function pointerTo(state: { id: string; type: unknown; name: unknown; timestamp: Timestamp }): Record<string, unknown> {
  return { state_id: state.id, state_type: state.type, state_name: state.name, state_timestamp: state.timestamp };
}

export interface RunReader<Run> {
  /** `SELECT run + current state FROM ... r LEFT JOIN ... s` */
  readonly select: Sql;
  decode(row: Record<string, unknown>): Run;
  /**
   * Whether the joined rows of `row` (its current state, and the join's) are those its run's columns
   * point at. They may not be when PostgreSQL had to wait for the run's row lock: it then reads the
   * run again as the other writer left it, but keeps the joined rows of its first look.
   */
  consistent(row: Record<string, unknown>): boolean;
}

/** What a run is read with beyond its own columns and its current state (a flow run's work pool). */
export interface RunJoin {
  /** `, x AS y, ...` added to the select list. */
  readonly columns: Sql;
  /** ` LEFT JOIN ...` added after the run (alias `r`). */
  readonly joins: Sql;
  /** Sets the joined fields on `run` from `row` (null when `row` lacks them). */
  decode(row: Record<string, unknown>, run: Record<string, unknown>): void;
  /** Whether a run just inserted with these columns has joined values to read back; else they are null. */
  readBack(run: Record<string, unknown>): boolean;
  /** Whether the joined columns of `row` belong to its run's columns (see `RunReader.consistent`). */
  matches(row: Record<string, unknown>): boolean;
}

/** Selects a run (alias `r`) with its current state (columns prefixed `s_`), and `join`, and decodes them. */
export function runReader<Run>(dialect: Dialect, t: RunTables, join?: RunJoin): RunReader<Run> {
  const decodeRun = rowDecoder(dialect, t.run);
  const decodeState = rowDecoder(dialect, t.state, "s_");
  return {
    select: sql`SELECT ${selectList(t.run, "r")}, ${selectList(t.state, "s", "s_")}${join?.columns ?? sql.empty} FROM ${sql.ident(t.run.name)} r LEFT JOIN ${sql.ident(
      t.state.name,
    )} s ON s.id = r.state_id${join?.joins ?? sql.empty}`,
    decode(row) {
      const run = decodeRun(row) as Record<string, unknown>;
      run.state = row.s_id ? stateFromRow(decodeState(row)) : null;
      join?.decode(row, run);
      return run as Run;
    },
    consistent: (row) => (row.state_id ?? null) === (row.s_id ?? null) && (join?.matches(row) ?? true),
  };
}

export interface StateHistory<S extends State> {
  /**
   * Inserts `state` for the run and moves the run's pointer (and any bookkeeping columns given) to
   * it, atomically. A timestamp the run already has a state at is moved on by 1µs until it is free,
   * as Prefect does. Throws NotFoundError when the run does not exist.
   *
   * `final`: the caller writes nothing after it in its transaction and wants nothing undone once it
   * is written, so that the transaction may commit with it (PostgreSQL, at the transaction's
   * outermost level: one round trip fewer). A taken timestamp then throws StateTimestampTakenError,
   * the transaction rolled back: run it again without `final`.
   */
  setState(runId: string, state: StateCreate, bookkeeping?: RunBookkeeping, options?: { readonly final?: boolean }): Promise<S>;
  readStates(runId: string): Promise<S[]>;
  getState(stateId: string): Promise<S | null>;
  /** Throws NotFoundError for an unknown id. */
  deleteState(stateId: string): Promise<void>;
}

/** Run times a transition sets from its state's timestamp, moved with it when the timestamp is taken. */
const MOVED_WITH_STATE = ["start_time", "end_time", "expected_start_time", "next_scheduled_start_time"] as const;

export function stateHistory<S extends State>({ q, backend }: RepositoryContext, t: RunTables, kind: string): StateHistory<S> {
  const { writes } = backend;
  const decode = rowDecoder(q.dialect, t.state);
  const toState = (row: Record<string, unknown>) => {
    const d = decode(row);
    return { ...stateFromRow(d), [t.parentColumn]: d[t.parentColumn] } as unknown as S;
  };
  const select = sql`SELECT ${selectList(t.state, "st")} FROM ${sql.ident(t.state.name)} st`;

  return {
    async setState(runId, input, bookkeeping = {}, options = {}) {
      runId = checkId(runId, `${kind} id`);
      const state = parseInput(StateCreate, input, "state");
      const extra = parseInput(RunBookkeeping, bookkeeping, "run bookkeeping");
      let row = buildStateRow(t, runId, state);
      for (let attempt = 0; attempt < 10_000; attempt++) {
        const assignments = { ...pointerTo(row), updated: now(), ...extra };
        let result: Awaited<ReturnType<typeof writes.writeState>>;
        try {
          result = await writes.writeState(q, t, runId, row, assignments, options.final === true);
        } catch (error) {
          if (error instanceof InvalidError && error.reason === "missing_reference") {
            throw new NotFoundError(`${kind} ${runId} not found.`, { cause: error });
          }
          throw error;
        }
        if (result === "written") return { ...stateFromRow(row), [t.parentColumn]: runId } as unknown as S;
        // Taken: move on by a microsecond, with the run's times that were set from the timestamp.
        const moved = fromMicros(toMicros(row.timestamp) + 1);
        for (const column of MOVED_WITH_STATE) if (extra[column] === row.timestamp) extra[column] = moved;
        row = { ...row, timestamp: moved };
      }
      throw new InvalidError(`Could not find a free timestamp for a new state of ${kind} ${runId}.`);
    },

    async readStates(runId) {
      runId = checkId(runId, `${kind} id`);
      const rows = await q.query(sql`${select} WHERE st.${sql.ident(t.parentColumn)} = ${runId} ORDER BY st."timestamp" ASC, st.id`);
      return rows.map(toState);
    },

    async getState(stateId) {
      stateId = checkId(stateId, "state id");
      const rows = await q.query(sql`${select} WHERE st.id = ${stateId}`);
      return rows[0] ? toState(rows[0]) : null;
    },

    async deleteState(stateId) {
      stateId = checkId(stateId, "state id");
      const deleted = await q.execute(sql`DELETE FROM ${sql.ident(t.state.name)} WHERE id = ${stateId}`);
      if (deleted === 0) throw new NotFoundError(`State ${stateId} not found.`);
    },
  };
}

/** ORDER BY with PostgreSQL's NULL placement made explicit, so both backends sort alike. */
export function orderBy(terms: readonly (readonly [expression: string, direction: "ASC" | "DESC"])[]): Sql {
  return sql.raw(terms.map(([e, dir]) => `${e} ${dir} NULLS ${dir === "ASC" ? "LAST" : "FIRST"}`).join(", "));
}

export interface HistoryOptions {
  readonly start: Timestamp | string;
  readonly end: Timestamp | string;
  readonly intervalSeconds: number;
  /** The time run times and lateness are estimated at (default now). */
  readonly at?: Timestamp | string;
}

export interface HistoryStateCount {
  state_type: string | null;
  state_name: string | null;
  count_runs: number;
  sum_estimated_run_time: number;
  sum_estimated_lateness: number;
}

export interface HistoryInterval {
  interval_start: Timestamp;
  interval_end: Timestamp;
  states: HistoryStateCount[];
}

/** Prefect returns at most this many intervals. */
const MAX_HISTORY_INTERVALS = 500;

/**
 * Runs (alias `r`, narrowed by `conditions`) counted per interval of their expected start time and per
 * state, with their estimated run time and lateness summed, as Prefect's run history.
 */
export async function runHistory(q: RepositoryContext["q"], table: string, conditions: Sql, given: HistoryOptions): Promise<HistoryInterval[]> {
  const options = { ...given, start: toTimestamp(given.start), end: toTimestamp(given.end), at: given.at === undefined ? undefined : toTimestamp(given.at) };
  if (!(options.intervalSeconds >= 1)) throw new InvalidError("History interval must not be less than 1 second.", [{ path: ["history_interval_seconds"], message: "must be at least 1 second" }]);
  if (options.end <= options.start) return [];
  const d = q.dialect;
  const at = options.at ?? now();
  const startEpoch = toMicros(options.start) / 1e6;
  const atEpoch = toMicros(at) / 1e6;
  const epoch = (column: string) => d.epochSeconds(sql.raw(`r."${column}"`));
  const positive = (expression: Sql) => sql`CASE WHEN ${expression} > 0 THEN ${expression} ELSE 0 END`;
  const rows = await q.query<{ bucket: number; state_type: string | null; state_name: string | null; n: number; run_time: number; lateness: number }>(sql`
    SELECT ${d.truncate(sql`(${epoch("expected_start_time")} - ${startEpoch}) / ${options.intervalSeconds}`)} AS bucket,
      r.state_type, r.state_name, count(*) AS n,
      SUM(CASE WHEN r.state_type = 'RUNNING' AND r.state_timestamp IS NOT NULL
               THEN r.total_run_time + ${positive(sql`${atEpoch} - ${epoch("state_timestamp")}`)}
               ELSE r.total_run_time END) AS run_time,
      SUM(CASE WHEN r.start_time IS NOT NULL AND r.start_time > r.expected_start_time
               THEN ${epoch("start_time")} - ${epoch("expected_start_time")}
               WHEN r.start_time IS NULL AND r.expected_start_time < ${at}
                    AND (r.state_type IS NULL OR r.state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED'))
               THEN ${atEpoch} - ${epoch("expected_start_time")}
               ELSE 0 END) AS lateness
    FROM ${sql.ident(table)} r
    WHERE ${sql.and([conditions, sql`r.expected_start_time >= ${options.start}`, sql`r.expected_start_time < ${options.end}`])}
    GROUP BY 1, r.state_type, r.state_name`);
  const span = (toMicros(options.end) - toMicros(options.start)) / 1e6;
  const count = Math.min(MAX_HISTORY_INTERVALS, Math.ceil(span / options.intervalSeconds));
  const intervals: HistoryInterval[] = Array.from({ length: count }, (_, i) => ({
    interval_start: fromMicros(toMicros(options.start) + i * options.intervalSeconds * 1e6),
    interval_end: fromMicros(toMicros(options.start) + (i + 1) * options.intervalSeconds * 1e6),
    states: [],
  }));
  for (const row of rows) {
    const interval = intervals[Number(row.bucket)];
    if (!interval) continue;
    interval.states.push({
      state_type: row.state_type,
      state_name: row.state_name,
      count_runs: Number(row.n),
      sum_estimated_run_time: Math.max(0, Number(row.run_time)),
      sum_estimated_lateness: Math.max(0, Number(row.lateness)),
    });
  }
  for (const interval of intervals) interval.states.sort((a, b) => String(a.state_name).localeCompare(String(b.state_name)));
  return intervals;
}
