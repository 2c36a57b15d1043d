/**
 * The database side of Prefect's task-run recorder (`services/task_run_recorder.py`): Prefect 3.x
 * clients orchestrate ordinary tasks themselves and report each state change as a
 * `prefect.task-run.<State>` event; the server turns those events into `task_run` and
 * `task_run_state` rows.
 *
 * For one batch of changes (each event already read into its task run columns and its state by the
 * server), in one transaction:
 *  - changes that concern the same task run (same id, or same flow run + task key + dynamic key) are
 *    coalesced, the one with the newest state timestamp winning;
 *  - each task run is upserted with `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE task_run.state_timestamp
 *    < excluded.state_timestamp`, so a run only moves forward, whatever order the events arrive in;
 *    the conflict target is the natural key or the id, chosen from the rows that already exist;
 *  - every change's state is inserted with `ON CONFLICT (id) DO NOTHING`, so an event recorded twice
 *    changes nothing.
 * The same SQL runs on both backends.
 */
import { chunkSize, planChunks } from "../batch.js";
import { AlreadyExistsError } from "../errors.js";
import { randomRunName } from "../names.js";
import type { StateType } from "../schemas/common.js";
import { type Sql, sql } from "../sql.js";
import { bindValue, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RepositoryContext } from "./context.js";

/** One event's task run columns (only those the client sent, and the state pointer) and its state. */
export interface TaskRunChange {
  readonly eventId: string;
  /** The task run columns this event sets (a key it lacks is left alone on update). */
  readonly columns: Record<string, unknown>;
  /** The state the event reports, as a task_run_state row. */
  readonly state: {
    id: string;
    type: StateType;
    name: string;
    timestamp: Timestamp;
    message: string | null;
    data: unknown;
    state_details: Record<string, unknown>;
  };
}

/** A recorded change: the event and the task run it was recorded on. */
export interface RecordedTaskRunChange {
  readonly event_id: string;
  readonly task_run_id: string;
}

/** Prefect's TaskRunPolicy defaults, for a task run whose events never carried one. */
const DEFAULT_TASK_RUN_POLICY = { max_retries: 0, retry_delay_seconds: 0, retries: null, retry_delay: null, retry_jitter_factor: null };

const TASK_RUN = tables.task_run;
const TASK_RUN_STATE = tables.task_run_state;
const TASK_RUN_COLUMN_COUNT = Object.keys(TASK_RUN.columns).length;
const NATURAL_KEY = ["flow_run_id", "task_key", "dynamic_key"] as const;

/**
 * Nullable columns without a default: a row of a multi-row statement that does not carry one of
 * these may be given NULL there and COALESCE keeps the stored value. `state_timestamp` (compared in
 * the WHERE clause) and the natural key columns (matched by ON CONFLICT) never are.
 */
const FILLABLE = new Set([
  "state_type",
  "state_name",
  "expected_start_time",
  "next_scheduled_start_time",
  "start_time",
  "end_time",
  "cache_key",
  "cache_expiration",
  "task_version",
  "labels",
  "state_id",
]);

type UpsertKey = string;
const idKey = (id: string): UpsertKey => JSON.stringify(["id", id]);
const naturalKey = (flowRunId: string, taskKey: string, dynamicKey: string): UpsertKey => JSON.stringify(["natural-key", flowRunId, taskKey, dynamicKey]);

/** One event's task run and state, and the upsert bookkeeping resolved for it. */
interface TaskRunRecord extends TaskRunChange {
  group: UpsertKey;
  upsertKey: UpsertKey;
  target: "id" | "natural-key";
  targetValue: UpsertKey;
}

/** A change with room for its upsert bookkeeping (and its own copy of the columns, which resolving may rewrite). */
const recordOf = (change: TaskRunChange): TaskRunRecord => ({ ...change, columns: { ...change.columns }, group: "", upsertKey: "", target: "id", targetValue: "" });

const flowRunOf = (r: TaskRunRecord) => r.columns.flow_run_id as string | null;
const idOf = (r: TaskRunRecord) => r.columns.id as string;
const naturalKeyOf = (r: TaskRunRecord): UpsertKey | null => {
  const flowRunId = flowRunOf(r);
  return flowRunId === null ? null : naturalKey(flowRunId, r.columns.task_key as string, r.columns.dynamic_key as string);
};
const upsertKeyOf = (r: TaskRunRecord): UpsertKey => naturalKeyOf(r) ?? idKey(idOf(r));
const conflictKeysOf = (r: TaskRunRecord): UpsertKey[] => {
  const natural = naturalKeyOf(r);
  return natural ? [idKey(idOf(r)), natural] : [idKey(idOf(r))];
};

