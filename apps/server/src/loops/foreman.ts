/**
 * The foreman (Prefect's services/foreman.py), every PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS:
 *
 *  1. ONLINE workers not heard from for INACTIVITY_HEARTBEAT_MULTIPLE heartbeat intervals (their own,
 *     or FALLBACK_HEARTBEAT_INTERVAL_SECONDS) become OFFLINE (no event, as Prefect).
 *  2. READY work pools without an ONLINE worker become NOT_READY: `prefect.work-pool.not-ready`, with
 *     the id and time the change stored and `follows` the pool's previous status event when recent.
 *  3. READY deployments not polled for DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS (nor their queue)
 *     become NOT_READY: `prefect.deployment.not-ready`.
 *  4. READY work queues not polled for WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS become NOT_READY:
 *     `prefect.work-queue.not-ready`.
 *
 * Every change is one conditional UPDATE (status still READY / ONLINE and still stale) that returns
 * the rows it changed, so foremen on several machines never change a row twice nor emit its event
 * twice.
 */
import type { Timestamp } from "@prefect/db";
import type { AppContext, Logger } from "../context.js";
import { markDeploymentsNotReady, markPoolsNotReady, markQueuesNotReady, markWorkersOffline } from "../features/work-pools/health.js";
import type { ForemanSettings } from "../settings.js";
import { LoopService } from "./loop.js";

export interface ForemanPass {
  readonly workersOffline: readonly string[];
  readonly poolsNotReady: readonly string[];
  readonly deploymentsNotReady: readonly string[];
  readonly queuesNotReady: readonly string[];
}

/**
 * One pass of the foreman, as of `at` (default: now). The events of each step are published as soon
 * as the step's change is made (a failure later in the pass loses none of them).
 */
export async function monitorWorkerHealth(
  context: Pick<AppContext, "db" | "events">,
  settings: Omit<ForemanSettings, "enabled" | "loopSeconds">,
  options: { readonly log?: Logger | undefined; readonly at?: Timestamp | undefined } = {},
): Promise<ForemanPass> {
  const { log, at } = options;
  const workersOffline = await markWorkersOffline(context, { at, ...settings });
  if (workersOffline.length > 0) log?.info({ service: "Foreman", workers: workersOffline.length }, `Marked ${workersOffline.length} workers as offline.`);
  const poolsNotReady = await markPoolsNotReady(context, at, log);
  const deploymentsNotReady = await markDeploymentsNotReady(context, at, settings.deploymentLastPolledTimeoutSeconds);
  const queuesNotReady = await markQueuesNotReady(context, at, settings.workQueueLastPolledTimeoutSeconds);
  return { workersOffline, poolsNotReady, deploymentsNotReady, queuesNotReady };
}

export function foreman(context: AppContext, log: Logger): LoopService {
  const s = context.settings.services.foreman;
  return new LoopService(
    "Foreman",
    s.loopSeconds,
    async () => {
      await monitorWorkerHealth(context, s, { log });
    },
    (error) => log.error({ err: error, service: "Foreman" }, "monitoring worker health failed; trying again on the next loop"),
  );
}
