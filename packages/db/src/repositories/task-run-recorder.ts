/**
 * The database side of Prefect's task-run recorder (`services/task_run_recorder.py`): Prefect 3.x
 * clients orchestrate ordinary tasks themselves and report each state change as a
 * `prefect.task-run.<State>` event; the server turns those events into `task_run` and
 * `task_run_state` rows.
 *
 * For one batch of events, in one transaction:
 *  - each event becomes a task run (id from the resource `prefect.task-run.<id>`, flow run from the
 *    related resource in role `flow-run`, columns from `payload.task_run`, only those the client sent)
 *    and a state (id = the event's id, timestamp = `occurred`, fields from `payload.validated_state`);
 *  - events that concern the same task run (same id, or same flow run + task key + dynamic key) are
 *    coalesced, the one with the newest state timestamp winning;
 *  - each task run is upserted with `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE task_run.state_timestamp
 *    < excluded.state_timestamp`, so a run only moves forward, whatever order the events arrive in;
 *    the conflict target is the natural key or the id, chosen from the rows that already exist;
 *  - every event's state is inserted with `ON CONFLICT (id) DO NOTHING`, so an event recorded twice
 *    changes nothing.
 * The same SQL runs on both backends.
 */
import { z } from "zod";
import { chunkSize } from "../batch.js";
import { AlreadyExistsError } from "../errors.js";
import { randomRunName } from "../names.js";
import { EventCreate } from "../schemas/events.js";
import { Labels, StateType, TimestampSchema, Uuid } from "../schemas/common.js";
import { defaultStateName } from "../schemas/runs.js";
import { type Sql, sql } from "../sql.js";
import { bindValue, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RepositoryContext } from "./context.js";

/** What `recordFromEvents` did with a batch. */
export interface TaskRunEventsRecorded {
  /** For each recorded event (in the order given), its id and the task run it was recorded on. */
  readonly recorded: { readonly event_id: string; readonly task_run_id: string }[];
  /** Events that could not be read as a task-run state change, with the reason; nothing was written for them. */
  readonly invalid: { readonly event_id: string | null; readonly message: string }[];
}

const TASK_RUN = tables.task_run;
const TASK_RUN_STATE = tables.task_run_state;
const TASK_RUN_COLUMN_COUNT = Object.keys(TASK_RUN.columns).length;
const NATURAL_KEY = ["flow_run_id", "task_key", "dynamic_key"] as const;
/** Prefect's PREFECT_SERVER_TASKS_MAX_CACHE_KEY_LENGTH default. */
const MAX_CACHE_KEY_LENGTH = 2000;

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

/** TaskRunPolicy as Prefect stores it (every field, defaults filled in). */
const TaskRunPolicy = z
  .looseObject({
    max_retries: z.number().int().default(0),
    retry_delay_seconds: z.number().default(0),
    retries: z.number().int().nullish(),
    retry_delay: z.union([z.number(), z.array(z.number()).max(50)]).nullish(),
    retry_jitter_factor: z.number().min(0).nullish(),
  })
  .transform((p) => {
    // Prefect's populate_deprecated_fields: the old names fill the new ones when those are empty.
    const retries = !p.retries && p.max_retries !== 0 ? p.max_retries : (p.retries ?? null);
    const hasDelay = Array.isArray(p.retry_delay) ? p.retry_delay.length > 0 : Boolean(p.retry_delay);
    const retry_delay = !hasDelay && p.retry_delay_seconds !== 0 ? p.retry_delay_seconds : (p.retry_delay ?? null);
    return {
      max_retries: p.max_retries,
      retry_delay_seconds: p.retry_delay_seconds,
      retries,
      retry_delay,
      retry_jitter_factor: p.retry_jitter_factor ?? null,
    };
  });
const DEFAULT_POLICY = TaskRunPolicy.parse({});

