/**
 * Deployments, their schedules and versions, as Prefect's API shows them (snake_case, Prefect's field
 * names). The `infra_overrides` column is `job_variables` here, as in Prefect's API.
 *
 * In `*Create` / `*Update` inputs a field left out means "not given" (Prefect's `exclude_unset`): on an
 * upsert or an update it keeps the stored value; `null` sets it to null where that is allowed.
 */
import { z } from "zod";
import { type Schedule, type ScheduleInput, ScheduleSchema } from "../schedules.js";
import type { Timestamp } from "../timestamps.js";
import { JsonObject, Labels, Tags, Uuid } from "./common.js";

export const DeploymentStatus = z.enum(["READY", "NOT_READY"]);
export type DeploymentStatus = z.infer<typeof DeploymentStatus>;

export const ConcurrencyLimitStrategy = z.enum(["ENQUEUE", "CANCEL_NEW"]);
export type ConcurrencyLimitStrategy = z.infer<typeof ConcurrencyLimitStrategy>;

/** How runs over the deployment's concurrency limit are treated. */
export const ConcurrencyOptions = z.strictObject({
  collision_strategy: ConcurrencyLimitStrategy,
  /** Seconds for infrastructure to start before slots are revoked (60 to 86400). */
  grace_period_seconds: z.number().int().min(60).max(86400).nullish(),
});
export type ConcurrencyOptions = z.output<typeof ConcurrencyOptions>;

/** Prefect's CreatedBy / UpdatedBy. */
export const Actor = z.object({
  id: Uuid.nullish(),
  type: z.string().nullish(),
  display_value: z.string().nullish(),
});
export type Actor = z.output<typeof Actor>;

/** Prefect's NameOrEmpty: none of `/ % & > <`. */
const DeploymentName = z.string().regex(/^[^/%&><]*$/, { message: "name must not contain any of the characters / % & > <" });

const PositiveInteger = z.number().int().positive();

export interface DeploymentSchedule {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  deployment_id: string;
  schedule: Schedule;
  active: boolean;
  max_scheduled_runs: number | null;
  parameters: Record<string, unknown>;
  slug: string | null;
}

export const DeploymentScheduleCreate = z.strictObject({
  id: Uuid.optional(),
  active: z.boolean().default(true),
  schedule: ScheduleSchema,
  max_scheduled_runs: PositiveInteger.nullish(),
  parameters: JsonObject.default({}),
  slug: z.string().nullish(),
  /** Prefect's deploy-time rename directive: accepted, never stored. */
  replaces: z.string().nullish(),
});
export type DeploymentScheduleCreate = Omit<z.input<typeof DeploymentScheduleCreate>, "schedule"> & { schedule: ScheduleInput };

/** Fields left out are left as they are. */
export const DeploymentScheduleUpdate = z.strictObject({
  active: z.boolean().optional(),
  schedule: ScheduleSchema.optional(),
  max_scheduled_runs: PositiveInteger.nullish(),
  parameters: JsonObject.optional(),
  slug: z.string().nullish(),
  /** Prefect's deploy-time rename directive: accepted, never stored. */
  replaces: z.string().nullish(),
});
export type DeploymentScheduleUpdate = Omit<z.input<typeof DeploymentScheduleUpdate>, "schedule"> & { schedule?: ScheduleInput | undefined };

/** The concurrency limit (concurrency_limit_v2 row) a deployment points at. */
export interface DeploymentConcurrencyLimit {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  active: boolean;
  name: string;
  limit: number;
  active_slots: number;
  slot_decay_per_second: number;
}

export interface Deployment {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  version: string | null;
  description: string | null;
  flow_id: string;
  paused: boolean;
  status: DeploymentStatus;
  last_polled: Timestamp | null;
  /** The limit of the deployment's own concurrency limit (`deployment:<id>`), kept in step with it. */
  concurrency_limit: number | null;
  concurrency_limit_id: string | null;
  /** The row `concurrency_limit_id` points at (Prefect's `global_concurrency_limit`). */
  global_concurrency_limit: DeploymentConcurrencyLimit | null;
  concurrency_options: ConcurrencyOptions | null;
  /** Prefect's name for the `infra_overrides` column. */
  job_variables: Record<string, unknown>;
  parameters: Record<string, unknown>;
  parameter_openapi_schema: Record<string, unknown> | null;
  enforce_parameter_schema: boolean;
  pull_steps: Record<string, unknown>[] | null;
  tags: string[];
  labels: Labels | null;
  /** The queue's own name when the deployment has a queue, as Prefect's API shows it. */
  work_queue_name: string | null;
  work_queue_id: string | null;
  /** The pool of the deployment's queue. */
  work_pool_name: string | null;
  path: string | null;
  entrypoint: string | null;
  storage_document_id: string | null;
  infrastructure_document_id: string | null;
  created_by: Actor | null;
  updated_by: Actor | null;
  version_id: string | null;
  /** Newest first (by `updated`), as Prefect orders them. */
  schedules: DeploymentSchedule[];
}

