/**
 * Domain types for flows, flow runs, task runs and their states. These are the rows as Prefect's
 * API shows them (snake_case, Prefect's field names); repositories take the `*Create` / `*Update`
 * inputs and return these.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { JsonObject, Labels, StateType, Tags, TimestampSchema, Uuid } from "./common.js";

export interface Flow {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  tags: string[];
  labels: Labels | null;
}

export const FlowCreate = z.object({
  id: Uuid.optional(),
  name: z.string().min(1, { message: "name must not be empty" }),
  tags: Tags.default([]),
  labels: Labels.nullish(),
});
export type FlowCreate = z.input<typeof FlowCreate>;

export const FlowUpdate = z.object({
  tags: Tags.optional(),
  labels: Labels.nullish(),
});
export type FlowUpdate = z.input<typeof FlowUpdate>;

export interface State {
  id: string;
  type: StateType;
  name: string;
  timestamp: Timestamp;
  message: string | null;
  data: unknown;
  state_details: Record<string, unknown>;
  result_artifact_id: string | null;
}

export interface FlowRunState extends State {
  flow_run_id: string;
}

export interface TaskRunState extends State {
  task_run_id: string;
}

export const StateCreate = z.object({
  id: Uuid.optional(),
  type: StateType,
  name: z.string().nullish(),
  timestamp: TimestampSchema.optional(),
  message: z.string().nullish(),
  data: z.unknown().optional(),
  state_details: JsonObject.nullish(),
  result_artifact_id: Uuid.nullish(),
});
export type StateCreate = z.input<typeof StateCreate>;

/** Prefect's default state name: the type, capitalised ("Completed"). */
export function defaultStateName(type: StateType): string {
  return type.charAt(0) + type.slice(1).toLowerCase();
}

/**
 * The columns orchestration keeps current on a run as its state changes (Prefect's global policy).
 * Repositories store them as given.
 */
export const RunBookkeeping = z.object({
  run_count: z.number().int().min(0).optional(),
  start_time: TimestampSchema.nullish(),
  end_time: TimestampSchema.nullish(),
  total_run_time: z.number().min(0).optional(),
  expected_start_time: TimestampSchema.nullish(),
  next_scheduled_start_time: TimestampSchema.nullish(),
  empirical_policy: JsonObject.optional(),
});
export type RunBookkeeping = z.input<typeof RunBookkeeping>;

interface RunCommon {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  state_id: string | null;
  state_type: StateType | null;
  state_name: string | null;
  state_timestamp: Timestamp | null;
  run_count: number;
  expected_start_time: Timestamp | null;
  next_scheduled_start_time: Timestamp | null;
  start_time: Timestamp | null;
  end_time: Timestamp | null;
  /** Seconds. */
  total_run_time: number;
  empirical_policy: Record<string, unknown>;
  tags: string[];
  labels: Labels | null;
}

export interface FlowRun extends RunCommon {
  flow_id: string;
  deployment_id: string | null;
  deployment_version: string | null;
  work_queue_id: string | null;
  work_queue_name: string | null;
  flow_version: string | null;
  parameters: Record<string, unknown>;
  idempotency_key: string | null;
  context: Record<string, unknown>;
  parent_task_run_id: string | null;
  auto_scheduled: boolean;
  infrastructure_document_id: string | null;
  infrastructure_pid: string | null;
  created_by: Record<string, unknown> | null;
  job_variables: Record<string, unknown> | null;
  /** The work pool of the run's work queue. */
  work_pool_id: string | null;
  work_pool_name: string | null;
  /** The current state (the row `state_id` points at), or null before the first one. */
  state: State | null;
}

const runCreateCommon = {
  id: Uuid.optional(),
  name: z.string().min(1).optional(),
  empirical_policy: JsonObject.default({}),
  tags: Tags.default([]),
  labels: Labels.nullish(),
  run_count: z.number().int().min(0).optional(),
  expected_start_time: TimestampSchema.nullish(),
  next_scheduled_start_time: TimestampSchema.nullish(),
  start_time: TimestampSchema.nullish(),
  end_time: TimestampSchema.nullish(),
  total_run_time: z.number().min(0).optional(),
  state: StateCreate.nullish(),
};

export const FlowRunCreate = z.object({
  ...runCreateCommon,
  flow_id: Uuid,
  deployment_id: Uuid.nullish(),
  deployment_version: z.string().nullish(),
  flow_version: z.string().nullish(),
  parameters: JsonObject.default({}),
  idempotency_key: z.string().nullish(),
  context: JsonObject.default({}),
  parent_task_run_id: Uuid.nullish(),
  work_queue_id: Uuid.nullish(),
  work_queue_name: z.string().nullish(),
  job_variables: JsonObject.nullish(),
  infrastructure_document_id: Uuid.nullish(),
  infrastructure_pid: z.string().nullish(),
  created_by: JsonObject.nullish(),
  auto_scheduled: z.boolean().default(false),
});
export type FlowRunCreate = z.input<typeof FlowRunCreate>;

export const FlowRunUpdate = z.object({
  name: z.string().min(1).optional(),
  flow_version: z.string().nullish(),
  parameters: JsonObject.optional(),
  context: JsonObject.optional(),
  empirical_policy: JsonObject.optional(),
  tags: Tags.optional(),
  labels: Labels.nullish(),
  job_variables: JsonObject.nullish(),
  infrastructure_pid: z.string().nullish(),
  infrastructure_document_id: Uuid.nullish(),
  work_queue_id: Uuid.nullish(),
  work_queue_name: z.string().nullish(),
  deployment_id: Uuid.nullish(),
  deployment_version: z.string().nullish(),
  idempotency_key: z.string().nullish(),
  parent_task_run_id: Uuid.nullish(),
  created_by: JsonObject.nullish(),
  auto_scheduled: z.boolean().optional(),
});
export type FlowRunUpdate = z.input<typeof FlowRunUpdate>;

export interface TaskRun extends RunCommon {
  flow_run_id: string | null;
  task_key: string;
  dynamic_key: string;
  cache_key: string | null;
  cache_expiration: Timestamp | null;
  task_version: string | null;
  flow_run_run_count: number;
  task_inputs: Record<string, unknown>;
  state: State | null;
}

export const TaskRunCreate = z.object({
  ...runCreateCommon,
  flow_run_id: Uuid.nullish(),
  task_key: z.string().min(1),
  dynamic_key: z.string(),
  cache_key: z.string().nullish(),
  cache_expiration: TimestampSchema.nullish(),
  task_version: z.string().nullish(),
  flow_run_run_count: z.number().int().min(0).optional(),
  task_inputs: JsonObject.default({}),
});
export type TaskRunCreate = z.input<typeof TaskRunCreate>;

export const TaskRunUpdate = z.object({
  name: z.string().min(1).optional(),
  task_version: z.string().nullish(),
  cache_key: z.string().nullish(),
  cache_expiration: TimestampSchema.nullish(),
  empirical_policy: JsonObject.optional(),
  tags: Tags.optional(),
  labels: Labels.nullish(),
  task_inputs: JsonObject.optional(),
  flow_run_run_count: z.number().int().min(0).optional(),
});
export type TaskRunUpdate = z.input<typeof TaskRunUpdate>;

export interface TaskRunStateCacheEntry {
  id: string;
  created: Timestamp;
  cache_key: string;
  cache_expiration: Timestamp | null;
  task_run_state_id: string;
}
