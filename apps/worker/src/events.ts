/**
 * Events the worker stores with `db.events.createMany`, as the server's event persister stores what
 * it receives: orchestration's `prefect.flow-run.<State>` events for the transitions the worker made,
 * and Prefect's worker events (`prefect.worker.started`, `submitted-flow-run`, `executed-flow-run`,
 * `stopped`) with the resources Prefect relates to them.
 */
import type { Database, Deployment, EventCreate, Flow, FlowRun, WorkPool } from "@prefect/db";
import { now } from "@prefect/db";
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

/** Stores events; a failure is logged, never thrown (the runs go on). */
export class EventWriter {
  readonly #db: Database;
  readonly #log: WorkerLogger;

  constructor(db: Database, log: WorkerLogger) {
    this.#db = db;
    this.#log = log;
  }

  async write(events: readonly (OrchestrationEvent | WorkerEvent)[]): Promise<void> {
    if (events.length === 0) return;
    const received = now();
    const batch: EventCreate[] = events.map((e) => ({ ...e, related: [...e.related], received }));
    try {
      await this.#db.events.createMany(batch);
    } catch (error) {
      this.#log.warn({ err: error, events: events.map((e) => e.event) }, "Could not store events");
    }
  }
}
