/**
 * Worker health (what Prefect's foreman checks): workers not heard from go OFFLINE, pools without an
 * ONLINE worker, deployments and queues not polled for a while go NOT_READY. Each change is one
 * conditional UPDATE that returns the rows it changed, so foremen on several machines never change
 * a row twice nor emit its event twice; the events of each change are published as soon as it is made.
 */
import { now, type Repositories, type Timestamp, type WorkPool } from "@prefect/db";
import type { PrefectEvent } from "@prefect/orchestration";
import type { AppContext, Logger } from "../../context.js";
import { deploymentStatusEvent, surroundingsOf } from "../deployments/events.js";
import { publishEvents } from "../events/bus.js";
import { workPoolStatusEvent, workQueueStatusEvent } from "./events.js";

type Context = Pick<AppContext, "db" | "events">;

async function poolEvents(db: Repositories, at: Timestamp | undefined, log: Logger | undefined): Promise<{ ids: string[]; events: PrefectEvent[] }> {
  // The pools as they were, for `follows` (only READY ones can change).
  const before = new Map((await db.workPools.read()).filter((p) => p.status === "READY").map((p): [string, WorkPool] => [p.id, p]));
  const changed = await db.workPools.markNotReady({ now: at });
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
    const queue = await db.workQueues.get(id);
    if (!queue) continue;
    events.push(workQueueStatusEvent(queue, await db.workPools.get(queue.work_pool_id)));
  }
  return events;
}

/** ONLINE workers not heard from for `multiple` heartbeat intervals (their own, or the fallback) become OFFLINE (no event, as Prefect). */
export const markWorkersOffline = (context: Context, options: { at?: Timestamp | undefined; inactivityHeartbeatMultiple: number; fallbackHeartbeatIntervalSeconds: number }) =>
  context.db.workers.markOffline({
    now: options.at,
    inactivityHeartbeatMultiple: options.inactivityHeartbeatMultiple,
    fallbackHeartbeatIntervalSeconds: options.fallbackHeartbeatIntervalSeconds,
  });

/** READY pools without an ONLINE worker become NOT_READY (`prefect.work-pool.not-ready`); returns their ids. */
export async function markPoolsNotReady(context: Context, at: Timestamp | undefined, log: Logger | undefined): Promise<string[]> {
  const { ids, events } = await poolEvents(context.db, at, log);
  publishEvents(context.events, events);
  return ids;
}

/** READY deployments not polled (nor their queue) for the timeout become NOT_READY (`prefect.deployment.not-ready`). */
export async function markDeploymentsNotReady(context: Context, at: Timestamp | undefined, lastPolledTimeoutSeconds: number): Promise<string[]> {
  const ids = await context.db.workQueues.markDeploymentsNotReady({ now: at, lastPolledTimeoutSeconds });
  publishEvents(context.events, await deploymentEvents(context.db, ids));
  return ids;
}

/** READY queues not polled for the timeout become NOT_READY (`prefect.work-queue.not-ready`). */
export async function markQueuesNotReady(context: Context, at: Timestamp | undefined, lastPolledTimeoutSeconds: number): Promise<string[]> {
  const ids = await context.db.workQueues.markNotReady({ now: at, lastPolledTimeoutSeconds });
  publishEvents(context.events, await queueEvents(context.db, ids));
  return ids;
}
