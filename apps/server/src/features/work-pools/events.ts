/**
 * Prefect's events about work pools and work queues (`prefect.work-pool.*`, `prefect.work-queue.*`;
 * see its models/events.py), built from rows that have committed.
 */
import { now, secondsBetween, type Timestamp, type WorkPool, type WorkQueue } from "@prefect/db";
import { type EventParts, type PrefectEvent, prefectEvent, type ResourceLabels } from "@prefect/orchestration";

type Labels = ResourceLabels;

/** `NOT_READY` → `not-ready`, as Prefect names status events. */
export const kebab = (status: string) => status.toLowerCase().replaceAll("_", "-");

/** A status event follows the pool's previous one when that was less than ten minutes ago. */
const FOLLOWS_WITHIN_SECONDS = 10 * 60;

const event = (parts: EventParts): PrefectEvent => prefectEvent(parts);

const poolLabels = (pool: WorkPool): Labels => ({
  "prefect.resource.id": `prefect.work-pool.${pool.id}`,
  "prefect.resource.name": pool.name,
  "prefect.work-pool.type": pool.type,
});

export const poolAsRelated = (pool: WorkPool): Labels => ({ ...poolLabels(pool), "prefect.resource.role": "work-pool" });

export const queueLabels = (queue: WorkQueue): Labels => ({
  "prefect.resource.id": `prefect.work-queue.${queue.id}`,
  "prefect.resource.name": queue.name,
  "prefect.resource.role": "work-queue",
});

/** The pool's default queue and result storage block, as its lifecycle events relate them. */
function poolRelated(pool: WorkPool): Labels[] {
  const related: Labels[] = [];
  if (pool.default_queue_id) related.push({ "prefect.resource.id": `prefect.work-queue.${pool.default_queue_id}`, "prefect.resource.role": "default-queue" });
  const storage = pool.storage_configuration.default_result_storage_block_id;
  if (storage) related.push({ "prefect.resource.id": `prefect.block-document.${storage}`, "prefect.resource.role": "result-storage" });
  return related;
}

export const workPoolCreatedEvent = (pool: WorkPool) =>
  event({ event: "prefect.work-pool.created", resource: poolAsRelated(pool), related: poolRelated(pool) });

export const workPoolDeletedEvent = (pool: WorkPool) =>
  event({ event: "prefect.work-pool.deleted", resource: poolAsRelated(pool), related: poolRelated(pool) });

/**
 * `prefect.work-pool.<status>`: the pool's status after a change (`previous`: the pool before it, for
 * `follows`). `id` and `occurred` are those the change stored, when it stored them.
 */
export function workPoolStatusEvent(pool: WorkPool, previous: WorkPool | null, stored: { id?: string; occurred?: Timestamp } = {}): PrefectEvent {
  let follows: string | null = null;
  if (previous?.last_status_event_id && previous.last_transitioned_status_at) {
    if (secondsBetween(now(), previous.last_transitioned_status_at) < FOLLOWS_WITHIN_SECONDS) follows = previous.last_status_event_id;
  }
  return event({ ...stored, event: `prefect.work-pool.${kebab(pool.status)}`, resource: poolLabels(pool), follows });
}

/** The fields whose changes make a `prefect.work-pool.updated` event. */
export const WORK_POOL_EVENT_FIELDS = ["description", "base_job_template", "concurrency_limit", "storage_configuration"] as const;
/** The fields whose changes make a `prefect.work-queue.updated` event. */
export const WORK_QUEUE_EVENT_FIELDS = ["name", "description", "concurrency_limit", "priority"] as const;

const updatedPayload = (changes: Record<string, unknown>) => ({ updated_fields: Object.keys(changes), updates: changes });

export const workPoolUpdatedEvent = (pool: WorkPool, changes: Record<string, unknown>) =>
  event({ event: "prefect.work-pool.updated", resource: poolAsRelated(pool), payload: updatedPayload(changes) });

/** Queue events relate the queue's pool (when it is known). */
const queueRelated = (pool: WorkPool | null) => (pool ? [poolAsRelated(pool)] : []);

export const workQueueCreatedEvent = (queue: WorkQueue, pool: WorkPool | null) =>
  event({ event: "prefect.work-queue.created", resource: queueLabels(queue), related: queueRelated(pool) });

export const workQueueDeletedEvent = (queue: WorkQueue, pool: WorkPool | null) =>
  event({ event: "prefect.work-queue.deleted", resource: queueLabels(queue), related: queueRelated(pool) });

export const workQueueUpdatedEvent = (queue: WorkQueue, pool: WorkPool | null, changes: Record<string, unknown>) =>
  event({ event: "prefect.work-queue.updated", resource: queueLabels(queue), related: queueRelated(pool), payload: updatedPayload(changes) });

export const workQueueStatusEvent = (queue: WorkQueue, pool: WorkPool | null) =>
  event({ event: `prefect.work-queue.${kebab(queue.status)}`, resource: queueLabels(queue), related: queueRelated(pool) });