interface Segment {
  readonly target: "id" | "natural-key";
  readonly columns: Set<string>;
  readonly nullFilled: Set<string>;
  readonly rows: TaskRunRecord[];
}

/** Prefect's `_segment_task_runs_for_upsert`: the longest runs of sorted rows that can share one statement. */
function segmentsOf(records: readonly TaskRunRecord[], maxRows: number): Segment[] {
  const segments: Segment[] = [];
  let current: { target: "id" | "natural-key"; union: Set<string>; nullFilled: Set<string>; explicitNulls: Set<string>; seen: Set<string>; rows: TaskRunRecord[] } | undefined;
  for (const record of records) {
    const columns = new Set(Object.keys(record.columns));
    const nulls = new Set([...columns].filter((c) => record.columns[c] === null));
    if (current) {
      const symmetric = new Set([...current.union, ...columns].filter((c) => !(current!.union.has(c) && columns.has(c))));
      const fills = new Set([...current.nullFilled, ...symmetric]);
      const explicitNulls = new Set([...current.explicitNulls, ...nulls]);
      if (
        record.target === current.target &&
        [...fills].every((c) => FILLABLE.has(c) && !explicitNulls.has(c)) &&
        !current.seen.has(record.targetValue) &&
        current.rows.length < maxRows
      ) {
        for (const c of columns) current.union.add(c);
        current.nullFilled = fills;
        current.explicitNulls = explicitNulls;
        current.seen.add(record.targetValue);
        current.rows.push(record);
        continue;
      }
      segments.push({ target: current.target, columns: current.union, nullFilled: current.nullFilled, rows: current.rows });
    }
    current = { target: record.target, union: columns, nullFilled: new Set(), explicitNulls: nulls, seen: new Set([record.targetValue]), rows: [record] };
  }
  if (current) segments.push({ target: current.target, columns: current.union, nullFilled: current.nullFilled, rows: current.rows });
  return segments;
}

/** `INSERT ... ON CONFLICT (target) DO UPDATE SET ... WHERE task_run.state_timestamp < excluded.state_timestamp` */
function upsertSql(segment: Segment, at: Timestamp): Sql {
  // A row without a name gets a generated one on insert (Prefect's column default); an update keeps
  // the stored name. The same goes for the retry policy.
  const insertOnly = ["name", "empirical_policy"].filter((c) => !segment.columns.has(c));
  const insertColumns = [...[...segment.columns].sort(), ...insertOnly, "created", "updated"];
  const updateColumns = [...segment.columns].filter((c) => c !== "id" && c !== "created").concat("updated");
  const defaults: Record<string, () => unknown> = { name: randomRunName, empirical_policy: () => DEFAULT_TASK_RUN_POLICY };
  const tuples = segment.rows.map((record) => {
    const values = insertColumns.map((column) => {
      let value: unknown;
      if (column === "created" || column === "updated") value = at;
      else if (insertOnly.includes(column)) value = defaults[column]!();
      else value = record.columns[column] ?? null;
      return sql`${bindValue(TASK_RUN.columns[column as keyof typeof TASK_RUN.columns]!, value)}`;
    });
    return sql`(${sql.join(values)})`;
  });
  const target = segment.target === "natural-key" ? NATURAL_KEY.map((c) => `"${c}"`).join(", ") : `"id"`;
  const sets = updateColumns.map((c) =>
    segment.nullFilled.has(c) ? `"${c}" = COALESCE(excluded."${c}", task_run."${c}")` : `"${c}" = excluded."${c}"`,
  );
  return sql`INSERT INTO task_run (${sql.raw(insertColumns.map((c) => `"${c}"`).join(", "))}) VALUES ${sql.join(tuples)}
    ON CONFLICT (${sql.raw(target)}) DO UPDATE SET ${sql.raw(sets.join(", "))}
    WHERE task_run.state_timestamp < excluded.state_timestamp`;
}

