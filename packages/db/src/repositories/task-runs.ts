import { randomUUID } from "node:crypto";
import { InvalidError, NotFoundError } from "../errors.js";
import { page, taskRunCriteriaSql, where } from "../filters.js";
import { checkId } from "../ids.js";
import { randomRunName } from "../names.js";
import type { Created, Page } from "../schemas/common.js";
import type { RunCriteria, TaskRunSort } from "../schemas/filters.js";
import { type TaskRun, TaskRunCreate, type TaskRunState, type TaskRunStateCacheEntry, TaskRunUpdate } from "../schemas/runs.js";
import { sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { buildStateRow, orderBy, pointerTo, runReader, type StateHistory, stateFromRow, stateHistory } from "./run-states.js";
import { type HistoryInterval, type HistoryOptions, runHistory } from "./run-states.js";
import { recordTaskRunEvents, type TaskRunEventsRecorded } from "./task-run-recorder.js";

export const taskRunTables: RunTables = {
  run: tables.task_run,
  state: tables.task_run_state,
  parentColumn: "task_run_id",
  upsertKey: ["flow_run_id", "task_key", "dynamic_key"],
};

export interface TaskRunReadOptions extends RunCriteria, Page {
  readonly sort?: TaskRunSort | undefined;
}

export interface TaskRunRepository extends StateHistory<TaskRunState> {
  /**
   * Inserts a task run (with its first state when given), or returns the existing run with the same
   * (flow_run_id, task_key, dynamic_key), as Prefect does.
   */
  create(input: TaskRunCreate): Promise<Created<TaskRun>>;
  get(id: string): Promise<TaskRun | null>;
  /**
   * The run with this task key and dynamic key in this flow run, or without a flow run when
   * `flowRunId` is null (background task runs, which no unique key covers), or null.
   */
  getByKey(flowRunId: string | null, taskKey: string, dynamicKey: string): Promise<TaskRun | null>;
  /** Reads the run, locked until the surrounding transaction ends (see FlowRunRepository). */
  getForUpdate(id: string): Promise<TaskRun | null>;
  read(options?: TaskRunReadOptions): Promise<TaskRun[]>;
  count(criteria?: RunCriteria): Promise<number>;
  /** Throws NotFoundError for an unknown id. */
  update(id: string, patch: TaskRunUpdate): Promise<TaskRun>;
  /** Runs counted per interval of expected start time and per state (Prefect's run history). */
  history(criteria: RunCriteria, options: HistoryOptions): Promise<HistoryInterval[]>;
  /** Deletes the run with its states. Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
  /** Remembers a COMPLETED state under a cache key (Prefect's task_run_state_cache). */
  cacheState(entry: { cache_key: string; cache_expiration?: Timestamp | null; task_run_state_id: string }): Promise<TaskRunStateCacheEntry>;
  /** The newest cache entry for `cacheKey` that has not expired at `at`. */
  findCachedState(cacheKey: string, at?: Timestamp): Promise<TaskRunStateCacheEntry | null>;
  /**
   * Prefect's task-run recorder: turns client-side `prefect.task-run.*` state-change events into task
   * runs and their states, in one atomic batched write; idempotent, and a run only moves forward
   * (see task-run-recorder.ts).
   */
  recordFromEvents(events: readonly unknown[]): Promise<TaskRunEventsRecorded>;
}

const SORTS: Record<TaskRunSort, readonly (readonly [string, "ASC" | "DESC"])[]> = {
  ID_DESC: [[`r."id"`, "DESC"]],
  EXPECTED_START_TIME_ASC: [[`r."expected_start_time"`, "ASC"], [`r."id"`, "ASC"]],
  EXPECTED_START_TIME_DESC: [[`r."expected_start_time"`, "DESC"], [`r."id"`, "ASC"]],
  NAME_ASC: [[`r."name"`, "ASC"], [`r."id"`, "ASC"]],
  NAME_DESC: [[`r."name"`, "DESC"], [`r."id"`, "ASC"]],
  NEXT_SCHEDULED_START_TIME_ASC: [[`r."next_scheduled_start_time"`, "ASC"], [`r."id"`, "ASC"]],
  END_TIME_DESC: [[`r."end_time"`, "DESC"], [`r."id"`, "ASC"]],
};

export function taskRunRepository(context: RepositoryContext): TaskRunRepository {
  const { q } = context;
  const { writes } = context.backend;
  const reader = runReader<TaskRun>(q.dialect, taskRunTables);
  const states = stateHistory<TaskRunState>(context, taskRunTables, "Task run");
  const decodeCache = rowDecoder<TaskRunStateCacheEntry>(q.dialect, tables.task_run_state_cache);

  const getWhere = async (condition: ReturnType<typeof sql>, lock = false) => {
    const rows = await q.query(sql`${reader.select} WHERE ${condition}${lock ? q.dialect.forUpdate("r") : sql.empty}`);
    return rows[0] ? reader.decode(rows[0]) : null;
  };

  return {
    ...states,

    async create(input) {
      const data = parseInput(TaskRunCreate, input, "task run");
      const ts = now();
      const id = data.id ?? randomUUID();
      const stateRow = data.state ? buildStateRow(taskRunTables, id, data.state) : null;
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
        flow_run_id: data.flow_run_id ?? null,
        task_key: data.task_key,
        dynamic_key: data.dynamic_key,
        cache_key: data.cache_key ?? null,
        cache_expiration: data.cache_expiration ?? null,
        task_version: data.task_version ?? null,
        flow_run_run_count: data.flow_run_run_count ?? 0,
        empirical_policy: data.empirical_policy,
        task_inputs: data.task_inputs,
        tags: data.tags,
        labels: data.labels ?? null,
        ...(stateRow ? pointerTo(stateRow) : {}),
      };
      const inserted = await writes.insertRun(q, taskRunTables, run, stateRow);
      if (inserted) return { row: { ...run, state: stateRow ? stateFromRow(stateRow) : null } as unknown as TaskRun, created: true };
      const existing = await getWhere(
        sql`r.flow_run_id = ${data.flow_run_id ?? null} AND r.task_key = ${data.task_key} AND r.dynamic_key = ${data.dynamic_key}`,
      );
      if (!existing) throw new InvalidError(`Task run ${id} could not be created; try again.`);
      return { row: existing, created: false };
    },

    get: async (id) => getWhere(sql`r.id = ${checkId(id, "task run id")}`),
    getByKey: async (flowRunId, taskKey, dynamicKey) =>
      getWhere(
        sql`${flowRunId === null ? sql`r.flow_run_id IS NULL` : sql`r.flow_run_id = ${checkId(flowRunId, "flow run id")}`} AND r.task_key = ${taskKey} AND r.dynamic_key = ${dynamicKey}`,
      ),
    async getForUpdate(id) {
      id = checkId(id, "task run id");
      // Lock the row first, then read it: PostgreSQL re-checks a locked row it had to wait for, but a
      // joined row (the current state) would still be the one of its first look, before the writer
      // that held the lock moved the run on.
      const lock = q.dialect.forUpdate("r");
      if (!lock.isEmpty && (await q.query(sql`SELECT r.id FROM task_run r WHERE r.id = ${id}${lock}`)).length === 0) return null;
      return getWhere(sql`r.id = ${id}`);
    },

    async read(options = {}) {
      const rows = await q.query(
        sql`${reader.select}${where(taskRunCriteriaSql(q.dialect, options, "r"))} ORDER BY ${orderBy(SORTS[options.sort ?? "ID_DESC"])}${page(
          q.dialect,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(reader.decode);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM task_run r${where(taskRunCriteriaSql(q.dialect, criteria, "r"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, "task run id");
      const data = parseInput(TaskRunUpdate, patch, "task run update");
      const changed = await q.execute(sql`UPDATE task_run SET ${assignments(taskRunTables.run, { ...data, updated: now() })} WHERE id = ${id}`);
      if (changed === 0) throw new NotFoundError(`Task run ${id} not found.`);
      const run = await getWhere(sql`r.id = ${id}`);
      if (!run) throw new NotFoundError(`Task run ${id} not found.`);
      return run;
    },

    history: (criteria, options) => runHistory(q, "task_run", taskRunCriteriaSql(q.dialect, criteria, "r"), options),

    async delete(id) {
      id = checkId(id, "task run id");
      const deleted = await q.execute(sql`DELETE FROM task_run WHERE id = ${id}`);
      if (deleted === 0) throw new NotFoundError(`Task run ${id} not found.`);
    },

    async cacheState(entry) {
      const stateId = checkId(entry.task_run_state_id, "task run state id");
      const ts = now();
      const row = {
        id: randomUUID(),
        created: ts,
        updated: ts,
        cache_key: entry.cache_key,
        cache_expiration: entry.cache_expiration ?? null,
        task_run_state_id: stateId,
      };
      await q.execute(insertSql(tables.task_run_state_cache, row));
      return row;
    },

    async findCachedState(cacheKey, at = now()) {
      const rows = await q.query(
        sql`SELECT ${selectList(tables.task_run_state_cache, "c")} FROM task_run_state_cache c
            WHERE c.cache_key = ${cacheKey} AND (c.cache_expiration IS NULL OR c.cache_expiration > ${at})
            ORDER BY c.created DESC LIMIT 1`,
      );
      return rows[0] ? decodeCache(rows[0]) : null;
    },

    recordFromEvents: (events) => recordTaskRunEvents(context, events),
  };
}
