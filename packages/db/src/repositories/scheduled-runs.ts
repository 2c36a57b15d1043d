/**
 * The scheduler's reads and writes (Prefect's services/scheduler.py and models/deployments.py
 * `_insert_scheduled_flow_runs`): which deployments need runs, and the batched insert of scheduled
 * runs with their first states.
 *
 * The insert is idempotent on Prefect's upsert key of flow runs, (flow_id, idempotency_key): a run
 * whose key is taken is skipped (ON CONFLICT DO NOTHING), so any number of schedulers, in one process
 * or on several machines, may insert the same runs at once without duplicating one. Rows are inserted
 * in key order, so two concurrent inserts of overlapping batches on PostgreSQL wait for each other in
 * the same order and cannot deadlock.
 *
 * A scheduler that reads deployments and inserts their runs in one transaction, after
 * `lockDeployments`, never inserts runs of a schedule changed meanwhile: the changes to a deployment
 * and its schedules (which delete its future auto-scheduled runs) lock the deployment first, so each
 * either commits before the scheduler reads it or waits until its runs are in, then deletes them.
 */
import { z } from "zod";
import { InvalidError } from "../errors.js";
import { checkId } from "../ids.js";
import { randomRunName } from "../names.js";
import { JsonObject, Labels, TimestampSchema, Uuid } from "../schemas/common.js";
import { type Sql, sql } from "../sql.js";
import { bindValue, tables } from "../tables.js";
import { addSeconds, now, type Timestamp, toTimestamp } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

/** One auto-scheduled (or scheduled on request) run, as Prefect's `_generate_scheduled_flow_runs` builds it. */
export const ScheduledRunCreate = z.strictObject({
  id: Uuid,
  name: z.string().min(1).optional(),
  flow_id: Uuid,
  deployment_id: Uuid,
  deployment_version: z.string().nullable(),
  work_queue_name: z.string().nullable(),
  work_queue_id: Uuid.nullable(),
  infrastructure_document_id: Uuid.nullable(),
  parameters: JsonObject,
  job_variables: JsonObject.default({}),
  empirical_policy: JsonObject.default({}),
  idempotency_key: z.string().min(1),
  tags: z.array(z.string()),
  labels: Labels.nullable(),
  auto_scheduled: z.boolean(),
  created_by: z.strictObject({ id: Uuid.nullable(), type: z.string().nullable(), display_value: z.string().nullable() }),
  /** When the run is due: its expected and next scheduled start time. */
  scheduled_time: TimestampSchema,
  /** The run's first state (SCHEDULED). */
  state: z.strictObject({
    id: Uuid,
    type: z.literal("SCHEDULED"),
    name: z.string(),
    timestamp: TimestampSchema.optional(),
    message: z.string().nullable(),
    state_details: JsonObject,
  }),
});
export type ScheduledRunCreate = z.input<typeof ScheduledRunCreate>;

export interface DeploymentsToScheduleOptions {
  /** Most deployment ids to return (Prefect's deployment batch size). */
  readonly limit: number;
  /** Only ids after this one (cursor pagination); ids come in ascending order. */
  readonly afterId?: string | null | undefined;
  /** The time the query is made at (default: now). */
  readonly now?: Timestamp | string | undefined;
}

