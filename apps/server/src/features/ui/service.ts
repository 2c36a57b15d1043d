/**
 * What Prefect's UI asks of the server beyond the REST API (`prefect/server/api/ui/`): the runs
 * scatter plot, task-run and deployment counts per run and per flow, the next run of each flow,
 * task runs counted by state, the dashboard's task-run buckets, and form values checked against
 * their schema.
 */
import {
  type FlowRunSort,
  fromMicros,
  now,
  type Repositories,
  type RunCriteria,
  type StateType,
  type TaskRunFilter,
  TERMINAL_STATE_TYPES,
  type Timestamp,
  toMicros,
} from "@prefect/db";
import { flowRunResponse } from "../flow-runs/responses.js";
import { type RelatedFilters, runCriteriaOf } from "../../prefect/run-criteria.js";

export { validateSchemaValues } from "./values-validation.js";

/** Prefect's StateType, in its order: the keys of a count by state. */
export const STATE_TYPES: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const FAILED_TYPES: readonly StateType[] = ["FAILED", "CRASHED"];
/** Prefect's dashboard divides the window into this many buckets. */
const DASHBOARD_BUCKETS = 20;
/** Task runs read per page when a filter cannot be narrowed in the database. */
const PAGE = 1000;

/** Prefect's SimpleFlowRun rows for the runs scatter plot. */
export async function flowRunHistory(db: Repositories, body: RelatedFilters & { sort: FlowRunSort; limit: number; offset: number }) {
  const runs = await db.flowRuns.read({ ...(await runCriteriaOf(db, body)), sort: body.sort, limit: body.limit, offset: body.offset });
  const at = now();
  return runs.map((run) => {
    const response = flowRunResponse(run, at);
    return {
      id: run.id,
      state_type: run.state_type,
      timestamp: run.start_time ?? run.expected_start_time,
      duration: response.estimated_run_time,
      lateness: response.estimated_start_time_delta,
    };
  });
}

/** Task runs of each flow run, not counting the task runs that stand for subflow runs. */
export async function countTaskRunsByFlowRun(db: Repositories, flowRunIds: readonly string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const id of flowRunIds) {
    counts[id] ??= await db.taskRuns.count({ task_runs: { flow_run_id: { any_: [id] }, subflow_runs: { exists_: false } } });
  }
  return counts;
}

/** Deployments of each flow. */
export async function countDeploymentsByFlow(db: Repositories, flowIds: readonly string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const id of flowIds) counts[id] ??= await db.deployments.count({ flows: { id: { any_: [id] } } });
  return counts;
}

/** The scheduled run of each flow due first (null when it has none), as Prefect's SimpleNextFlowRun. */
export async function nextRunsByFlow(db: Repositories, flowIds: readonly string[]) {
  const next: Record<string, { id: string; flow_id: string; name: string; state_name: string; state_type: StateType; next_scheduled_start_time: Timestamp } | null> = {};
  for (const id of flowIds) {
    if (id in next) continue;
    const [run] = await db.flowRuns.read({
      flows: { id: { any_: [id] } },
      flow_runs: { state: { type: { any_: ["SCHEDULED"] } }, next_scheduled_start_time: { is_null_: false } },
      sort: "NEXT_SCHEDULED_START_TIME_ASC",
      limit: 1,
    });
    next[id] =
      run?.next_scheduled_start_time && run.state_type && run.state_name
        ? { id: run.id, flow_id: run.flow_id, name: run.name, state_name: run.state_name, state_type: run.state_type, next_scheduled_start_time: run.next_scheduled_start_time }
        : null;
  }
  return next;
}

type TaskRunFilterInput = Exclude<TaskRunFilter, null | undefined>;
type Narrowing = { types: readonly StateType[]; after?: Timestamp; before?: Timestamp };

/**
 * The task-run filter narrowed to some state types and a start-time window, as one conjunction; null
 * when nothing can match, undefined when the filter combines its criteria with `or_` (then the
 * narrowing cannot be written into it).
 */
