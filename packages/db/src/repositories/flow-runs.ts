import { secondsBetween } from "../dialect.js";
import { randomUUID } from "node:crypto";
import { InvalidError, NotFoundError } from "../errors.js";
import { flowRunCriteriaSql, page, where } from "../filters.js";
import { checkId } from "../ids.js";
import { randomRunName } from "../names.js";
import type { Created, Page } from "../schemas/common.js";
import type { FlowRunSort, RunCriteria } from "../schemas/filters.js";
import { type FlowRun, FlowRunCreate, type FlowRunState, FlowRunUpdate } from "../schemas/runs.js";
import { sql } from "../sql.js";
import { assignments, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { buildStateRow, orderBy, pointerTo, runReader, type StateHistory, stateFromRow, stateHistory } from "./run-states.js";
import { type HistoryInterval, type HistoryOptions, runHistory } from "./run-states.js";

export const flowRunTables: RunTables = {
  run: tables.flow_run,
  state: tables.flow_run_state,
  parentColumn: "flow_run_id",
  upsertKey: ["flow_id", "idempotency_key"],
};

export interface FlowRunReadOptions extends RunCriteria, Page {
  readonly sort?: FlowRunSort | undefined;
}

export interface FlowRunRepository extends StateHistory<FlowRunState> {
  /**
   * Inserts a run, with its first state when one is given (the run's pointer set in the same atomic
   * step). With an idempotency key already used for the same flow, returns that run instead.
   */
  create(input: FlowRunCreate): Promise<Created<FlowRun>>;
  get(id: string): Promise<FlowRun | null>;
  /**
   * Reads the run, locking it against concurrent state changes until the surrounding transaction
   * ends (a row lock on PostgreSQL; SQLite's write transactions are exclusive already).
   */
  getForUpdate(id: string): Promise<FlowRun | null>;
  read(options?: FlowRunReadOptions): Promise<FlowRun[]>;
  count(criteria?: RunCriteria): Promise<number>;
  /** Throws NotFoundError for an unknown id. */
  update(id: string, patch: FlowRunUpdate): Promise<FlowRun>;
  /** Runs counted per interval of expected start time and per state (Prefect's run history). */
  history(criteria: RunCriteria, options: HistoryOptions): Promise<HistoryInterval[]>;
  /**
   * The average lateness in seconds of the matching runs (Prefect's `/flow_runs/lateness`): how much
   * later than expected a run started or, not started and not finished, is as of `at`; 0 for the
   * others. Null when no run matches.
   */
  averageLateness(criteria: RunCriteria, at?: Timestamp): Promise<number | null>;
  /** Deletes the run with its states and task runs. Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
}

const SORTS: Record<FlowRunSort, readonly (readonly [string, "ASC" | "DESC"])[]> = {
  ID_DESC: [[`r."id"`, "DESC"]],
  START_TIME_ASC: [[`COALESCE(r."start_time", r."expected_start_time")`, "ASC"], [`r."id"`, "ASC"]],
  START_TIME_DESC: [[`COALESCE(r."start_time", r."expected_start_time")`, "DESC"], [`r."id"`, "ASC"]],
  EXPECTED_START_TIME_ASC: [[`r."expected_start_time"`, "ASC"], [`r."id"`, "ASC"]],
  EXPECTED_START_TIME_DESC: [[`r."expected_start_time"`, "DESC"], [`r."id"`, "ASC"]],
  NAME_ASC: [[`r."name"`, "ASC"], [`r."id"`, "ASC"]],
  NAME_DESC: [[`r."name"`, "DESC"], [`r."id"`, "ASC"]],
  NEXT_SCHEDULED_START_TIME_ASC: [[`r."next_scheduled_start_time"`, "ASC"], [`r."id"`, "ASC"]],
  END_TIME_DESC: [[`r."end_time"`, "DESC"], [`r."id"`, "ASC"]],
};

export function flowRunRepository(context: RepositoryContext): FlowRunRepository {
  const { q } = context;
  const { writes } = context.backend;
  const reader = runReader<FlowRun>(q.dialect, flowRunTables);
  const states = stateHistory<FlowRunState>(context, flowRunTables, "Flow run");

  const getWhere = async (condition: ReturnType<typeof sql>, lock = false) => {
    const rows = await q.query(sql`${reader.select} WHERE ${condition}${lock ? q.dialect.forUpdate("r") : sql.empty}`);
    return rows[0] ? reader.decode(rows[0]) : null;
  };

  return {
    ...states,

    async create(input) {
      const data = parseInput(FlowRunCreate, input, "flow run");
      const ts = now();
      const id = data.id ?? randomUUID();
      const stateRow = data.state ? buildStateRow(flowRunTables, id, data.state) : null;
      const run: Record<string, unknown> = {
        id,
        created: ts,
        updated: ts,
        name: data.name ?? randomRunName(),
        state_type: null,
        state_name: null,
        state_timestamp: null,
        state_id: null,
        run_count: data.run_count ?? 0,
        expected_start_time: data.expected_start_time ?? null,
        next_scheduled_start_time: data.next_scheduled_start_time ?? null,
        start_time: data.start_time ?? null,
        end_time: data.end_time ?? null,
        total_run_time: data.total_run_time ?? 0,
        flow_id: data.flow_id,
        deployment_id: data.deployment_id ?? null,
        work_queue_name: data.work_queue_name ?? null,
        flow_version: data.flow_version ?? null,
        deployment_version: data.deployment_version ?? null,
        parameters: data.parameters,
        idempotency_key: data.idempotency_key ?? null,
        context: data.context,
        empirical_policy: data.empirical_policy,
        tags: data.tags,
        labels: data.labels ?? null,
        created_by: data.created_by ?? null,
        infrastructure_pid: data.infrastructure_pid ?? null,
        job_variables: data.job_variables ?? {},
        infrastructure_document_id: data.infrastructure_document_id ?? null,
        parent_task_run_id: data.parent_task_run_id ?? null,
        auto_scheduled: data.auto_scheduled,
        work_queue_id: data.work_queue_id ?? null,
        ...(stateRow ? pointerTo(stateRow) : {}),
      };
      const inserted = await writes.insertRun(q, flowRunTables, run, stateRow);
      if (inserted) {
        // The work pool comes from the queue: read it back when there is one.
        const row = run.work_queue_id ? await getWhere(sql`r.id = ${id}`) : null;
        return {
          row: row ?? ({ ...run, work_pool_id: null, work_pool_name: null, state: stateRow ? stateFromRow(stateRow) : null } as unknown as FlowRun),
          created: true,
        };
      }
      const existing = await getWhere(sql`r.flow_id = ${data.flow_id} AND r.idempotency_key = ${data.idempotency_key ?? null}`);
      if (!existing) throw new InvalidError(`Flow run ${id} could not be created; try again.`);
      return { row: existing, created: false };
    },

    get: async (id) => getWhere(sql`r.id = ${checkId(id, "flow run id")}`),
    async getForUpdate(id) {
      id = checkId(id, "flow run id");
      // Lock the row first, then read it: PostgreSQL re-checks a locked row it had to wait for, but a
      // joined row (the current state) would still be the one of its first look, before the writer
      // that held the lock moved the run on.
      const lock = q.dialect.forUpdate("r");
      if (!lock.isEmpty && (await q.query(sql`SELECT r.id FROM flow_run r WHERE r.id = ${id}${lock}`)).length === 0) return null;
      return getWhere(sql`r.id = ${id}`);
    },

    async read(options = {}) {
      const rows = await q.query(
        sql`${reader.select}${where(flowRunCriteriaSql(q.dialect, options, "r"))} ORDER BY ${orderBy(SORTS[options.sort ?? "ID_DESC"])}${page(
          q.dialect,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(reader.decode);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM flow_run r${where(flowRunCriteriaSql(q.dialect, criteria, "r"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, "flow run id");
      const data = parseInput(FlowRunUpdate, patch, "flow run update");
      const changed = await q.execute(sql`UPDATE flow_run SET ${assignments(flowRunTables.run, { ...data, updated: now() })} WHERE id = ${id}`);
      if (changed === 0) throw new NotFoundError(`Flow run ${id} not found.`);
      const run = await getWhere(sql`r.id = ${id}`);
      if (!run) throw new NotFoundError(`Flow run ${id} not found.`);
      return run;
    },

    history: (criteria, options) => runHistory(q, "flow_run", flowRunCriteriaSql(q.dialect, criteria, "r"), options),

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

    async delete(id) {
      id = checkId(id, "flow run id");
      const deleted = await q.execute(sql`DELETE FROM flow_run WHERE id = ${id}`);
      if (deleted === 0) throw new NotFoundError(`Flow run ${id} not found.`);
    },
  };
}
