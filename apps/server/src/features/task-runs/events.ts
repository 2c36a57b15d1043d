/**
 * Prefect's reading of a client's `prefect.task-run.<State>` event (`task_run_from_event` and
 * `db_recordable_task_run_from_event` in services/task_run_recorder.py): the task run columns the
 * event sets and the state it reports, each field validated as Prefect's server models do. Only
 * reading; `db.taskRuns.recordChanges` writes the result.
 */
import { defaultStateName, EventCreate, Labels, now, randomRunName, StateType, type TaskRunChange, TimestampSchema, Uuid } from "@prefect/db";
import { emptyStateDetails } from "@prefect/orchestration";
import { z } from "zod";
import { MAX_CACHE_KEY_LENGTH } from "../../prefect/runs.js";

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

/** An event that cannot be read as a task-run state change; the message says which field and why. */
export class InvalidTaskRunEvent extends Error {}

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

/** Prefect's `task_run_from_event` + `db_recordable_task_run_from_event`; throws InvalidTaskRunEvent. */
export function taskRunChangeFromEvent(input: unknown): TaskRunChange {
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

  // Prefect's StateDetails, every field with its default.
  const details: Record<string, unknown> = { ...emptyStateDetails() };
  for (const [key, value] of Object.entries(v.state_details ?? {})) {
    if (!(key in details)) continue;
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
  const state: TaskRunChange["state"] = {
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
  return { eventId: event.id, columns, state };
}