export interface ScheduledRunRepository {
  /**
   * Prefect's `_get_select_deployments_to_schedule_query`: deployments not paused with an active
   * schedule that has fewer than `minRuns` future auto-scheduled SCHEDULED runs, or whose last such
   * run is due less than `minScheduledTimeSeconds` from now. A schedule's runs are those whose
   * `created_by.id` is the schedule's id; a schedule's `max_scheduled_runs`, when lower, stands for
   * `minRuns` (such a schedule never gets more runs than that).
   */
  deploymentsToSchedule(options: DeploymentsToScheduleOptions & { readonly minRuns: number; readonly minScheduledTimeSeconds: number }): Promise<string[]>;
  /**
   * Prefect's `_get_select_recent_deployments_to_schedule_query`: deployments not paused with an
   * active schedule, updated within the last `withinSeconds`.
   */
  recentlyUpdatedDeployments(options: DeploymentsToScheduleOptions & { readonly withinSeconds: number }): Promise<string[]>;
  /**
   * Holds the deployments against changes until the surrounding transaction ends: a share lock on
   * their rows on PostgreSQL, in id order (schedulers do not block each other; a change to a
   * deployment or its schedules waits, and makes a scheduler wait); nothing on SQLite, whose write
   * transactions are exclusive. Call it on a transaction's repositories (`tx.scheduledRuns`) before
   * reading the deployments whose runs the transaction inserts; throws InvalidError elsewhere.
   */
  lockDeployments(deploymentIds: readonly string[]): Promise<void>;
  /**
   * Inserts the runs with their first states and state pointers, in one transaction; runs whose
   * (flow_id, idempotency_key) is taken are skipped. Returns the ids of the runs inserted.
   */
  insert(runs: readonly ScheduledRunCreate[]): Promise<string[]>;
}

/** Rows per INSERT statement (36 parameters each, well under either backend's limit). */
const ROWS_PER_STATEMENT = 200;

const RUN = tables.flow_run;
const STATE = tables.flow_run_state;

function valuesList(spec: typeof RUN | typeof STATE, columns: readonly string[], rows: readonly Record<string, unknown>[]): Sql {
  return sql.join(rows.map((row) => sql`(${sql.join(columns.map((c) => sql`${bindValue(spec.columns[c as keyof typeof spec.columns], row[c])}`))})`));
}

const columnList = (columns: readonly string[]) => sql.raw(columns.map((c) => `"${c}"`).join(", "));