/** One input of `task_inputs`: TaskRunResult | FlowRunResult | Parameter | Constant, as Prefect keeps them. */
const RunInput = z.looseObject({ input_type: z.string().optional() }).transform((input, ctx) => {
  const kind =
    input.input_type ?? ("id" in input ? "task_run" : "name" in input ? "parameter" : "type" in input ? "constant" : undefined);
  const field = kind === "task_run" || kind === "flow_run" ? "id" : kind === "parameter" ? "name" : kind === "constant" ? "type" : undefined;
  const value = field ? (input as Record<string, unknown>)[field] : undefined;
  const parsed = field === "id" ? Uuid.safeParse(value) : z.string().safeParse(value);
  if (!kind || !field || !parsed.success) {
    ctx.addIssue({ code: "custom", message: "task input must be a task_run, flow_run, parameter or constant reference" });
    return z.NEVER;
  }
  return { input_type: kind, [field]: parsed.data };
});

/** A timedelta as pydantic reads it: seconds, or an ISO 8601 duration (`PT1.5S`, `P1DT2H`). */
const Duration = z.union([
  z.number(),
  z.string().transform((text, ctx) => {
    const m = /^(-)?P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text.trim());
    if (!m || text.trim() === "P" || text.trim().endsWith("T")) {
      ctx.addIssue({ code: "custom", message: "Input should be a valid timedelta" });
      return z.NEVER;
    }
    const [, sign, d = "0", h = "0", mi = "0", s = "0"] = m;
    const seconds = Number(d) * 86400 + Number(h) * 3600 + Number(mi) * 60 + Number(s);
    return sign ? -seconds : seconds;
  }),
]);

const nullableTimestamp = TimestampSchema.nullable();

/** The fields of Prefect's server TaskRun model the recorder writes, each as Prefect validates it. */
const TASK_RUN_FIELDS: Record<string, z.ZodType> = {
  id: Uuid,
  flow_run_id: Uuid.nullable(),
  name: z
    .string()
    .nullable()
    .transform((name) => name ?? randomRunName()),
  task_key: z.string(),
  dynamic_key: z.string(),
  cache_key: z.string().max(MAX_CACHE_KEY_LENGTH, { message: `Cache key exceeded maximum allowed length of ${MAX_CACHE_KEY_LENGTH} characters.` }).nullable(),
  cache_expiration: nullableTimestamp,
  task_version: z.string().nullable(),
  empirical_policy: TaskRunPolicy,
  tags: z.array(z.string()),
  labels: Labels.nullable(),
  task_inputs: z.record(z.string(), z.array(RunInput)),
  state_type: StateType.nullable(),
  state_name: z.string().nullable(),
  run_count: z.number().int(),
  flow_run_run_count: z.number().int(),
  expected_start_time: nullableTimestamp,
  next_scheduled_start_time: nullableTimestamp,
  start_time: nullableTimestamp,
  end_time: nullableTimestamp,
  total_run_time: Duration,
};
/** Model fields Prefect leaves out of the row (`model_dump_for_orm(exclude=...)`) or overrides anyway. */
const IGNORED_FIELDS = new Set(["state_id", "state", "created", "updated", "estimated_run_time", "estimated_start_time_delta"]);

/** Prefect's StateDetails, every field with its default. */
const STATE_DETAILS_DEFAULTS: Record<string, unknown> = {
  flow_run_id: null,
  task_run_id: null,
  child_flow_run_id: null,
  scheduled_time: null,
  cache_key: null,
  cache_expiration: null,
  deferred: false,
  untrackable_result: false,
  pause_timeout: null,
  pause_reschedule: false,
  pause_key: null,
  run_input_keyset: null,
  refresh_cache: null,
  retriable: null,
  transition_id: null,
  task_parameters_id: null,
  traceparent: null,
  deployment_concurrency_lease_id: null,
};
const STATE_DETAILS_TIMESTAMPS = new Set(["scheduled_time", "cache_expiration", "pause_timeout"]);

const ValidatedState = z.looseObject({
  id: Uuid.optional(),
  type: StateType,
  name: z.string().nullish(),
  timestamp: TimestampSchema.optional(),
  message: z.string().nullish(),
  data: z.unknown().optional(),
  state_details: z.record(z.string(), z.unknown()).nullish(),
});