const naturalKeyCondition = (keys: readonly (readonly [string, string, string])[]): Sql =>
  sql.or(keys.map(([flowRunId, taskKey, dynamicKey]) => sql`(r.flow_run_id = ${flowRunId} AND r.task_key = ${taskKey} AND r.dynamic_key = ${dynamicKey})`));

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Rows (id + natural key) of the task runs with any of these ids or natural keys. */
async function existingRuns(
  q: RepositoryContext["q"],
  ids: readonly string[],
  keys: readonly (readonly [string, string, string])[],
): Promise<{ id: string; flow_run_id: string | null; task_key: string; dynamic_key: string }[]> {
  const found: { id: string; flow_run_id: string | null; task_key: string; dynamic_key: string }[] = [];
  // Bounded statements: ids 1000 to a list, natural keys in the batch sizes' series (three parameters each).
  const queries: Sql[] = [];
  for (const part of chunks(ids, 1000)) queries.push(q.dialect.inList(sql.raw("r.id"), part));
  for (const part of planChunks(keys, NATURAL_KEY.length)) queries.push(naturalKeyCondition(part));
  for (const condition of queries) {
    found.push(
      ...(await q.query<{ id: string; flow_run_id: string | null; task_key: string; dynamic_key: string }>(
        sql`SELECT r.id, r.flow_run_id, r.task_key, r.dynamic_key FROM task_run r WHERE ${condition}`,
      )),
    );
  }
  return found;
}

const unpackNatural = (key: UpsertKey) => {
  const [, flowRunId, taskKey, dynamicKey] = JSON.parse(key) as [string, string, string, string];
  return [flowRunId, taskKey, dynamicKey] as const;
};

