import { type Dialect, secondsBetween } from "../dialect.js";
import { flowRunCriteriaSql, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { RunCriteria, FlowRunSort } from "../schemas/filters.js";
import { type FlowRun, FlowRunCreate, type FlowRunState, FlowRunUpdate } from "../schemas/runs.js";
import { sql } from "../sql.js";
import { tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import type { RepositoryContext } from "./context.js";
import type { RunJoin, RunReader } from "./run-states.js";
import { kindReader, type RunKind, type RunReadOptions, type RunRepository, runRepository } from "./runs.js";

export const flowRunTables: RunTables = {
  run: tables.flow_run,
  state: tables.flow_run_state,
  parentColumn: "flow_run_id",
  upsertKey: ["flow_id", "idempotency_key"],
};

export interface FlowRunReadOptions extends RunReadOptions<FlowRunSort> {}

export interface FlowRunRepository extends RunRepository<FlowRun, FlowRunState, FlowRunCreate, FlowRunUpdate, FlowRunReadOptions> {
  /**
   * The average lateness in seconds of the matching runs (Prefect's `/flow_runs/lateness`): how much
   * later than expected a run started or, not started and not finished, is as of `at`; 0 for the
   * others. Null when no run matches.
   */
  averageLateness(criteria: RunCriteria, at?: Timestamp): Promise<number | null>;
  /**
   * What a run's events name besides the run (Prefect's related resources): its flow, deployment,
   * work queue with its pool, and parent task run, each null when the run has none or it is gone.
   * One statement, whatever the run points at.
   */
  related(run: RelatedIds): Promise<FlowRunRelated>;
  /**
   * As `related`, for the run with this id as stored, with the ids it followed (null when there is no
   * such run). A query that needs nothing from an earlier one: it can go out together with the read of
   * the run (on PostgreSQL, in the same round trip). With the id of the concurrency limit of the
   * run's deployment (null without one), which orchestration's deployment concurrency rules then
   * need not read again for a deployment without a limit.
   */
  relatedOf(runId: string): Promise<StoredRunRelated | null>;
}

/** The ids of a run that `related` follows. */
export type RelatedIds = Pick<FlowRun, "flow_id" | "deployment_id" | "work_queue_id" | "parent_task_run_id">;

/** What `relatedOf` reads of a stored run. */
export interface StoredRunRelated extends FlowRunRelated {
  /** The ids of the run it followed. */
  readonly ids: RelatedIds;
  /** The concurrency limit of the run's deployment (null without a deployment, or without a limit). */
  readonly deploymentConcurrencyLimitId: string | null;
}

/** A row a run's events name: its id, name and tags (tags empty for queues and pools). */
export interface RelatedRow {
  readonly id: string;
  readonly name: string;
  readonly tags: readonly string[];
}

export interface FlowRunRelated {
  readonly flow: RelatedRow | null;
  readonly deployment: RelatedRow | null;
  readonly workQueue: RelatedRow | null;
  readonly workPool: (RelatedRow & { readonly type: string }) | null;
  readonly parentTaskRun: RelatedRow | null;
}

/** What `related` and `relatedOf` select of the rows a run points at. */
const RELATED_COLUMNS = sql`SELECT f.id AS f_id, f.name AS f_name, f.tags AS f_tags, d.id AS d_id, d.name AS d_name, d.tags AS d_tags,
          wq.id AS wq_id, wq.name AS wq_name, wp.id AS wp_id, wp.name AS wp_name, wp.type AS wp_type,
          t.id AS t_id, t.name AS t_name, t.tags AS t_tags`;

function relatedFromRow(d: Dialect, row: Record<string, unknown>): FlowRunRelated {
  const tags = (value: unknown): string[] => (value === null || value === undefined ? [] : (d.decodeJson(value) as string[]));
  const pick = (prefix: string, withTags: boolean): RelatedRow | null =>
    row[`${prefix}_id`] ? { id: String(row[`${prefix}_id`]), name: String(row[`${prefix}_name`]), tags: withTags ? tags(row[`${prefix}_tags`]) : [] } : null;
  const pool = pick("wp", false);
  return {
    flow: pick("f", true),
    deployment: pick("d", true),
    workQueue: pick("wq", false),
    workPool: pool ? { ...pool, type: String(row.wp_type) } : null,
    parentTaskRun: pick("t", true),
  };
}

/** A flow run carries the work pool of its work queue (`work_pool_id`, `work_pool_name`), as Prefect's API shows it. */
const workPoolOfQueue: RunJoin = {
  columns: sql`, wp.id AS wp_id, wp.name AS wp_name`,
  joins: sql` LEFT JOIN work_queue wq ON wq.id = r.work_queue_id LEFT JOIN work_pool wp ON wp.id = wq.work_pool_id`,
  decode(row, run) {
    run.work_pool_id = row.wp_id ?? null;
    run.work_pool_name = row.wp_name ?? null;
  },
  readBack: (run) => Boolean(run.work_queue_id),
  // Every queue has a pool: a run with a queue and no pool was joined with another version's queue.
  matches: (row) => !row.work_queue_id || (row.wp_id !== null && row.wp_id !== undefined),
};

export const flowRuns: RunKind<typeof FlowRunCreate, typeof FlowRunUpdate, FlowRunSort> = {
  tables: flowRunTables,
  label: "Flow run",
  createSchema: FlowRunCreate,
  updateSchema: FlowRunUpdate,
  sorts: {
    ID_DESC: [[`r."id"`, "DESC"]],
    START_TIME_ASC: [[`COALESCE(r."start_time", r."expected_start_time")`, "ASC"], [`r."id"`, "ASC"]],
    START_TIME_DESC: [[`COALESCE(r."start_time", r."expected_start_time")`, "DESC"], [`r."id"`, "ASC"]],
    EXPECTED_START_TIME_ASC: [[`r."expected_start_time"`, "ASC"], [`r."id"`, "ASC"]],
    EXPECTED_START_TIME_DESC: [[`r."expected_start_time"`, "DESC"], [`r."id"`, "ASC"]],
    NAME_ASC: [[`r."name"`, "ASC"], [`r."id"`, "ASC"]],
    NAME_DESC: [[`r."name"`, "DESC"], [`r."id"`, "ASC"]],
    NEXT_SCHEDULED_START_TIME_ASC: [[`r."next_scheduled_start_time"`, "ASC"], [`r."id"`, "ASC"]],
    END_TIME_DESC: [[`r."end_time"`, "DESC"], [`r."id"`, "ASC"]],
  },
  defaultSort: "ID_DESC",
  criteriaSql: flowRunCriteriaSql,
  ownColumns: (data) => ({
    flow_id: data.flow_id,
    deployment_id: data.deployment_id ?? null,
    work_queue_name: data.work_queue_name ?? null,
    flow_version: data.flow_version ?? null,
    deployment_version: data.deployment_version ?? null,
    parameters: data.parameters,
    idempotency_key: data.idempotency_key ?? null,
    context: data.context,
    created_by: data.created_by ?? null,
    infrastructure_pid: data.infrastructure_pid ?? null,
    job_variables: data.job_variables ?? {},
    infrastructure_document_id: data.infrastructure_document_id ?? null,
    parent_task_run_id: data.parent_task_run_id ?? null,
    auto_scheduled: data.auto_scheduled,
    work_queue_id: data.work_queue_id ?? null,
  }),
  join: workPoolOfQueue,
};

/** Reads flow runs with their current state and work pool (for other repositories that return runs). */
export const flowRunReader = (d: Dialect): RunReader<FlowRun> => kindReader<FlowRun>(d, flowRuns);

export function flowRunRepository(context: RepositoryContext): FlowRunRepository {
  const { q } = context;
  return {
    ...runRepository<FlowRun, FlowRunState, typeof FlowRunCreate, typeof FlowRunUpdate, FlowRunSort>(context, flowRuns),

    async averageLateness(criteria, at = now()) {
      const d = q.dialect;
      const rows = await q.query<{ lateness: number | string | null }>(sql`
        SELECT AVG(CASE
          WHEN r.start_time > r.expected_start_time THEN ${secondsBetween(d, sql.raw("r.start_time"), sql.raw("r.expected_start_time"))}
          WHEN r.start_time IS NULL AND r.state_type NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED') AND r.expected_start_time < ${at}
            THEN ${secondsBetween(d, sql`${at}`, sql.raw("r.expected_start_time"))}
          ELSE 0 END) AS lateness
        FROM flow_run r${where(flowRunCriteriaSql(d, criteria, "r"))}`);
      const value = rows[0]?.lateness;
      return value === null || value === undefined ? null : Number(value);
    },

    async related(run) {
      const rows = await q.query<Record<string, unknown>>(sql`${RELATED_COLUMNS}
        FROM (SELECT 1 AS one) x
        LEFT JOIN flow f ON f.id = ${run.flow_id}
        LEFT JOIN deployment d ON d.id = ${run.deployment_id ?? null}
        LEFT JOIN work_queue wq ON wq.id = ${run.work_queue_id ?? null}
        LEFT JOIN work_pool wp ON wp.id = wq.work_pool_id
        LEFT JOIN task_run t ON t.id = ${run.parent_task_run_id ?? null}`);
      return relatedFromRow(q.dialect, rows[0] ?? {});
    },

    async relatedOf(runId) {
      const rows = await q.query<Record<string, unknown>>(sql`${RELATED_COLUMNS}, r.flow_id AS r_flow_id, r.deployment_id AS r_deployment_id,
          r.work_queue_id AS r_work_queue_id, r.parent_task_run_id AS r_parent_task_run_id, d.concurrency_limit_id AS d_concurrency_limit_id
        FROM flow_run r
        LEFT JOIN flow f ON f.id = r.flow_id
        LEFT JOIN deployment d ON d.id = r.deployment_id
        LEFT JOIN work_queue wq ON wq.id = r.work_queue_id
        LEFT JOIN work_pool wp ON wp.id = wq.work_pool_id
        LEFT JOIN task_run t ON t.id = r.parent_task_run_id
        WHERE r.id = ${checkId(runId, "flow run id")}`);
      const row = rows[0];
      if (!row) return null;
      const ids: RelatedIds = {
        flow_id: row.r_flow_id as string,
        deployment_id: (row.r_deployment_id as string | null) ?? null,
        work_queue_id: (row.r_work_queue_id as string | null) ?? null,
        parent_task_run_id: (row.r_parent_task_run_id as string | null) ?? null,
      };
      return { ...relatedFromRow(q.dialect, row), ids, deploymentConcurrencyLimitId: (row.d_concurrency_limit_id as string | null) ?? null };
    },
  };
}