function narrowed(filter: TaskRunFilterInput | null | undefined, narrowing: Narrowing): TaskRunFilterInput | null | undefined {
  const given = filter ?? {};
  if (given.operator === "or_" || given.state?.operator === "or_") return undefined;
  const allowed = given.state?.type?.any_;
  const types = allowed ? narrowing.types.filter((t) => allowed.includes(t)) : [...narrowing.types];
  if (types.length === 0) return null;
  const window = given.start_time ?? {};
  type Bound = Timestamp | string | Date | null | undefined;
  const micros = (t: Timestamp | string | Date) => (t instanceof Date ? t.getTime() * 1000 : toMicros(t));
  const later = (a: Bound, b: Timestamp | undefined) => (!a ? b : !b ? a : micros(a) >= micros(b) ? a : b);
  const earlier = (a: Bound, b: Timestamp | undefined) => (!a ? b : !b ? a : micros(a) <= micros(b) ? a : b);
  const after = later(window.after_, narrowing.after);
  const before = earlier(window.before_, narrowing.before);
  if (after && before && micros(after) > micros(before)) return null;
  return {
    ...given,
    state: { ...given.state, type: { ...given.state?.type, any_: types } },
    ...(after || before || window.is_null_ !== undefined ? { start_time: { ...window, after_: after ?? null, before_: before ?? null } } : {}),
  };
}

/** Every task run the criteria select (for filters the database cannot narrow further). */
async function readAllTaskRuns(db: Repositories, criteria: RunCriteria) {
  const runs = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await db.taskRuns.read({ ...criteria, sort: "ID_DESC", limit: PAGE, offset });
    runs.push(...page);
    if (page.length < PAGE) return runs;
  }
}

/** Task runs counted by state type, every type present (Prefect's CountByState). */
export async function countTaskRunsByState(db: Repositories, body: RelatedFilters): Promise<Record<StateType, number>> {
  const criteria = await runCriteriaOf(db, body);
  const counts = Object.fromEntries(STATE_TYPES.map((t) => [t, 0])) as Record<StateType, number>;
  if (narrowed(criteria.task_runs, { types: STATE_TYPES }) === undefined) {
    for (const run of await readAllTaskRuns(db, criteria)) if (run.state_type) counts[run.state_type] += 1;
    return counts;
  }
  for (const type of STATE_TYPES) {
    const filter = narrowed(criteria.task_runs, { types: [type] });
    if (filter) counts[type] = await db.taskRuns.count({ ...criteria, task_runs: filter });
  }
  return counts;
}

/** The start of the minute after `ts`'s minute, less a microsecond (pendulum's `end_of("minute")`). */
const endOfMinute = (ts: Timestamp | string): Timestamp => fromMicros(Math.floor(toMicros(ts) / 60e6) * 60e6 + 60e6 - 1);

/**
 * Prefect's dashboard task-run counts: terminal task runs that started in the window (from
 * `task_runs.start_time.after_`, to its `before_` or now), in 20 equal buckets of completed and failed
 * (failed or crashed) runs.
 */
export async function dashboardTaskRunCounts(db: Repositories, body: RelatedFilters & { task_runs: TaskRunFilterInput; after: Timestamp }) {
  const criteria = await runCriteriaOf(db, body);
  const start = fromMicros(Math.floor(toMicros(body.after) / 60e6) * 60e6);
  const before = body.task_runs.start_time?.before_;
  const end = endOfMinute(before ?? now());
  const bucketSeconds = (toMicros(end) - toMicros(start)) / 1e6 / DASHBOARD_BUCKETS;
  const buckets = Array.from({ length: DASHBOARD_BUCKETS }, () => ({ completed: 0, failed: 0 }));
  if (!(bucketSeconds > 0)) return buckets;
  const filter = { ...body.task_runs, start_time: { ...body.task_runs.start_time, after_: start, before_: before ?? null } };
  if (narrowed(filter, { types: TERMINAL_STATE_TYPES }) === undefined) {
    for (const run of await readAllTaskRuns(db, { ...criteria, task_runs: filter })) {
      if (!run.state_type || !TERMINAL_STATE_TYPES.includes(run.state_type) || !run.start_time) continue;
      const index = Math.floor((toMicros(run.start_time) - toMicros(start)) / 1e6 / bucketSeconds);
      const bucket = buckets[index];
      if (bucket) bucket[FAILED_TYPES.includes(run.state_type) ? "failed" : "completed"] += 1;
    }
    return buckets;
  }
  for (const [index, bucket] of buckets.entries()) {
    const at = (i: number) => toMicros(start) + Math.round(i * bucketSeconds * 1e6);
    const window = { after: fromMicros(at(index)), before: fromMicros(at(index + 1) - 1) };
    const failed = narrowed(filter, { types: FAILED_TYPES, ...window });
    const completed = narrowed(filter, { types: TERMINAL_STATE_TYPES.filter((t) => !FAILED_TYPES.includes(t)), ...window });
    if (failed) bucket.failed = await db.taskRuns.count({ ...criteria, task_runs: failed });
    if (completed) bucket.completed = await db.taskRuns.count({ ...criteria, task_runs: completed });
  }
  return buckets;
}