async function recordOnce(q: RepositoryContext["q"], records: TaskRunRecord[]): Promise<Map<string, string>> {
  const at = now();
  // Coalesce: the newest state timestamp wins among events that share an id or a natural key (connected
  // through either, hence the union-find).
  const all = [...records].sort((a, b) => (a.state.timestamp < b.state.timestamp ? -1 : a.state.timestamp > b.state.timestamp ? 1 : 0));
  const parent = new Map<UpsertKey, UpsertKey>();
  const find = (key: UpsertKey): UpsertKey => {
    if (!parent.has(key)) parent.set(key, key);
    const up = parent.get(key)!;
    if (up === key) return key;
    const root = find(up);
    parent.set(key, root);
    return root;
  };
  for (const record of all) {
    const [first, ...rest] = conflictKeysOf(record);
    for (const key of rest) {
      const left = find(first!);
      const right = find(key);
      if (left !== right) parent.set(right, left);
    }
  }
  const winners = new Map<UpsertKey, TaskRunRecord>();
  const keysByGroup = new Map<UpsertKey, Set<UpsertKey>>();
  for (const record of all) {
    const keys = conflictKeysOf(record);
    record.group = find(keys[0]!);
    record.upsertKey = upsertKeyOf(record);
    winners.set(record.group, record);
    const groupKeys = keysByGroup.get(record.group) ?? new Set();
    for (const key of keys) groupKeys.add(key);
    keysByGroup.set(record.group, groupKeys);
  }
  const aliases = new Map<UpsertKey, UpsertKey>();
  for (const record of all) aliases.set(record.upsertKey, winners.get(record.group)!.upsertKey);
  const unique = [...winners.values()].sort((a, b) => (a.upsertKey < b.upsertKey ? -1 : a.upsertKey > b.upsertKey ? 1 : 0));

  // Which of the runs exist already decides each upsert's conflict target.
  const ids: string[] = [];
  const naturalKeys: (readonly [string, string, string])[] = [];
  for (const keys of keysByGroup.values()) {
    for (const key of keys) {
      const parsed = JSON.parse(key) as string[];
      if (parsed[0] === "id") ids.push(parsed[1]!);
      else naturalKeys.push(unpackNatural(key));
    }
  }
  const existingIds = new Set<string>();
  const existingByKey = new Map<UpsertKey, string>();
  for (const row of await existingRuns(q, ids, naturalKeys)) {
    existingIds.add(row.id);
    existingByKey.set(idKey(row.id), row.id);
    if (row.flow_run_id !== null) existingByKey.set(naturalKey(row.flow_run_id, row.task_key, row.dynamic_key), row.id);
  }
  for (const record of unique) {
    const natural = naturalKeyOf(record);
    let target: "id" | "natural-key";
    if (natural && existingByKey.has(natural)) target = "natural-key";
    else if (existingIds.has(idOf(record))) target = "id";
    else {
      const adopted = [...keysByGroup.get(record.group)!].sort().find((key) => existingByKey.has(key));
      if (adopted) {
        // Point the row at the id an existing row of its group already holds.
        record.columns.id = existingByKey.get(adopted)!;
        target = "id";
      } else target = natural ? "natural-key" : "id";
    }
    record.target = target;
    record.targetValue = target === "natural-key" ? natural! : idKey(idOf(record));
  }

  const canonical = new Map<UpsertKey, string>();
  for (const segment of segmentsOf(unique, chunkSize(TASK_RUN_COLUMN_COUNT))) {
    // In chunks of the batch sizes' series, so that the statement texts repeat (see batch.ts).
    for (const rows of planChunks(segment.rows, TASK_RUN_COLUMN_COUNT)) await q.execute(upsertSql({ ...segment, rows }, at));
    if (segment.target === "natural-key") {
      const keys = segment.rows.map((r) => unpackNatural(naturalKeyOf(r)!));
      for (const part of planChunks(keys, NATURAL_KEY.length)) {
        const rows = await q.query<{ id: string; flow_run_id: string; task_key: string; dynamic_key: string }>(
          sql`SELECT r.id, r.flow_run_id, r.task_key, r.dynamic_key FROM task_run r WHERE ${naturalKeyCondition(part)}`,
        );
        for (const row of rows) canonical.set(naturalKey(row.flow_run_id, row.task_key, row.dynamic_key), row.id);
      }
    } else {
      for (const record of segment.rows) canonical.set(record.upsertKey, idOf(record));
    }
  }
  for (const [alias, key] of aliases) canonical.set(alias, canonical.get(key)!);

  // Every event's state (only the task runs were coalesced), on its run's canonical id.
  const runOfEvent = new Map<string, string>();
  const stateRows: Record<string, unknown>[] = [];
  const seenStates = new Set<string>();
  for (const record of all) {
    const taskRunId = canonical.get(record.upsertKey)!;
    runOfEvent.set(record.eventId, taskRunId);
    if (seenStates.has(record.state.id)) continue;
    seenStates.add(record.state.id);
    stateRows.push({
      id: record.state.id,
      created: at,
      updated: at,
      task_run_id: taskRunId,
      type: record.state.type,
      timestamp: record.state.timestamp,
      name: record.state.name,
      message: record.state.message,
      state_details: { ...record.state.state_details, task_run_id: taskRunId },
      data: record.state.data,
      result_artifact_id: null,
    });
  }
  const stateColumns = Object.keys(TASK_RUN_STATE.columns) as (keyof typeof TASK_RUN_STATE.columns)[];
  for (const part of planChunks(stateRows, stateColumns.length)) {
    const tuples = part.map((row) => sql`(${sql.join(stateColumns.map((c) => sql`${bindValue(TASK_RUN_STATE.columns[c], row[c])}`))})`);
    await q.execute(
      sql`INSERT INTO task_run_state (${sql.raw(stateColumns.map((c) => `"${c}"`).join(", "))}) VALUES ${sql.join(tuples)} ON CONFLICT ("id") DO NOTHING`,
    );
  }
  return runOfEvent;
}

/**
 * Records a batch of task-run changes atomically (see the module comment). A unique-key race with a
 * concurrent recorder is retried once, as Prefect does.
 */
export async function recordTaskRunChanges({ q }: RepositoryContext, changes: readonly TaskRunChange[]): Promise<RecordedTaskRunChange[]> {
  if (changes.length === 0) return [];
  for (let attempt = 1; ; attempt++) {
    // Fresh records for each attempt: resolving the conflict targets rewrites them. Inside a caller's
    // transaction this is a savepoint, so a failed attempt leaves the caller's work intact.
    const records = changes.map(recordOf);
    try {
      const runOfEvent = await q.transaction((tx) => recordOnce(tx, records));
      return records.map((r) => ({ event_id: r.eventId, task_run_id: runOfEvent.get(r.eventId)! }));
    } catch (error) {
      if (!(error instanceof AlreadyExistsError) || attempt >= 2) throw error;
    }
  }
}
