/**
 * Task runs: created (an upsert on flow run, task key and dynamic key, its first state through
 * orchestration), state changes, reads, renames, deletion and histories. The events orchestration
 * emits are published once their transaction has committed.
 */
import {
  InvalidError,
  NotFoundError,
  randomRunName,
  type RecordedTaskRunChange,
  type Repositories,
  type State,
  type TaskRun,
  type TaskRunChange,
  type TaskRunCreate,
  type TaskRunReadOptions,
} from "@prefect/db";
import {
  createTaskRun as createRun,
  normalizeTaskRunPolicy,
  type OrchestrationResult,
  setTaskRunState as setState,
  type StateInput,
  type TaskOrchestrationResult,
} from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import { asIntegrityConflict, notFound, ObjectNotFoundError } from "../../prefect/errors.js";
import { type HistoryBody, type RelatedFilters, runCriteriaOf, runHistory } from "../../prefect/run-criteria.js";
import { MAX_CACHE_KEY_LENGTH, runName } from "../../prefect/runs.js";
import { publishEvents } from "../events/bus.js";
import { isCancellable, PARENT_CANCELLED_MESSAGE } from "../flow-runs/service.js";
import { InvalidTaskRunEvent, taskRunChangeFromEvent } from "./events.js";

const NOT_FOUND = "Task not found";

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** The server's tag slot wait bound, for orchestration's tag-concurrency rules. */
const orchestrationOf = (context: Context) => ({
  settings: { taskTagConcurrencySlotWaitSeconds: context.settings.concurrency.tagSlotWaitSeconds },
});

export type TaskRunCreateInput = Omit<TaskRunCreate, "name" | "empirical_policy" | "labels" | "state" | "id"> & {
  readonly id?: string | null | undefined;
  readonly name?: string | null | undefined;
  readonly empirical_policy?: Record<string, unknown> | null | undefined;
  readonly labels?: TaskRun["labels"] | null | undefined;
  readonly state?: StateInput | null | undefined;
};

export async function createTaskRun(context: Context, input: TaskRunCreateInput) {
  if (input.cache_key && input.cache_key.length > MAX_CACHE_KEY_LENGTH) {
    const message = `Cache key exceeded maximum allowed length of ${MAX_CACHE_KEY_LENGTH} characters.`;
    throw new InvalidError(message, [{ path: ["cache_key"], message: `Value error, ${message}` }]);
  }
  const { state, name, labels, empirical_policy: policy, id, ...fields } = input;
  const outcome = await context.db
    .transaction(async (tx) => {
      // Without a flow run no unique key applies: Prefect looks for the run with these keys first.
      if (!input.flow_run_id) {
        const existing = await tx.taskRuns.getByKey(null, input.task_key, input.dynamic_key);
        if (existing) return { run: existing, created: false, orchestration: null };
      }
      // Prefect's system labels: the flow run's labels, then `prefect.flow-run.id`, then the caller's.
      const flowRun = input.flow_run_id ? await tx.flowRuns.get(input.flow_run_id) : null;
      const system = input.flow_run_id ? { ...(flowRun?.labels ?? {}), "prefect.flow-run.id": input.flow_run_id } : {};
      return createRun(
        tx,
        {
          ...fields,
          ...(id ? { id } : {}),
          name: runName(name),
          empirical_policy: normalizeTaskRunPolicy(policy),
          labels: { ...system, ...(labels ?? {}) },
          state: state ?? undefined,
        },
        orchestrationOf(context),
      );
    })
    .catch(asIntegrityConflict);
  publishEvents(context.events, outcome.orchestration?.events ?? []);
  return outcome;
}

/** Proposes a state through orchestration (forced past the policy when `force`). */
export async function setTaskRunState(context: Context, id: string, state: StateInput, force: boolean): Promise<TaskOrchestrationResult> {
  let result: TaskOrchestrationResult;
  try {
    result = await setState(context.db, id, state, { ...orchestrationOf(context), force });
  } catch (error) {
    if (error instanceof NotFoundError) throw new ObjectNotFoundError(`Task run with id ${id} not found`);
    throw error;
  }
  publishEvents(context.events, result.events);
  return result;
}

export async function readTaskRun(db: Repositories, id: string): Promise<TaskRun> {
  const run = await db.taskRuns.get(id);
  if (!run) throw notFound(NOT_FOUND);
  return run;
}

