/**
 * Prefect's deployment events (`prefect.deployment.created` / `updated` / `deleted` / `ready` /
 * `not-ready`; see its models/deployments.py and models/events.py), built from rows that have
 * committed: the deployment is the resource, its flow, work queue, work pool, blocks and concurrency
 * limit are the related resources.
 */
import type { Deployment, Repositories, Timestamp, WorkPool, WorkQueue } from "@prefect/db";
import { type PrefectEvent, prefectEvent, type ResourceLabels } from "@prefect/orchestration";
import { changedFields } from "../../prefect/json.js";
import { kebab, poolAsRelated, queueLabels } from "../work-pools/events.js";

/** What a deployment event relates besides the deployment: its flow, queue and pool. */
export interface DeploymentSurroundings {
  readonly flowName: string | null;
  readonly queue: WorkQueue | null;
  readonly pool: WorkPool | null;
}

/** The deployment's flow, queue and pool, as they are now. */
export async function surroundingsOf(db: Repositories, deployment: Deployment): Promise<DeploymentSurroundings> {
  const flow = await db.flows.get(deployment.flow_id);
  const queue = deployment.work_queue_id ? await db.workQueues.get(deployment.work_queue_id) : null;
  const pool = queue ? await db.workPools.get(queue.work_pool_id) : null;
  return { flowName: flow?.name ?? null, queue, pool };
}

/** Prefect's `_deployment_related_resources`: the flow, work queue, work pool, blocks and concurrency limit. */
function related(deployment: Deployment, around: DeploymentSurroundings): ResourceLabels[] {
  const resources: ResourceLabels[] = [];
  if (around.flowName !== null) {
    resources.push({ "prefect.resource.id": `prefect.flow.${deployment.flow_id}`, "prefect.resource.name": around.flowName, "prefect.resource.role": "flow" });
  }
  if (around.queue) resources.push(queueLabels(around.queue));
  if (around.pool) resources.push(poolAsRelated(around.pool));
  if (deployment.storage_document_id) {
    resources.push({ "prefect.resource.id": `prefect.block-document.${deployment.storage_document_id}`, "prefect.resource.role": "storage" });
  }
  if (deployment.infrastructure_document_id) {
    resources.push({ "prefect.resource.id": `prefect.block-document.${deployment.infrastructure_document_id}`, "prefect.resource.role": "infrastructure" });
  }
  if (deployment.concurrency_limit_id) {
    resources.push({ "prefect.resource.id": `prefect.concurrency-limit.${deployment.concurrency_limit_id}`, "prefect.resource.role": "concurrency-limit" });
  }
  return resources;
}

/** `prefect.deployment.<what>` for the deployment (created, updated, deleted, ready, not-ready). */
export function deploymentEvent(
  what: string,
  deployment: Deployment,
  around: DeploymentSurroundings,
  options: { readonly payload?: Record<string, unknown>; readonly occurred?: Timestamp } = {},
): PrefectEvent {
  return prefectEvent({
    event: `prefect.deployment.${what}`,
    resource: { "prefect.resource.id": `prefect.deployment.${deployment.id}`, "prefect.resource.name": deployment.name },
    related: related(deployment, around),
    payload: options.payload ?? {},
    occurred: options.occurred,
  });
}

/** `prefect.deployment.ready` / `.not-ready`. */
export const deploymentStatusEvent = (deployment: Deployment, status: Deployment["status"], around: DeploymentSurroundings, occurred: Timestamp) =>
  deploymentEvent(kebab(status), deployment, around, { occurred });

/** The event about a deployment now, its surroundings read in `db`. */
export async function deploymentEventNow(db: Repositories, what: string, deployment: Deployment, payload: Record<string, unknown> = {}): Promise<PrefectEvent> {
  return deploymentEvent(what, deployment, await surroundingsOf(db, deployment), { payload });
}

/** Prefect's DEPLOYMENT_EVENT_FIELDS (with the `infra_overrides` column as the API calls it). */
const EVENT_FIELDS: readonly [string, (d: Deployment) => unknown][] = [
  ["description", (d) => d.description],
  ["tags", (d) => d.tags],
  ["parameters", (d) => d.parameters],
  ["parameter_openapi_schema", (d) => d.parameter_openapi_schema],
  ["enforce_parameter_schema", (d) => d.enforce_parameter_schema],
  ["entrypoint", (d) => d.entrypoint],
  ["path", (d) => d.path],
  ["pull_steps", (d) => d.pull_steps],
  ["work_queue_id", (d) => d.work_queue_id],
  ["infra_overrides", (d) => d.job_variables],
  ["paused", (d) => d.paused],
  ["labels", (d) => d.labels],
  ["version", (d) => d.version],
  ["concurrency_limit_id", (d) => d.concurrency_limit_id],
  ["concurrency_options", (d) => d.concurrency_options],
];

const eventView = (d: Deployment): Record<string, unknown> => Object.fromEntries(EVENT_FIELDS.map(([field, read]) => [field, read(d)]));

/** The `prefect.deployment.updated` event for a change, or none when no tracked field changed (Prefect's `_detect_deployment_changed_fields`). */
export async function updatedEvent(db: Repositories, before: Deployment, after: Deployment): Promise<PrefectEvent[]> {
  const changes = changedFields(eventView(before), eventView(after), EVENT_FIELDS.map(([field]) => field));
  if (Object.keys(changes).length === 0) return [];
  return [await deploymentEventNow(db, "updated", after, { updated_fields: Object.keys(changes), updates: changes })];
}
