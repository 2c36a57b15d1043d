/**
 * Prefect's events about work pools, work queues and the deployments their polls make ready
 * (`prefect.work-pool.*`, `prefect.work-queue.*`, `prefect.deployment.ready`; see its
 * models/events.py), built from rows that have committed and published on the event bus.
 */
import { randomBytes } from "node:crypto";
import { type Deployment, now, secondsBetween, type Timestamp, type WorkPool, type WorkQueue } from "@prefect/db";
import type { ReceivedEvent } from "../events/bus.js";

type Labels = Record<string, string>;

/** A time-ordered UUID (version 7), as Prefect gives its events. */
export function uuid7(): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `NOT_READY` → `not-ready`, as Prefect names status events. */
const kebab = (status: string) => status.toLowerCase().replaceAll("_", "-");

/** A status event follows the pool's previous one when that was less than ten minutes ago. */
const FOLLOWS_WITHIN_SECONDS = 10 * 60;

interface EventParts {
  id?: string;
  occurred?: Timestamp;
  event: string;
  resource: Labels;
  related?: Labels[];
  payload?: Record<string, unknown>;
  follows?: string | null;
}

function event(parts: EventParts): ReceivedEvent {
  const at = now();
  return {
    id: parts.id ?? uuid7(),
    occurred: parts.occurred ?? at,
    received: at,
    event: parts.event,
    resource: parts.resource,
    related: parts.related ?? [],
    payload: parts.payload ?? {},
    follows: parts.follows ?? null,
  };
}

const poolLabels = (pool: WorkPool): Labels => ({
  "prefect.resource.id": `prefect.work-pool.${pool.id}`,
  "prefect.resource.name": pool.name,
  "prefect.work-pool.type": pool.type,
});

const poolAsRelated = (pool: WorkPool): Labels => ({ ...poolLabels(pool), "prefect.resource.role": "work-pool" });

const queueLabels = (queue: WorkQueue): Labels => ({
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
export function workPoolStatusEvent(pool: WorkPool, previous: WorkPool | null, stored: { id?: string; occurred?: Timestamp } = {}): ReceivedEvent {
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

/** `{field: {from, to}}` for the fields given whose values differ (compared as JSON). */
export function changedFields<T extends object>(previous: T, current: T, fields: readonly (keyof T & string)[]): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const field of fields) {
    if (JSON.stringify(previous[field] ?? null) !== JSON.stringify(current[field] ?? null)) {
      changes[field] = { from: previous[field] ?? null, to: current[field] ?? null };
    }
  }
  return changes;
}

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

/** What a deployment event relates besides the deployment: its flow, queue, pool, blocks and limit. */
export interface DeploymentSurroundings {
  readonly flowName: string | null;
  readonly queue: WorkQueue | null;
  readonly pool: WorkPool | null;
}

/** `prefect.deployment.ready` / `.not-ready`. */
export function deploymentStatusEvent(deployment: Deployment, status: Deployment["status"], around: DeploymentSurroundings, occurred: Timestamp): ReceivedEvent {
  const related: Labels[] = [];
  if (around.flowName !== null) {
    related.push({ "prefect.resource.id": `prefect.flow.${deployment.flow_id}`, "prefect.resource.name": around.flowName, "prefect.resource.role": "flow" });
  }
  if (around.queue) related.push(queueLabels(around.queue));
  if (around.pool) related.push(poolAsRelated(around.pool));
  if (deployment.storage_document_id) {
    related.push({ "prefect.resource.id": `prefect.block-document.${deployment.storage_document_id}`, "prefect.resource.role": "storage" });
  }
  if (deployment.infrastructure_document_id) {
    related.push({ "prefect.resource.id": `prefect.block-document.${deployment.infrastructure_document_id}`, "prefect.resource.role": "infrastructure" });
  }
  if (deployment.concurrency_limit_id) {
    related.push({ "prefect.resource.id": `prefect.concurrency-limit.${deployment.concurrency_limit_id}`, "prefect.resource.role": "concurrency-limit" });
  }
  return event({
    occurred,
    event: `prefect.deployment.${kebab(status)}`,
    resource: { "prefect.resource.id": `prefect.deployment.${deployment.id}`, "prefect.resource.name": deployment.name },
    related,
  });
}
