/**
 * CancellationCleanup (Prefect's services/cancellation_cleanup.py), every
 * PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS:
 *
 *  1. Task runs not finished whose flow run was CANCELLED in the last day are forced to CANCELLED
 *     ("The parent flow run was cancelled.").
 *  2. Subflow runs not finished whose parent task run's flow run is CANCELLED (or has no state, or is
 *     gone) are proposed CANCELLING when they belong to a deployment (their worker stops their
 *     infrastructure), else CANCELLED, through the core policy; deployment runs already CANCELLING
 *     are left to their worker.
 *  3. Flow runs CANCELLING for longer than PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS
 *     (their infrastructure never confirmed) are proposed CANCELLED ("Flow run cancellation timed out;
 *     marked this flow run as Cancelled.") through the core policy.
 *
 * Each run is locked and its conditions checked again in the transaction that changes it, so
 * cleanups running at once (in one process or on several machines) change a run once; the events of
 * each change are published after it commits.
 */
import { addSeconds, BusyError, NotFoundError, now } from "@prefect/db";
import type { OrchestrationResult } from "@prefect/orchestration";
import type { AppContext, Logger } from "../context.js";
import { cancelSubflowOfCancelledRun, cancelTimedOutCancellingRun } from "../features/flow-runs/service.js";
import { cancelTaskRunOfCancelledFlowRun } from "../features/task-runs/service.js";
import { LoopService } from "./loop.js";

export { CANCELLING_TIMEOUT_CANCELLED_MESSAGE, PARENT_CANCELLED_MESSAGE } from "../features/flow-runs/service.js";

/** Prefect's batch of runs per look. */
const BATCH = 200;
/** How far back Prefect looks for cancelled flow runs with unfinished task runs. */
const CANCELLED_WITHIN_SECONDS = 86_400;

type CleanupContext = Pick<AppContext, "db" | "events" | "settings">;

export interface CleanupOptions {
  readonly cancellingTimeoutSeconds: number;
  readonly signal?: AbortSignal | undefined;
  readonly log?: Logger | undefined;
}

export interface CleanupPass {
  readonly taskRunsCancelled: number;
  readonly subflowRunsCancelled: number;
  readonly cancellingTimedOut: number;
}

/**
 * Runs `change` for each id the query finds, a batch at a time, each id at most once per pass (runs
 * orchestration refused to change stay where they are). Returns how many changes were accepted.
 */
async function sweep(
  what: string,
  find: () => Promise<string[]>,
  change: (id: string) => Promise<OrchestrationResult | null>,
  options: CleanupOptions,
): Promise<number> {
  const seen = new Set<string>();
  let accepted = 0;
  while (!options.signal?.aborted) {
    const ids = (await find()).filter((id) => !seen.has(id));
    if (ids.length === 0) break;
    for (const id of ids) {
      if (options.signal?.aborted) break;
      seen.add(id);
      try {
        const result = await change(id);
        if (result?.status === "ACCEPT") accepted++;
      } catch (error) {
        if (error instanceof NotFoundError) continue;
        if (error instanceof BusyError) throw error;
        options.log?.warn({ err: error, service: "CancellationCleanup", run_id: id }, `could not cancel ${what}`);
      }
    }
  }
  return accepted;
}

/** Step 1: task runs left unfinished under a cancelled flow run. */
export function cancelChildTaskRuns(context: CleanupContext, options: CleanupOptions): Promise<number> {
  const endedSince = () => addSeconds(now(), -CANCELLED_WITHIN_SECONDS);
  return sweep(
    "a task run of a cancelled flow run",
    () => context.db.cancellations.taskRunsToCancel({ endedSince: endedSince(), limit: BATCH }),
    (id) => cancelTaskRunOfCancelledFlowRun(context, id),
    options,
  );
}

/** Step 2: subflow runs left unfinished under a cancelled flow run. */
export function cancelSubflowRuns(context: CleanupContext, options: CleanupOptions): Promise<number> {
  return sweep(
    "a subflow run of a cancelled flow run",
    async () => (await context.db.cancellations.subflowRunsToCancel({ limit: BATCH })).map((run) => run.id),
    (id) => cancelSubflowOfCancelledRun(context, id),
    options,
  );
}

/** Step 3: flow runs CANCELLING for longer than the timeout. */
export function cancelTimedOutCancellingRuns(context: CleanupContext, options: CleanupOptions): Promise<number> {
  const before = () => addSeconds(now(), -options.cancellingTimeoutSeconds);
  const stateIds = new Map<string, string>();
  return sweep(
    "a flow run stuck in CANCELLING",
    async () => {
      const runs = await context.db.cancellations.cancellingSince({ before: before(), limit: BATCH });
      for (const run of runs) stateIds.set(run.id, run.state_id);
      return runs.map((run) => run.id);
    },
    // Still in the CANCELLING state found, and still past the timeout.
    (id) => cancelTimedOutCancellingRun(context, id, stateIds.get(id), before()),
    options,
  );
}

/** One pass of the cleanup (the three steps, in Prefect's order). */
export async function cleanUpCancellations(context: CleanupContext, options: CleanupOptions): Promise<CleanupPass> {
  const taskRunsCancelled = await cancelChildTaskRuns(context, options);
  const subflowRunsCancelled = await cancelSubflowRuns(context, options);
  const cancellingTimedOut = await cancelTimedOutCancellingRuns(context, options);
  return { taskRunsCancelled, subflowRunsCancelled, cancellingTimedOut };
}

export function cancellationCleanup(context: AppContext, log: Logger): LoopService {
  const s = context.settings.services.cancellationCleanup;
  return new LoopService(
    "CancellationCleanup",
    s.loopSeconds,
    async (signal) => {
      const pass = await cleanUpCancellations(context, { cancellingTimeoutSeconds: s.cancellingTimeoutSeconds, signal, log });
      if (pass.taskRunsCancelled + pass.subflowRunsCancelled + pass.cancellingTimedOut > 0) log.info({ service: "CancellationCleanup", ...pass }, "cancelled runs");
    },
    (error) => log.error({ err: error, service: "CancellationCleanup" }, "cleaning up cancelled runs failed; trying again on the next loop"),
  );
}
