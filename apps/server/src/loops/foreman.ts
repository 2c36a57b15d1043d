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
import { now, type Repositories, type Timestamp, type WorkPool } from "@prefect/db";
import type { PrefectEvent } from "@prefect/orchestration";
import type { AppContext, Logger } from "../context.js";
import { deploymentStatusEvent, surroundingsOf } from "../features/deployments/events.js";
import { publishEvents } from "../features/events/bus.js";
import { workPoolStatusEvent, workQueueStatusEvent } from "../features/work-pools/events.js";
import type { ForemanSettings } from "../settings.js";
import { LoopService } from "./loop.js";

export interface ForemanPass {
  readonly workersOffline: readonly string[];
  readonly poolsNotReady: readonly string[];
  readonly deploymentsNotReady: readonly string[];
  readonly queuesNotReady: readonly string[];
}

async function poolEvents(db: Repositories, at: Timestamp | undefined, log: Logger | undefined): Promise<{ ids: string[]; events: PrefectEvent[] }> {
  // The pools as they were, for `follows` (only READY ones can change).
  const before = new Map((await db.workPools.read()).filter((p) => p.status === "READY").map((p): [string, WorkPool] => [p.id, p]));
  const changed = await db.workPools.markPoolsNotReady({ now: at });
  for (const pool of changed) log?.info({ service: "Foreman", work_pool_id: pool.id }, `Marked work pool ${pool.id} as NOT_READY.`);
  return {
    ids: changed.map((pool) => pool.id),
    events: changed.map((pool) =>
      workPoolStatusEvent(pool, before.get(pool.id) ?? null, {
        ...(pool.last_status_event_id ? { id: pool.last_status_event_id } : {}),
        ...(pool.last_transitioned_status_at ? { occurred: pool.last_transitioned_status_at } : {}),
      }),
    ),
  };
}

async function deploymentEvents(db: Repositories, ids: readonly string[]): Promise<PrefectEvent[]> {
  if (ids.length === 0) return [];
  const occurred = now();
  const events: PrefectEvent[] = [];
  for (const deployment of await db.deployments.read({ deployments: { id: { any_: [...ids] } } })) {
    events.push(deploymentStatusEvent(deployment, "NOT_READY", await surroundingsOf(db, deployment), occurred));
  }
  return events;
}

async function queueEvents(db: Repositories, ids: readonly string[]): Promise<PrefectEvent[]> {
  const events: PrefectEvent[] = [];
  for (const id of ids) {
    const queue = await db.workPools.getQueue(id);
    if (!queue) continue;
    events.push(workQueueStatusEvent(queue, await db.workPools.get(queue.work_pool_id)));
  }
  return events;
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
  const { db, events } = context;
  const { log, at } = options;
  const workersOffline = await db.workPools.markWorkersOffline({
    now: at,
    inactivityHeartbeatMultiple: settings.inactivityHeartbeatMultiple,
    fallbackHeartbeatIntervalSeconds: settings.fallbackHeartbeatIntervalSeconds,
  });
  if (workersOffline.length > 0) log?.info({ service: "Foreman", workers: workersOffline.length }, `Marked ${workersOffline.length} workers as offline.`);

  const pools = await poolEvents(db, at, log);
  publishEvents(events, pools.events);

  const deploymentsNotReady = await db.workPools.markDeploymentsNotReady({ now: at, lastPolledTimeoutSeconds: settings.deploymentLastPolledTimeoutSeconds });
  publishEvents(events, await deploymentEvents(db, deploymentsNotReady));

  const queuesNotReady = await db.workPools.markQueuesNotReady({ now: at, lastPolledTimeoutSeconds: settings.workQueueLastPolledTimeoutSeconds });
  publishEvents(events, await queueEvents(db, queuesNotReady));

  return { workersOffline, poolsNotReady: pools.ids, deploymentsNotReady, queuesNotReady };
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