const deploymentFields = {
  version: z.string().nullish(),
  description: z.string().nullish(),
  paused: z.boolean().optional(),
  schedules: z.array(DeploymentScheduleCreate).optional(),
  /** The deployment's own limit: creates, changes or (null) deletes its `deployment:<id>` concurrency limit. */
  concurrency_limit: PositiveInteger.nullish(),
  /** An existing concurrency limit to apply (Prefect's `global_concurrency_limit_id`). */
  concurrency_limit_id: Uuid.nullish(),
  concurrency_options: ConcurrencyOptions.nullish(),
  /** Applied only when not empty, as Prefect does. */
  job_variables: JsonObject.optional(),
  parameters: JsonObject.optional(),
  parameter_openapi_schema: JsonObject.nullish(),
  enforce_parameter_schema: z.boolean().optional(),
  pull_steps: z.array(JsonObject).nullish(),
  tags: Tags.optional(),
  labels: Labels.nullish(),
  work_queue_name: z.string().nullish(),
  work_queue_id: Uuid.nullish(),
  path: z.string().nullish(),
  entrypoint: z.string().nullish(),
  storage_document_id: Uuid.nullish(),
  infrastructure_document_id: Uuid.nullish(),
  updated_by: Actor.nullish(),
  version_id: Uuid.nullish(),
};

const oneLimit = (d: { concurrency_limit?: number | null | undefined; concurrency_limit_id?: string | null | undefined }) =>
  !(d.concurrency_limit && d.concurrency_limit_id);
const oneLimitMessage = { message: "A deployment cannot have both a concurrency limit and a global concurrency limit.", path: ["concurrency_limit_id"] };

/**
 * Prefect's upsert: a deployment for a (flow_id, name) pair that exists already updates that one
 * (fields not given keep their values; `created_by` is kept; schedules are replaced).
 */
export const DeploymentCreate = z
  .strictObject({
    id: Uuid.optional(),
    name: DeploymentName,
    flow_id: Uuid,
    created_by: Actor.nullish(),
    ...deploymentFields,
  })
  .refine(oneLimit, oneLimitMessage);
export type DeploymentCreate = Omit<z.input<typeof DeploymentCreate>, "schedules"> & { schedules?: DeploymentScheduleCreate[] | undefined };

/** `schedules`, when given, replaces every schedule of the deployment. */
export const DeploymentUpdate = z.strictObject(deploymentFields).refine(oneLimit, oneLimitMessage);
export type DeploymentUpdate = Omit<z.input<typeof DeploymentUpdate>, "schedules"> & { schedules?: DeploymentScheduleCreate[] | undefined };

export interface DeploymentVersion {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  deployment_id: string;
  branch: string | null;
  version_info: Record<string, unknown>;
  description: string | null;
  tags: string[];
  labels: Labels | null;
  entrypoint: string | null;
  pull_steps: Record<string, unknown>[] | null;
  parameters: Record<string, unknown>;
  parameter_openapi_schema: Record<string, unknown> | null;
  enforce_parameter_schema: boolean;
  work_queue_id: string | null;
  work_queue_name: string | null;
  /** Prefect's name for the `infra_overrides` column. */
  job_variables: Record<string, unknown>;
}

/** A version of a deployment; at most one per (deployment, branch). */
export const DeploymentVersionCreate = z.strictObject({
  id: Uuid.optional(),
  branch: z.string().nullish(),
  version_info: JsonObject.default({}),
  description: z.string().nullish(),
  tags: Tags.default([]),
  labels: Labels.nullish(),
  entrypoint: z.string().nullish(),
  pull_steps: z.array(JsonObject).nullish(),
  parameters: JsonObject.default({}),
  parameter_openapi_schema: JsonObject.nullish(),
  enforce_parameter_schema: z.boolean().default(false),
  work_queue_id: Uuid.nullish(),
  work_queue_name: z.string().nullish(),
  job_variables: JsonObject.default({}),
});
export type DeploymentVersionCreate = z.input<typeof DeploymentVersionCreate>;

/** Which deployments to mark: these, and those of these work queues (Prefect's mark_deployments_ready/not_ready). */
export interface DeploymentStatusTargets {
  readonly deploymentIds?: readonly string[] | undefined;
  readonly workQueueIds?: readonly string[] | undefined;
}

export const DeploymentSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"]);
export type DeploymentSort = z.infer<typeof DeploymentSort>;

/** Prefect's DeploymentScheduleFilter: `active.eq_`. */
export const DeploymentScheduleFilter = z.strictObject({
  operator: z.enum(["and_", "or_"]).default("and_"),
  active: z.strictObject({ eq_: z.boolean().nullish() }).nullish(),
});
export type DeploymentScheduleFilter = z.input<typeof DeploymentScheduleFilter>;
