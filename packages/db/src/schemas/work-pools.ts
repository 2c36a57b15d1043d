/**
 * Work pools, their queues and workers, as Prefect's API shows them (WorkPoolCreate/Update,
 * WorkQueueCreate/Update, the worker heartbeat body, WorkPoolFilter, WorkQueueFilter, WorkerFilter),
 * and what a worker gets when it asks for scheduled runs (WorkerFlowRunResponse).
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { JsonObject, Limit, Operator, StateType, TimestampSchema, Uuid } from "./common.js";
import type { FlowRun } from "./runs.js";

export const WorkPoolStatus = z.enum(["READY", "NOT_READY", "PAUSED"]);
export type WorkPoolStatus = z.infer<typeof WorkPoolStatus>;

export const WorkQueueStatus = z.enum(["READY", "NOT_READY", "PAUSED"]);
export type WorkQueueStatus = z.infer<typeof WorkQueueStatus>;

export const WorkerStatus = z.enum(["ONLINE", "OFFLINE"]);
export type WorkerStatus = z.infer<typeof WorkerStatus>;

/** Prefect's pool type for legacy agents, whose status Prefect never manages. */
export const AGENT_POOL_TYPE = "prefect-agent";
/** The queue every pool is created with. */
export const DEFAULT_QUEUE_NAME = "default";

/** Characters Prefect bans from object names (they would break its URL paths). */
const BANNED_CHARACTERS = /[/%&><]/;
const bannedMessage = "String should match pattern '^[^/%&><]+$'";

/** Prefect's `Name`: non-empty, without `/ % & > <`. */
const Name = z.string().min(1, { message: bannedMessage }).refine((v) => !BANNED_CHARACTERS.test(v), { message: bannedMessage });

