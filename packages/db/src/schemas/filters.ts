/**
 * Prefect's filter vocabulary (FlowFilter, FlowRunFilter, TaskRunFilter, LogFilter, block filters),
 * field for field as in Prefect's REST API: `any_` / `not_any_` lists, `like_` case-insensitive
 * substrings, `before_` / `after_` inclusive time bounds, `is_null_`, tags `all_`, and an `operator`
 * (`and_` by default, or `or_`) combining the criteria of one object. Unknown keys are refused, as
 * Prefect does.
 */
import { z } from "zod";
import { Operator, StateType, TimestampSchema, Uuid } from "./common.js";

const list = <T extends z.ZodType>(item: T) => z.array(item).nullish();
const criterion = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape).nullish();
const operator = Operator.default("and_");

const ids = criterion({ any_: list(Uuid), not_any_: list(Uuid) });
const names = criterion({ any_: list(z.string()), like_: z.string().nullish() });
const times = criterion({ before_: TimestampSchema.nullish(), after_: TimestampSchema.nullish(), is_null_: z.boolean().nullish() });
const tags = criterion({ operator, all_: list(z.string()), any_: list(z.string()), is_null_: z.boolean().nullish() });
const stateCriteria = criterion({
  operator,
  type: criterion({ any_: list(StateType), not_any_: list(StateType) }),
  name: criterion({ any_: list(z.string()), not_any_: list(z.string()) }),
});

