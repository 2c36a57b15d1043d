import { randomUUID } from "node:crypto";
import { taskRunCriteriaSql } from "../filters.js";
import { checkId } from "../ids.js";
import type { TaskRunSort } from "../schemas/filters.js";
import { type TaskRun, TaskRunCreate, type TaskRunState, type TaskRunStateCacheEntry, TaskRunUpdate } from "../schemas/runs.js";
import { sql } from "../sql.js";
import { insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import type { RepositoryContext } from "./context.js";
import { kindReader, type RunKind, type RunReadOptions, type RunRepository, runRepository } from "./runs.js";
import { type RecordedTaskRunChange, recordTaskRunChanges, type TaskRunChange } from "./task-run-recorder.js";

export const taskRunTables: RunTables = {
  run: tables.task_run,
  state: tables.task_run_state,
  parentColumn: "task_run_id",
  upsertKey: ["flow_run_id", "task_key", "dynamic_key"],
};

export interface TaskRunReadOptions extends RunReadOptions<TaskRunSort> {}

export interface TaskRunRepository extends RunRepository<TaskRun, TaskRunState, TaskRunCreate, TaskRunUpdate, TaskRunReadOptions> {
  /**
   * The run with this task key and dynamic key in this flow run, or without a flow run when
   * `flowRunId` is null (background task runs, which no unique key covers), or null.
   */
  getByKey(flowRunId: string | null, taskKey: string, dynamicKey: string): Promise<TaskRun | null>;
  /** Remembers a COMPLETED state under a cache key (Prefect's task_run_state_cache). */
  cacheState(entry: { cache_key: string; cache_expiration?: Timestamp | null; task_run_state_id: string }): Promise<TaskRunStateCacheEntry>;
  /** The newest cache entry for `cacheKey` that has not expired at `at`. */
  findCachedState(cacheKey: string, at?: Timestamp): Promise<TaskRunStateCacheEntry | null>;
  /**
   * Prefect's task-run recorder: writes the task runs and states that client-side
   * `prefect.task-run.*` state-change events report (read by the server), in one atomic batched
   * write; idempotent, and a run only moves forward (see task-run-recorder.ts).
   */
  recordChanges(changes: readonly TaskRunChange[]): Promise<RecordedTaskRunChange[]>;
}

const taskRuns: RunKind<typeof TaskRunCreate, typeof TaskRunUpdate, TaskRunSort> = {
  tables: taskRunTables,
  label: "Task run",
  createSchema: TaskRunCreate,
  updateSchema: TaskRunUpdate,
  sorts: {
    ID_DESC: [[`r."id"`, "DESC"]],
    EXPECTED_START_TIME_ASC: [[`r."expected_start_time"`, "ASC"], [`r."id"`, "ASC"]],
    EXPECTED_START_TIME_DESC: [[`r."expected_start_time"`, "DESC"], [`r."id"`, "ASC"]],
    NAME_ASC: [[`r."name"`, "ASC"], [`r."id"`, "ASC"]],
    NAME_DESC: [[`r."name"`, "DESC"], [`r."id"`, "ASC"]],
    NEXT_SCHEDULED_START_TIME_ASC: [[`r."next_scheduled_start_time"`, "ASC"], [`r."id"`, "ASC"]],
    END_TIME_DESC: [[`r."end_time"`, "DESC"], [`r."id"`, "ASC"]],
  },
  defaultSort: "ID_DESC",
  criteriaSql: taskRunCriteriaSql,
  ownColumns: (data) => ({
    flow_run_id: data.flow_run_id ?? null,
    task_key: data.task_key,
    dynamic_key: data.dynamic_key,
    cache_key: data.cache_key ?? null,
    cache_expiration: data.cache_expiration ?? null,
    task_version: data.task_version ?? null,
    flow_run_run_count: data.flow_run_run_count ?? 0,
    task_inputs: data.task_inputs,
  }),
};

export function taskRunRepository(context: RepositoryContext): TaskRunRepository {
  const { q } = context;
  const reader = kindReader<TaskRun>(q.dialect, taskRuns);
  const decodeCache = rowDecoder<TaskRunStateCacheEntry>(q.dialect, tables.task_run_state_cache);

  return {
    ...runRepository<TaskRun, TaskRunState, typeof TaskRunCreate, typeof TaskRunUpdate, TaskRunSort>(context, taskRuns),

    async getByKey(flowRunId, taskKey, dynamicKey) {
      const run = flowRunId === null ? sql`r.flow_run_id IS NULL` : sql`r.flow_run_id = ${checkId(flowRunId, "flow run id")}`;
      const rows = await q.query(sql`${reader.select} WHERE ${run} AND r.task_key = ${taskKey} AND r.dynamic_key = ${dynamicKey}`);
      return rows[0] ? reader.decode(rows[0]) : null;
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

    recordChanges: (changes) => recordTaskRunChanges(context, changes),
  };
}