type UpsertKey = string;
const idKey = (id: string): UpsertKey => JSON.stringify(["id", id]);
const naturalKey = (flowRunId: string, taskKey: string, dynamicKey: string): UpsertKey => JSON.stringify(["natural-key", flowRunId, taskKey, dynamicKey]);

/** One event's task run and state, and the upsert bookkeeping resolved for it. */
interface TaskRunRecord {
  readonly eventId: string;
  /** The task run columns this event sets (a key it lacks is left alone on update). */
  readonly columns: Record<string, unknown>;
  readonly state: StateRow;
  group: UpsertKey;
  upsertKey: UpsertKey;
  target: "id" | "natural-key";
  targetValue: UpsertKey;
}

interface StateRow {
  id: string;
  type: StateType;
  name: string;
  timestamp: Timestamp;
  message: string | null;
  data: unknown;
  state_details: Record<string, unknown>;
}

class InvalidTaskRunEvent extends Error {}

function problem(error: z.ZodError, where: string): InvalidTaskRunEvent {
  const issue = error.issues[0];
  const path = [where, ...(issue?.path ?? []).map(String)].join(".");
  return new InvalidTaskRunEvent(`${path}: ${issue?.message ?? "invalid"}`);
}

/** The UUID in a resource id `<kind>.<uuid>` (Prefect's `Resource.prefect_object_id`). */
function objectId(resourceId: string, kind: string): string {
  const prefix = `${kind}.`;
  if (!resourceId.startsWith(prefix)) throw new InvalidTaskRunEvent(`Resource ID ${resourceId} does not start with ${prefix}`);
  const parsed = Uuid.safeParse(resourceId.slice(prefix.length));
  if (!parsed.success) throw new InvalidTaskRunEvent(`Resource ID ${resourceId} does not end with a UUID`);
  return parsed.data;
}