export const FlowFilter = z.strictObject({
  operator,
  id: ids,
  name: names,
  tags,
  /** `is_null_`: true for flows without deployments, false for flows with some. */
  deployment: criterion({ operator, is_null_: z.boolean().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type FlowFilter = z.input<typeof FlowFilter>;

export const FlowRunFilter = z.strictObject({
  operator,
  id: ids,
  name: names,
  tags,
  deployment_id: criterion({ operator, any_: list(Uuid), is_null_: z.boolean().nullish() }),
  work_queue_name: criterion({ operator, any_: list(z.string()), is_null_: z.boolean().nullish() }),
  state: stateCriteria,
  flow_version: criterion({ any_: list(z.string()) }),
  start_time: times,
  end_time: times,
  expected_start_time: times,
  next_scheduled_start_time: times,
  parent_flow_run_id: criterion({ operator, any_: list(Uuid) }),
  parent_task_run_id: criterion({ operator, any_: list(Uuid), is_null_: z.boolean().nullish() }),
  idempotency_key: criterion({ any_: list(z.string()), not_any_: list(z.string()) }),
  created_by: criterion({ operator, id_: list(Uuid), type_: list(z.string()), is_null_: z.boolean().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type FlowRunFilter = z.input<typeof FlowRunFilter>;

export const TaskRunFilter = z.strictObject({
  operator,
  id: ids,
  name: names,
  tags,
  state: stateCriteria,
  start_time: times,
  end_time: times,
  expected_start_time: times,
  subflow_runs: criterion({ exists_: z.boolean().nullish() }),
  flow_run_id: criterion({ operator, any_: list(Uuid), is_null_: z.boolean().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type TaskRunFilter = z.input<typeof TaskRunFilter>;

export const LogFilter = z.strictObject({
  operator,
  level: criterion({ ge_: z.number().int().nullish(), le_: z.number().int().nullish() }),
  timestamp: criterion({ before_: TimestampSchema.nullish(), after_: TimestampSchema.nullish() }),
  flow_run_id: criterion({ any_: list(Uuid) }),
  task_run_id: criterion({ any_: list(Uuid), is_null_: z.boolean().nullish() }),
  text: criterion({ query: z.string().max(200) }),
});
/** What callers pass (validated and normalised by the repositories). */
export type LogFilter = z.input<typeof LogFilter>;

export const BlockTypeFilter = z.strictObject({
  name: criterion({ like_: z.string().nullish() }),
  slug: criterion({ any_: list(z.string()) }),
});
/** What callers pass (validated and normalised by the repositories). */
export type BlockTypeFilter = z.input<typeof BlockTypeFilter>;

export const BlockSchemaFilter = z.strictObject({
  operator,
  block_type_id: criterion({ any_: list(Uuid) }),
  block_capabilities: criterion({ all_: list(z.string()) }),
  id: criterion({ any_: list(Uuid) }),
  version: criterion({ any_: list(z.string()) }),
});
/** What callers pass (validated and normalised by the repositories). */
export type BlockSchemaFilter = z.input<typeof BlockSchemaFilter>;

export const BlockDocumentFilter = z.strictObject({
  operator,
  id: criterion({ any_: list(Uuid) }),
  is_anonymous: criterion({ eq_: z.boolean().nullish() }),
  block_type_id: criterion({ any_: list(Uuid) }),
  name: criterion({ any_: list(z.string()), like_: z.string().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type BlockDocumentFilter = z.input<typeof BlockDocumentFilter>;

export const FlowSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"]);
export type FlowSort = z.infer<typeof FlowSort>;
export const FlowRunSort = z.enum([
  "ID_DESC",
  "START_TIME_ASC",
  "START_TIME_DESC",
  "EXPECTED_START_TIME_ASC",
  "EXPECTED_START_TIME_DESC",
  "NAME_ASC",
  "NAME_DESC",
  "NEXT_SCHEDULED_START_TIME_ASC",
  "END_TIME_DESC",
]);
export type FlowRunSort = z.infer<typeof FlowRunSort>;
export const TaskRunSort = z.enum([
  "ID_DESC",
  "EXPECTED_START_TIME_ASC",
  "EXPECTED_START_TIME_DESC",
  "NAME_ASC",
  "NAME_DESC",
  "NEXT_SCHEDULED_START_TIME_ASC",
  "END_TIME_DESC",
]);
export type TaskRunSort = z.infer<typeof TaskRunSort>;
export const LogSort = z.enum(["TIMESTAMP_ASC", "TIMESTAMP_DESC"]);
export type LogSort = z.infer<typeof LogSort>;
export const BlockDocumentSort = z.enum(["NAME_DESC", "NAME_ASC", "BLOCK_TYPE_AND_NAME_ASC"]);
export type BlockDocumentSort = z.infer<typeof BlockDocumentSort>;

/**
 * Criteria on related aggregates, as Prefect's read endpoints take them: flows that have runs
 * matching `flow_runs`, runs whose flow matches `flows`, and so on.
 */
export interface RunCriteria {
  readonly flows?: FlowFilter | null | undefined;
  readonly flow_runs?: FlowRunFilter | null | undefined;
  readonly task_runs?: TaskRunFilter | null | undefined;
  /**
   * Only flow runs (or task runs of flow runs) of one of these deployments; callers resolve Prefect's
   * `deployments` filter to ids. An empty list matches nothing.
   */
  readonly deployment_ids?: readonly string[] | null | undefined;
  /**
   * Only flow runs (or task runs of flow runs) in one of these work queues; callers resolve Prefect's
   * `work_pools` and `work_pool_queues` filters to ids. An empty list matches nothing.
   */
  readonly work_queue_ids?: readonly string[] | null | undefined;
}

export const ArtifactFilter = z.strictObject({
  operator,
  id: criterion({ any_: list(Uuid) }),
  key: criterion({ any_: list(z.string()), like_: z.string().nullish(), exists_: z.boolean().nullish() }),
  flow_run_id: criterion({ any_: list(Uuid) }),
  task_run_id: criterion({ any_: list(Uuid) }),
  type: criterion({ any_: list(z.string()), not_any_: list(z.string()) }),
});
/** What callers pass (validated and normalised by the repositories). */
export type ArtifactFilter = z.input<typeof ArtifactFilter>;

export const ArtifactCollectionFilter = z.strictObject({
  operator,
  latest_id: criterion({ any_: list(Uuid) }),
  key: criterion({ any_: list(z.string()), like_: z.string().nullish(), exists_: z.boolean().nullish() }),
  flow_run_id: criterion({ any_: list(Uuid) }),
  task_run_id: criterion({ any_: list(Uuid) }),
  type: criterion({ any_: list(z.string()), not_any_: list(z.string()) }),
});
/** What callers pass (validated and normalised by the repositories). */
export type ArtifactCollectionFilter = z.input<typeof ArtifactCollectionFilter>;

export const ArtifactSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "ID_DESC", "KEY_DESC", "KEY_ASC"]);
export type ArtifactSort = z.infer<typeof ArtifactSort>;
export const ArtifactCollectionSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "ID_DESC", "KEY_DESC", "KEY_ASC"]);
export type ArtifactCollectionSort = z.infer<typeof ArtifactCollectionSort>;

export const AutomationFilter = z.strictObject({
  operator,
  name: criterion({ any_: list(z.string()) }),
  created: criterion({ before_: TimestampSchema.nullish() }),
  tags,
});
/** What callers pass (validated and normalised by the repositories). */
export type AutomationFilter = z.input<typeof AutomationFilter>;

export const AutomationSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"]);
export type AutomationSort = z.infer<typeof AutomationSort>;

export const DeploymentFilter = z.strictObject({
  operator,
  id: ids,
  name: names,
  /** Matches the deployment's name or its flow's name (case-insensitive substring). */
  flow_or_deployment_name: criterion({ like_: z.string().nullish() }),
  paused: criterion({ eq_: z.boolean().nullish() }),
  tags,
  work_queue_name: criterion({ any_: list(z.string()) }),
  /** Deprecated in Prefect: accepted and ignored. */
  concurrency_limit: criterion({ ge_: z.number().int().nullish(), le_: z.number().int().nullish(), is_null_: z.boolean().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type DeploymentFilter = z.input<typeof DeploymentFilter>;

export const VariableFilter = z.strictObject({
  operator,
  id: criterion({ any_: list(Uuid) }),
  name: criterion({ any_: list(z.string()), like_: z.string().nullish() }),
  tags: criterion({ operator, all_: list(z.string()), is_null_: z.boolean().nullish() }),
});
/** What callers pass (validated and normalised by the repositories). */
export type VariableFilter = z.input<typeof VariableFilter>;

export const VariableSort = z.enum(["CREATED_DESC", "UPDATED_DESC", "NAME_DESC", "NAME_ASC"]);
export type VariableSort = z.infer<typeof VariableSort>;