export function scheduledRunRepository(context: RepositoryContext): ScheduledRunRepository {
  const { q } = context;
  const d = q.dialect;

  const notPaused = sql`(d.paused IS NULL OR d.paused = ${false})`;
  const hasActiveSchedule = sql`EXISTS (SELECT 1 FROM deployment_schedule s WHERE s.deployment_id = d.id AND s.active = ${true})`;
  const after = (id: string | null | undefined) => (id ? sql` AND d.id > ${checkId(id, "deployment id")}` : sql.empty);
  const limitOf = (limit: number) => Math.max(0, Math.floor(limit));

  return {
    async deploymentsToSchedule(options) {
      const at = options.now ? toTimestamp(options.now) : now();
      const horizon = addSeconds(at, options.minScheduledTimeSeconds);
      const minRuns = Math.floor(options.minRuns);
      const scheduleRuns = sql`FROM flow_run r
        WHERE r.deployment_id = s.deployment_id
          AND r.state_type = 'SCHEDULED'
          AND r.next_scheduled_start_time >= ${at}
          AND r.auto_scheduled = ${true}
          AND ${d.jsonText(sql.raw("r.created_by"), "id")} = CAST(s.id AS TEXT)`;
      const rows = await q.query<{ id: string }>(sql`
        SELECT d.id FROM deployment d
        WHERE ${notPaused}
          AND EXISTS (
            SELECT 1 FROM deployment_schedule s
            WHERE s.deployment_id = d.id AND s.active = ${true}
              AND ((SELECT count(*) ${scheduleRuns}) < CASE WHEN s.max_scheduled_runs < ${minRuns} THEN s.max_scheduled_runs ELSE ${minRuns} END
                OR (SELECT max(r.next_scheduled_start_time) ${scheduleRuns}) < ${horizon}))${after(options.afterId)}
        ORDER BY d.id LIMIT ${limitOf(options.limit)}`);
      return rows.map((row) => String(row.id));
    },

    async recentlyUpdatedDeployments(options) {
      const at = options.now ? toTimestamp(options.now) : now();
      const since = addSeconds(at, -options.withinSeconds);
      const rows = await q.query<{ id: string }>(sql`
        SELECT d.id FROM deployment d
        WHERE ${notPaused} AND d.updated >= ${since} AND ${hasActiveSchedule}${after(options.afterId)}
        ORDER BY d.id LIMIT ${limitOf(options.limit)}`);
      return rows.map((row) => String(row.id));
    },

    async lockDeployments(deploymentIds) {
      if (!q.inTransaction) throw new InvalidError("lockDeployments needs a transaction: call it as db.transaction((tx) => tx.scheduledRuns.lockDeployments(...)).");
      const ids = [...new Set(deploymentIds.map((id) => checkId(id, "deployment id")))].sort();
      const lock = d.forShare("d");
      if (ids.length === 0 || lock.isEmpty) return;
      await q.query(sql`SELECT d.id FROM deployment d WHERE ${d.inList(sql.raw("d.id"), ids)} ORDER BY d.id${lock}`);
    },

    async insert(input) {
      const parsed = input.map((run, i) => parseInput(ScheduledRunCreate, run, `scheduled run ${i}`));
      if (parsed.length === 0) return [];
      const sorted = [...parsed].sort((a, b) =>
        a.flow_id === b.flow_id ? (a.idempotency_key < b.idempotency_key ? -1 : a.idempotency_key > b.idempotency_key ? 1 : 0) : a.flow_id < b.flow_id ? -1 : 1,
      );
      return q.transaction(async (tx) => {
        const inserted: string[] = [];
        for (let i = 0; i < sorted.length; i += ROWS_PER_STATEMENT) {
          const chunk = sorted.slice(i, i + ROWS_PER_STATEMENT);
          const runs = chunk.map((run) => {
            const ts = now();
            const stateTimestamp = run.state.timestamp ?? ts;
            return {
              id: run.id,
              created: ts,
              updated: ts,
              name: run.name ?? randomRunName(),
              // The state pointer is set once the state rows exist (their foreign keys point both ways).
              state_id: null,
              state_type: run.state.type,
              state_name: run.state.name,
              state_timestamp: stateTimestamp,
              run_count: 0,
              expected_start_time: run.scheduled_time,
              next_scheduled_start_time: run.scheduled_time,
              start_time: null,
              end_time: null,
              total_run_time: 0,
              flow_id: run.flow_id,
              deployment_id: run.deployment_id,
              work_queue_name: run.work_queue_name,
              flow_version: null,
              deployment_version: run.deployment_version,
              parameters: run.parameters,
              idempotency_key: run.idempotency_key,
              context: {},
              empirical_policy: run.empirical_policy,
              tags: run.tags,
              labels: run.labels,
              created_by: run.created_by,
              infrastructure_pid: null,
              job_variables: run.job_variables,
              infrastructure_document_id: run.infrastructure_document_id,
              parent_task_run_id: null,
              auto_scheduled: run.auto_scheduled,
              work_queue_id: run.work_queue_id,
              _state: {
                id: run.state.id,
                created: ts,
                updated: ts,
                flow_run_id: run.id,
                type: run.state.type,
                timestamp: stateTimestamp,
                name: run.state.name,
                message: run.state.message,
                state_details: run.state.state_details,
                data: null,
                result_artifact_id: null,
              },
            };
          });
          const runColumns = Object.keys(RUN.columns);
          const returned = await tx.query<{ id: string }>(
            sql`INSERT INTO flow_run (${columnList(runColumns)}) VALUES ${valuesList(RUN, runColumns, runs)}
                ON CONFLICT (flow_id, idempotency_key) DO NOTHING RETURNING id`,
          );
          if (returned.length === 0) continue;
          const ids = new Set(returned.map((row) => String(row.id).toLowerCase()));
          const states = runs.filter((run) => ids.has(run.id)).map((run) => run._state);
          const stateColumns = Object.keys(STATE.columns);
          await tx.execute(sql`INSERT INTO flow_run_state (${columnList(stateColumns)}) VALUES ${valuesList(STATE, stateColumns, states)}`);
          const newIds = states.map((state) => state.flow_run_id);
          await tx.execute(
            sql`UPDATE flow_run SET state_id = (SELECT st.id FROM flow_run_state st WHERE st.flow_run_id = flow_run.id) WHERE ${d.inList(sql.raw("id"), newIds)}`,
          );
          inserted.push(...newIds);
        }
        return inserted;
      });
    },
  };
}