/** Prefect's `task_run_from_event` + `db_recordable_task_run_from_event`. */
function recordFromEvent(input: unknown): TaskRunRecord {
  const parsedEvent = EventCreate.safeParse(input);
  if (!parsedEvent.success) throw problem(parsedEvent.error, "event");
  const event = parsedEvent.data;
  const taskRunId = objectId(event.resource["prefect.resource.id"]!, "prefect.task-run");
  // The first related resource in role "flow-run" (Prefect's `resource_in_role`).
  const flowRunResource = event.related.find((r) => r["prefect.resource.role"] === "flow-run");
  const flowRunId = flowRunResource ? objectId(flowRunResource["prefect.resource.id"]!, "prefect.flow-run") : null;

  const payload = event.payload;
  const rawState = payload.validated_state;
  const parsedState = ValidatedState.safeParse(rawState);
  if (!parsedState.success) throw problem(parsedState.error, "payload.validated_state");
  const v = parsedState.data;
  const rawTaskRun = payload.task_run;
  if (rawTaskRun === null || typeof rawTaskRun !== "object" || Array.isArray(rawTaskRun)) {
    throw new InvalidTaskRunEvent("payload.task_run: must be an object");
  }

  // {"id": task_run_id, "flow_run_id": flow_run_id, ...payload.task_run}: the payload wins, as in Prefect.
  const columns: Record<string, unknown> = { id: taskRunId, flow_run_id: flowRunId };
  for (const [field, value] of Object.entries(rawTaskRun as Record<string, unknown>)) {
    const schema = TASK_RUN_FIELDS[field];
    if (!schema || IGNORED_FIELDS.has(field)) continue;
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw problem(parsed.error, `payload.task_run.${field}`);
    columns[field] = parsed.data;
  }
  for (const required of ["task_key", "dynamic_key"]) {
    if (!(required in columns)) throw new InvalidTaskRunEvent(`payload.task_run.${required}: Field required`);
  }

  const details: Record<string, unknown> = { ...STATE_DETAILS_DEFAULTS };
  for (const [key, value] of Object.entries(v.state_details ?? {})) {
    if (!(key in STATE_DETAILS_DEFAULTS)) continue;
    if (STATE_DETAILS_TIMESTAMPS.has(key) && value !== null) {
      const parsed = TimestampSchema.safeParse(value);
      if (!parsed.success) throw problem(parsed.error, `payload.validated_state.state_details.${key}`);
      details[key] = parsed.data;
    } else details[key] = value;
  }
  if (v.type === "SCHEDULED" && !details.scheduled_time) details.scheduled_time = now();
  details.task_run_id = taskRunId;
  details.flow_run_id = flowRunId;
  // {"id": event.id, "timestamp": event.occurred, ...validated_state}
  const state: StateRow = {
    id: v.id ?? event.id,
    type: v.type,
    name: v.name ?? defaultStateName(v.type),
    timestamp: v.timestamp ?? event.occurred,
    message: v.message ?? null,
    data: v.data === undefined ? null : v.data,
    state_details: details,
  };
  columns.state_id = state.id;
  columns.state_type = state.type;
  columns.state_name = state.name;
  columns.state_timestamp = state.timestamp;
  return { eventId: event.id, columns, state, group: "", upsertKey: "", target: "id", targetValue: "" };
}

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
  const defaults: Record<string, () => unknown> = { name: randomRunName, empirical_policy: () => DEFAULT_POLICY };
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
  // Bounded statements: ids in one list, natural keys 300 at a time (4 parameters each).
  const queries: Sql[] = [];
  for (const part of chunks(ids, 1000)) queries.push(q.dialect.inList(sql.raw("r.id"), part));
  for (const part of chunks(keys, 300)) queries.push(naturalKeyCondition(part));
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
    await q.execute(upsertSql(segment, at));
    if (segment.target === "natural-key") {
      const keys = segment.rows.map((r) => unpackNatural(naturalKeyOf(r)!));
      for (const part of chunks(keys, 300)) {
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
  for (const part of chunks(stateRows, chunkSize(stateColumns.length))) {
    const tuples = part.map((row) => sql`(${sql.join(stateColumns.map((c) => sql`${bindValue(TASK_RUN_STATE.columns[c], row[c])}`))})`);
    await q.execute(
      sql`INSERT INTO task_run_state (${sql.raw(stateColumns.map((c) => `"${c}"`).join(", "))}) VALUES ${sql.join(tuples)} ON CONFLICT ("id") DO NOTHING`,
    );
  }
  return runOfEvent;
}

/**
 * Records a batch of task-run events (see the module comment). Events that cannot be read as a
 * task-run state change are reported in `invalid` and skipped; the others are written atomically.
 * A unique-key race with a concurrent recorder is retried once, as Prefect does.
 */
export async function recordTaskRunEvents({ q }: RepositoryContext, events: readonly unknown[]): Promise<TaskRunEventsRecorded> {
  const invalid: { event_id: string | null; message: string }[] = [];
  const valid: unknown[] = [];
  for (const event of events) {
    try {
      recordFromEvent(event);
      valid.push(event);
    } catch (error) {
      if (!(error instanceof InvalidTaskRunEvent)) throw error;
      const id = (event as { id?: unknown } | null)?.id;
      invalid.push({ event_id: typeof id === "string" ? id : null, message: error.message });
    }
  }
  if (valid.length === 0) return { recorded: [], invalid };
  for (let attempt = 1; ; attempt++) {
    // Parsed afresh for each attempt: resolving the conflict targets rewrites records. Inside a
    // caller's transaction this is a savepoint, so a failed attempt leaves the caller's work intact.
    const records = valid.map(recordFromEvent);
    try {
      const runOfEvent = await q.transaction((tx) => recordOnce(tx, records));
      return { recorded: records.map((r) => ({ event_id: r.eventId, task_run_id: runOfEvent.get(r.eventId)! })), invalid };
    } catch (error) {
      if (!(error instanceof AlreadyExistsError) || attempt >= 2) throw error;
    }
  }
}