/** Prefect's `NonEmptyishName`: also not just quotes and spaces. */
const NonEmptyishName = Name.refine((v) => v.replace(/^['" ]+|['" ]+$/g, "") !== "", { message: "name cannot be an empty string" });

const NonNegative = z.number().int().min(0);
const Positive = z.number().int().min(1);

export const WorkPoolStorageConfiguration = z.strictObject({
  bundle_upload_step: JsonObject.nullish().transform((v) => v ?? null),
  bundle_execution_step: JsonObject.nullish().transform((v) => v ?? null),
  default_result_storage_block_id: Uuid.nullish().transform((v) => v ?? null),
});
export type WorkPoolStorageConfiguration = z.output<typeof WorkPoolStorageConfiguration>;

const PLACEHOLDER = /{{\s*([\w.\-[\]$]+)\s*}}/g;

/**
 * Prefect's base job template rule: empty, or a `job_configuration` whose `{{ placeholders }}` are
 * all declared as properties of the `variables` schema.
 */
const BaseJobTemplate = JsonObject.superRefine((template, ctx) => {
  if (Object.keys(template).length === 0) return;
  const jobConfiguration = template.job_configuration;
  const variables = template.variables;
  if (!isNonEmptyObject(jobConfiguration) || !isNonEmptyObject(variables)) {
    ctx.addIssue({ code: "custom", message: "The `base_job_template` must contain both a `job_configuration` key and a `variables` key." });
    return;
  }
  const used = new Set<string>();
  for (const value of Object.values(jobConfiguration)) {
    for (const match of JSON.stringify(value ?? null).matchAll(PLACEHOLDER)) used.add(match[1]!);
  }
  const properties = isNonEmptyObject(variables.properties) ? variables.properties : {};
  const missing = [...used].filter((name) => !(name in properties));
  if (missing.length > 0) {
    ctx.addIssue({
      code: "custom",
      message:
        "The variables specified in the job configuration template must be present as properties in the variables schema. " +
        `Your job configuration uses the following undeclared variable(s): ${missing.join(" ,")}.`,
    });
  }
});

function isNonEmptyObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length > 0;
}

export interface WorkPool {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  description: string | null;
  type: string;
  base_job_template: Record<string, unknown>;
  is_paused: boolean;
  default_queue_id: string | null;
  concurrency_limit: number | null;
  status: WorkPoolStatus;
  last_transitioned_status_at: Timestamp | null;
  last_status_event_id: string | null;
  storage_configuration: WorkPoolStorageConfiguration;
}

export const WorkPoolCreate = z.object({
  id: Uuid.optional(),
  name: NonEmptyishName,
  description: z.string().nullish(),
  type: z.string().default(AGENT_POOL_TYPE),
  base_job_template: BaseJobTemplate.default({}),
  is_paused: z.boolean().default(false),
  concurrency_limit: NonNegative.nullish(),
  storage_configuration: WorkPoolStorageConfiguration.default({
    bundle_upload_step: null,
    bundle_execution_step: null,
    default_result_storage_block_id: null,
  }),
});
export type WorkPoolCreate = z.input<typeof WorkPoolCreate>;

/** Only the fields given change; `null` clears the nullable ones, as in Prefect's PATCH. */
export const WorkPoolUpdate = z.object({
  description: z.string().nullish(),
  is_paused: z.boolean().nullish(),
  base_job_template: BaseJobTemplate.nullish(),
  concurrency_limit: NonNegative.nullish(),
  storage_configuration: WorkPoolStorageConfiguration.nullish(),
});
export type WorkPoolUpdate = z.input<typeof WorkPoolUpdate>;

/** A legacy (tag-based) queue's selection of runs: all of these tags, any of these deployments. */
export const QueueFilter = z.object({
  tags: z.array(z.string()).nullish().transform((v) => v ?? null),
  deployment_ids: z.array(Uuid).nullish().transform((v) => v ?? null),
});
export type QueueFilter = z.output<typeof QueueFilter>;

export interface WorkQueue {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  description: string;
  is_paused: boolean;
  concurrency_limit: number | null;
  /** Lower is more important; 1 is the highest. Distinct within a pool. */
  priority: number;
  last_polled: Timestamp | null;
  status: WorkQueueStatus;
  work_pool_id: string;
  work_pool_name: string;
  /** Legacy agent queues' filter; null for queues in work pools. */
  filter: QueueFilter | null;
}

export const WorkQueueCreate = z.object({
  id: Uuid.optional(),
  name: Name,
  description: z.string().nullish(),
  is_paused: z.boolean().default(false),
  concurrency_limit: NonNegative.nullish(),
  /** Default: the first free priority counting from 1. A taken priority moves the others down. */
  priority: Positive.nullish(),
  /** Deprecated in Prefect: makes a legacy tag-based queue. */
  filter: QueueFilter.nullish(),
});
export type WorkQueueCreate = z.input<typeof WorkQueueCreate>;

export const WorkQueueUpdate = z.object({
  name: Name.optional(),
  description: z.string().nullish(),
  is_paused: z.boolean().optional(),
  concurrency_limit: NonNegative.nullish(),
  priority: Positive.optional(),
  last_polled: TimestampSchema.nullish(),
  /** Deprecated in Prefect; null clears it. */
  filter: QueueFilter.nullish(),
});
export type WorkQueueUpdate = z.input<typeof WorkQueueUpdate>;

export interface Worker {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  work_pool_id: string;
  name: string;
  last_heartbeat_time: Timestamp;
  heartbeat_interval_seconds: number | null;
  status: WorkerStatus;
}

/** The body of Prefect's `POST /work_pools/{name}/workers/heartbeat`. */
export const WorkerHeartbeat = z.object({
  name: z.string().min(1),
  heartbeat_interval_seconds: z.number().int().nullish(),
});
export type WorkerHeartbeat = z.input<typeof WorkerHeartbeat>;

const list = <T extends z.ZodType>(item: T) => z.array(item).nullish();
const criterion = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape).nullish();
const operator = Operator.default("and_");

export const WorkPoolFilter = z.strictObject({
  operator,
  id: criterion({ any_: list(Uuid) }),
  name: criterion({ any_: list(z.string()) }),
  type: criterion({ any_: list(z.string()) }),
});
export type WorkPoolFilter = z.input<typeof WorkPoolFilter>;

export const WorkQueueFilter = z.strictObject({
  operator,
  id: criterion({ any_: list(Uuid) }),
  /** `startswith_`: case-insensitive prefixes, any of which may match. */
  name: criterion({ any_: list(z.string()), startswith_: list(z.string()) }),
});
export type WorkQueueFilter = z.input<typeof WorkQueueFilter>;

export const WorkerFilter = z.strictObject({
  operator,
  last_heartbeat_time: criterion({ before_: TimestampSchema.nullish(), after_: TimestampSchema.nullish() }),
  status: criterion({ any_: list(WorkerStatus), not_any_: list(WorkerStatus) }),
});
export type WorkerFilter = z.input<typeof WorkerFilter>;

/** Which scheduled runs a worker asks for (Prefect's `get_scheduled_flow_runs` body, by names). */
export const ScheduledFlowRunQuery = z.object({
  /** Only runs in these pools; all pools when absent. */
  workPoolNames: z.array(z.string()).nullish(),
  /** Only runs in queues of these names (within `workPoolNames` when both are given). */
  workQueueNames: z.array(z.string()).nullish(),
  /** Only runs due at or before this time (inclusive, on `next_scheduled_start_time`). */
  scheduledBefore: TimestampSchema.nullish(),
  /** Only runs due at or after this time (inclusive). */
  scheduledAfter: TimestampSchema.nullish(),
  /** At most this many runs in all; no cap when absent. */
  limit: Limit.nullish(),
});
export type ScheduledFlowRunQuery = z.input<typeof ScheduledFlowRunQuery>;

/** The state claimed runs move to, e.g. `{ type: "PENDING" }`. */
export const ClaimState = z.object({
  type: StateType,
  name: z.string().nullish(),
  message: z.string().nullish(),
  state_details: JsonObject.nullish(),
  data: z.unknown().optional(),
});
export type ClaimState = z.input<typeof ClaimState>;

export const ClaimScheduledFlowRuns = ScheduledFlowRunQuery.extend({ state: ClaimState });
export type ClaimScheduledFlowRuns = z.input<typeof ClaimScheduledFlowRuns>;

/** Prefect's WorkerFlowRunResponse. */
export interface WorkerFlowRun {
  work_pool_id: string;
  work_queue_id: string;
  flow_run: FlowRun;
}

/** A pool before and after a change. */
export interface WorkPoolChange {
  previous: WorkPool;
  current: WorkPool;
}

/** A queue before and after a change. */
export interface WorkQueueChange {
  previous: WorkQueue;
  current: WorkQueue;
}

/** What a heartbeat did: the worker as recorded, and the pool's change when it became READY. */
export interface WorkerHeartbeatResult {
  worker: Worker;
  readied: WorkPoolChange | null;
}

/** A deleted pool, with the queues that went with it. */
export interface DeletedWorkPool {
  pool: WorkPool;
  queues: WorkQueue[];
}

/** A flow run holding one of a pool's or queue's concurrency slots (Prefect's FlowRunSlotSummary). */
export interface SlotHolder {
  id: string;
  name: string;
  work_queue_id: string | null;
  state_type: FlowRun["state_type"];
  state_name: string | null;
  start_time: Timestamp | null;
  state_timestamp: Timestamp | null;
}

/** Which runs of one queue a legacy poll asks for (Prefect's `read_work_queue_runs` body). */
export const QueueRunsQuery = z.object({
  /** Only runs due at or before this time. */
  scheduledBefore: TimestampSchema.nullish(),
  /** At most this many runs; no cap when absent. */
  limit: Limit.nullish(),
});
export type QueueRunsQuery = z.input<typeof QueueRunsQuery>;
