/**
 * Events the worker stores with `db.events.createMany`, as the server's event persister stores what
 * it receives: orchestration's `prefect.flow-run.<State>` events for the transitions the worker made,
 * and Prefect's worker events (`prefect.worker.started`, `submitted-flow-run`, `executed-flow-run`,
 * `stopped`) with the resources Prefect relates to them.
 */
import { BusyError, type Database, type Deployment, type EventCreate, type Flow, type FlowRun, now, type WorkPool } from "@prefect/db";
import { type OrchestrationEvent, type PrefectEvent, prefectEvent } from "@prefect/orchestration";
import type { WorkerLogger } from "./logger.js";

/** The Prefect version this project's server reports itself as. */
export const PREFECT_VERSION = "3.8.3";
export const WORKER_TYPE = "process";

export type Resource = Record<string, string>;

export type WorkerEvent = PrefectEvent;

/** python-slugify's default: lower case ASCII words joined by hyphens. */
export function slugify(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/['"]+/g, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** The worker as an event resource (Prefect's `BaseWorker._event_resource`). */
export function workerResource(name: string): Resource {
  return {
    "prefect.resource.id": `prefect.worker.${WORKER_TYPE}.${slugify(name)}`,
    "prefect.resource.name": name,
    "prefect.version": PREFECT_VERSION,
    "prefect.worker-type": WORKER_TYPE,
  };
}

const related = (kind: string, object: { id: string; name: string }): Resource => ({
  "prefect.resource.id": `prefect.${kind}.${object.id}`,
  "prefect.resource.role": kind,
  "prefect.resource.name": object.name,
});

export function workPoolResource(pool: WorkPool): Resource {
  return related("work-pool", pool);
}

/** What Prefect relates to a flow run's worker events: deployment, flow, flow run, their tags, the pool. */
export function flowRunResources(run: FlowRun, flow: Flow | null, deployment: Deployment | null, pool: WorkPool): Resource[] {
  const resources: Resource[] = [];
  const tags = new Set<string>(run.tags);
  if (deployment) {
    resources.push(related("deployment", deployment));
    for (const tag of deployment.tags) tags.add(tag);
  }
  if (flow) {
    resources.push(related("flow", flow));
    for (const tag of flow.tags ?? []) tags.add(tag);
  }
  resources.push(related("flow-run", run));
  for (const tag of [...tags].sort()) resources.push({ "prefect.resource.id": `prefect.tag.${tag}`, "prefect.resource.role": "tag" });
  resources.push(workPoolResource(pool));
  return resources;
}

export function workerEvent(event: string, resource: Resource, relatedResources: Resource[], follows: string | null = null): WorkerEvent {
  return prefectEvent({ event, resource, related: relatedResources, follows });
}

/** How long events the database could not take wait before the next try. */
const RETRY_MS = 1000;
/** Most events written at once. */
const BATCH_SIZE = 500;
/** Events kept for another try when the database cannot take them; older ones are dropped past this. */
const MAX_BUFFERED = 20_000;

/**
 * Stores events in the order they were written, one write at a time: what is queued while a write is
 * in flight goes out together in the next one (up to BATCH_SIZE events a statement), so that runs
 * that report at once share appends. The run path only queues (`enqueue`): as Prefect's workers and
 * server publish their events without waiting for them to be stored, a run does not wait for the
 * append lock each time it moves; `stop` writes what is still queued. A write the database cannot take
 * now (BusyError: a restart, a lost connection, a full pool) keeps its events for the next write or
 * the retry a second later, so that a run's events survive a database outage; events the database
 * refuses are logged and dropped. Failures are never thrown: the runs go on.
 */
export class EventWriter {
  readonly #db: Database;
  readonly #log: WorkerLogger;
  /** Events not stored yet, oldest first. */
  #queue: EventCreate[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #retry: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(db: Database, log: WorkerLogger) {
    this.#db = db;
    this.#log = log;
  }

  /** Queues `events` after those still waiting, to be stored with the next write. */
  enqueue(events: readonly (OrchestrationEvent | WorkerEvent)[]): void {
    void this.write(events);
  }

  /** Stores `events` after those still waiting; resolves once tried. */
  write(events: readonly (OrchestrationEvent | WorkerEvent)[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const received = now();
    this.#queue.push(...events.map((e) => ({ ...e, related: [...e.related], received })));
    if (this.#queue.length > MAX_BUFFERED) {
      const dropped = this.#queue.splice(0, this.#queue.length - MAX_BUFFERED);
      this.#log.error({ events: dropped.length }, "Dropping events that could not be stored");
    }
    return this.#flush();
  }

  /** One last try for the events still waiting (the worker is stopping). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    await this.#flush();
    if (this.#queue.length > 0) this.#log.error({ events: this.#queue.length }, "Could not store every event before stopping");
  }

  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#writeQueued());
    return this.#flushing;
  }

  async #writeQueued(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.slice(0, BATCH_SIZE);
      try {
        // Events stored already (a write whose answer was lost) are skipped by the repository.
        await this.#db.events.createMany(batch);
      } catch (error) {
        if (error instanceof BusyError) {
          this.#log.warn({ err: error, pending: this.#queue.length }, "Could not store events; will try again");
          this.#retryLater();
          return;
        }
        this.#log.warn({ err: error, events: batch.map((e) => e.event) }, "Could not store events");
      }
      this.#queue.splice(0, batch.length);
    }
  }

  #retryLater(): void {
    if (this.#stopped || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      void this.#flush();
    }, RETRY_MS);
    this.#retry.unref();
  }
}