/** Renames a run: a null or empty name draws a new one; no name given changes nothing. */
export async function updateTaskRun(db: AppContext["db"], id: string, body: { name?: string | null | undefined }): Promise<void> {
  await db.transaction(async (tx) => {
    const run = await tx.taskRuns.get(id);
    if (!run) throw notFound(NOT_FOUND);
    if ("name" in body) await tx.taskRuns.update(run.id, { name: runName(body.name) ?? randomRunName() });
  });
}

/** Deletes a run and its logs. */
export async function deleteTaskRun(db: AppContext["db"], id: string): Promise<void> {
  const deleted = await db.transaction(async (tx) => {
    const run = await tx.taskRuns.get(id);
    if (!run) return false;
    await tx.taskRuns.delete(run.id);
    await tx.logs.delete({ task_run_id: { any_: [run.id] } });
    return true;
  });
  if (!deleted) throw notFound(NOT_FOUND);
}

export async function readTaskRuns(db: Repositories, filters: RelatedFilters, page: Pick<TaskRunReadOptions, "sort" | "limit" | "offset">): Promise<TaskRun[]> {
  return db.taskRuns.read({ ...(await runCriteriaOf(db, filters)), ...page });
}

export async function countTaskRuns(db: Repositories, filters: RelatedFilters): Promise<number> {
  return db.taskRuns.count(await runCriteriaOf(db, filters));
}

export async function paginateTaskRuns(db: Repositories, filters: RelatedFilters, page: Pick<TaskRunReadOptions, "sort" | "limit" | "offset">) {
  const criteria = await runCriteriaOf(db, filters);
  const [runs, count] = await Promise.all([db.taskRuns.read({ ...criteria, ...page }), db.taskRuns.count(criteria)]);
  return { runs, count };
}

export const taskRunHistory = (db: Repositories, body: HistoryBody) => runHistory(db, "taskRuns", body);

export async function readTaskRunState(db: Repositories, id: string): Promise<State> {
  const state = await db.taskRuns.getState(id);
  // Prefect's text, "flow" included.
  if (!state) throw notFound("Flow run state not found");
  return state;
}

export const readTaskRunStates = (db: Repositories, taskRunId: string) => db.taskRuns.readStates(taskRunId);

/**
 * Forces a task run left unfinished under a CANCELLED flow run to CANCELLED; null when the run
 * (locked, checked again) no longer qualifies. Its events are published once committed.
 */
export async function cancelTaskRunOfCancelledFlowRun(context: Context, id: string): Promise<OrchestrationResult | null> {
  const result = await context.db.transaction(async (tx) => {
    const run = await tx.taskRuns.getForUpdate(id);
    if (!run?.flow_run_id || !isCancellable(run.state_type)) return null;
    const parent = await tx.flowRuns.get(run.flow_run_id);
    if (parent?.state_type !== "CANCELLED") return null;
    return setState(tx, id, { type: "CANCELLED", message: PARENT_CANCELLED_MESSAGE }, { force: true });
  });
  if (result) publishEvents(context.events, result.events);
  return result;
}

/** What `recordTaskRunEvents` did with a batch. */
export interface TaskRunEventsRecorded {
  /** For each recorded event (in the order given), its id and the task run it was recorded on. */
  readonly recorded: readonly RecordedTaskRunChange[];
  /** Events that could not be read as a task-run state change, with the reason; nothing was written for them. */
  readonly invalid: readonly { readonly event_id: string | null; readonly message: string }[];
}

/**
 * The task runs and states Prefect 3 clients report as `prefect.task-run.<State>` events, written in
 * one atomic batch; events that cannot be read as a task-run state change are reported and skipped.
 */
export async function recordTaskRunEvents(db: Repositories, events: readonly unknown[]): Promise<TaskRunEventsRecorded> {
  const invalid: { event_id: string | null; message: string }[] = [];
  const changes: TaskRunChange[] = [];
  for (const event of events) {
    try {
      changes.push(taskRunChangeFromEvent(event));
    } catch (error) {
      if (!(error instanceof InvalidTaskRunEvent)) throw error;
      const id = (event as { id?: unknown } | null)?.id;
      invalid.push({ event_id: typeof id === "string" ? id : null, message: error.message });
    }
  }
  return { recorded: await db.taskRuns.recordChanges(changes), invalid };
}
