/**
 * What the deployment routes build on: Prefect's response shapes, the work queue a deployment's
 * `work_pool_name` / `work_queue_name` stand for (created when Prefect creates it), job variables
 * checked against the work pool's base job template, parameters checked against a deployment's
 * parameter schema, the way `PATCH /deployments/{id}` applies schedules given with slugs, and the
 * deployment events (`prefect.deployment.*`).
 */
import { uuid7 } from "@prefect/orchestration";
import {
  AlreadyExistsError,
  type Deployment,
  type DeploymentSchedule,
  InvalidError,
  now,
  type Repositories,
  type WorkPool,
  type WorkQueue,
} from "@prefect/db";
import type { AppContext } from "../app.js";
import { HttpError } from "../http/errors.js";
import { CircularSchemaError, metaSchemaProblem, pythonRepr, schemaProblem } from "./json-schema.js";

/** Prefect's DEFAULT_AGENT_WORK_POOL_NAME: the pool legacy (agent) work queues live in. */
export const DEFAULT_AGENT_WORK_POOL_NAME = "default-agent-pool";
const AGENT_POOL_TYPE = "prefect-agent";
const DEFAULT_QUEUE_NAME = "default";

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

// ---------------------------------------------------------------------------------------------
// Responses

export function scheduleResponse(schedule: DeploymentSchedule) {
  return {
    id: schedule.id,
    created: schedule.created,
    updated: schedule.updated,
    deployment_id: schedule.deployment_id,
    schedule: schedule.schedule,
    active: schedule.active,
    max_scheduled_runs: schedule.max_scheduled_runs,
    parameters: schedule.parameters,
    slug: schedule.slug,
  };
}

/** Prefect's DeploymentResponse (its deprecated `concurrency_limit` is always null). */
export function deploymentResponse(d: Deployment) {
  const limit = d.global_concurrency_limit;
  return {
    id: d.id,
    created: d.created,
    updated: d.updated,
    name: d.name,
    version: d.version,
    description: d.description,
    flow_id: d.flow_id,
    paused: d.paused,
    schedules: d.schedules.map(scheduleResponse),
    concurrency_limit: null,
    global_concurrency_limit: limit
      ? {
          id: limit.id,
          created: limit.created,
          updated: limit.updated,
          active: limit.active,
          name: limit.name,
          limit: limit.limit,
          active_slots: limit.active_slots,
          slot_decay_per_second: limit.slot_decay_per_second,
        }
      : null,
    concurrency_options: d.concurrency_options ? { grace_period_seconds: null, ...d.concurrency_options } : null,
    job_variables: d.job_variables ?? {},
    parameters: d.parameters ?? {},
    tags: d.tags,
    labels: d.labels ?? {},
    work_queue_name: d.work_queue_name,
    work_queue_id: d.work_queue_id,
    last_polled: d.last_polled,
    parameter_openapi_schema: d.parameter_openapi_schema,
    path: d.path,
    pull_steps: d.pull_steps,
    entrypoint: d.entrypoint,
    storage_document_id: d.storage_document_id,
    infrastructure_document_id: d.infrastructure_document_id,
    created_by: d.created_by,
    updated_by: d.updated_by,
    work_pool_name: d.work_pool_name,
    status: d.status,
    enforce_parameter_schema: d.enforce_parameter_schema,
  };
}

/** Prefect's WorkQueue (core schema), as `work_queue_check` lists them. */
export function workQueueResponse(queue: WorkQueue) {
  return {
    id: queue.id,
    created: queue.created,
    updated: queue.updated,
    name: queue.name,
    description: queue.description,
    is_paused: queue.is_paused,
    concurrency_limit: queue.concurrency_limit,
    priority: queue.priority,
    work_pool_id: queue.work_pool_id,
    filter: queue.filter,
    last_polled: queue.last_polled,
  };
}

// ---------------------------------------------------------------------------------------------
// Work queues

const workPoolNotFound = (name: string) => new HttpError(404, `Work pool "${name}" not found.`);

/** Creates a queue, or, when a concurrent request created it first, returns that one. */
async function createQueueOnce(tx: Repositories, pool: WorkPool, name: string, priority?: number): Promise<string> {
  try {
    return (await tx.workPools.createQueue(pool.id, priority === undefined ? { name } : { name, priority })).id;
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
    const existing = await tx.workPools.getQueueByName(pool.name, name);
    if (!existing) throw error;
    return existing.id;
  }
}

/** Prefect's `_get_work_queue_id_from_name(create_queue_if_not_found=True)`: 404 for an unknown pool. */
export async function poolQueueId(tx: Repositories, poolName: string, queueName: string): Promise<string> {
  const existing = await tx.workPools.getQueueByName(poolName, queueName);
  if (existing) return existing.id;
  const pool = await tx.workPools.getByName(poolName);
  if (!pool) throw workPoolNotFound(poolName);
  return createQueueOnce(tx, pool, queueName);
}

/** Prefect's `_get_default_work_queue_id_from_work_pool_name`. */
export async function poolDefaultQueueId(tx: Repositories, poolName: string): Promise<string | null> {
  const pool = await tx.workPools.getByName(poolName);
  if (!pool) throw workPoolNotFound(poolName);
  return pool.default_queue_id;
}

/**
 * Prefect's `ensure_work_queue_exists` for a queue named without a pool: the queue of that name in
 * the default agent pool (created there when missing); without that pool, a queue of that name in
 * any pool, else the pool is created with the queue.
 */
export async function legacyQueueId(tx: Repositories, name: string): Promise<string | null> {
  let agentPool = await tx.workPools.getByName(DEFAULT_AGENT_WORK_POOL_NAME);
  if (!agentPool) {
    for (const pool of await tx.workPools.read()) {
      const [queue] = await tx.workPools.readQueues(pool.id, { work_queues: { name: { any_: [name] } } });
      if (queue) return queue.id;
    }
    try {
      agentPool = await tx.workPools.create({ name: DEFAULT_AGENT_WORK_POOL_NAME, type: AGENT_POOL_TYPE });
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      agentPool = await tx.workPools.getByName(DEFAULT_AGENT_WORK_POOL_NAME);
      if (!agentPool) throw error;
    }
  }
  const existing = await tx.workPools.getQueueByName(DEFAULT_AGENT_WORK_POOL_NAME, name);
  if (existing) return existing.id;
  if (name === DEFAULT_QUEUE_NAME) return agentPool.default_queue_id;
  return createQueueOnce(tx, agentPool, name, 1);
}

/** The pool of a deployment's queue, if it has one. */
export async function poolOf(tx: Repositories, deployment: Deployment): Promise<WorkPool | null> {
  if (!deployment.work_queue_id) return null;
  const queue = await tx.workPools.getQueue(deployment.work_queue_id);
  return queue ? tx.workPools.get(queue.work_pool_id) : null;
}

// ---------------------------------------------------------------------------------------------
// Job variables

/** A block document's data (secrets masked) by id; undefined when there is no such document. */
export type BlockDataLookup = (tx: Repositories, blockDocumentId: string) => Promise<Json | undefined>;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * Prefect's `_validate_work_pool_job_variables`: the pool's variable defaults (a default referring to
 * a block document is that document's data; defaults that do not fit their own schema are dropped),
 * then each of `jobVariables` in turn, against the pool's `variables` schema. `required` is checked
 * only when `ignoreRequired` is false and no default was dropped. Null when they fit or the pool has
 * no variables schema; else Prefect's message. 404 for a default naming a missing block document,
 * 422 for a variables schema that is not valid JSON Schema.
 */
export async function jobVariablesProblem(
  tx: Repositories,
  blockData: BlockDataLookup,
  pool: WorkPool,
  jobVariables: readonly (Json | null | undefined)[],
  options: { ignoreRequired: boolean },
): Promise<string | null> {
  const template = pool.base_job_template;
  if (!isRecord(template) || Object.keys(template).length === 0) return null;
  const schema = template.variables;
  if (!isRecord(schema) || Object.keys(schema).length === 0) return null;
  const invalid = metaSchemaProblem(schema);
  if (invalid) throw new InvalidError(`Invalid schema: ${invalid}`, [{ path: [], message: `Invalid schema: ${invalid}` }]);

  const merged: Json = {};
  let droppedDefault = false;
  const properties = isRecord(schema.properties) ? schema.properties : {};
  for (const [name, attributes] of Object.entries(properties)) {
    if (!isRecord(attributes) || !("default" in attributes)) continue;
    let value = attributes.default;
    if (isRecord(value) && "$ref" in value) {
      const reference = isRecord(value.$ref) ? value.$ref.block_document_id : undefined;
      if (reference === undefined || reference === null) continue;
      if (typeof reference !== "string" || !UUID.test(reference)) throw new HttpError(404, "Block not found.");
      value = await blockData(tx, reference.toLowerCase());
      if (value === undefined) throw new HttpError(404, "Block not found.");
    }
    if (schemaCheck({ [name]: value }, schema, { preprocess: false, ignoreRequired: true }) === null) merged[name] = value;
    else droppedDefault = true;
  }
  for (const variables of jobVariables) if (isRecord(variables)) Object.assign(merged, variables);
  const problem = schemaCheck(merged, schema, { preprocess: true, ignoreRequired: options.ignoreRequired || droppedDefault, allowNoneWithDefault: true });
  return problem?.message ?? null;
}

/** `schemaProblem`, with a looping schema answered as Prefect answers it (422). */
export function schemaCheck(value: unknown, schema: unknown, options: Parameters<typeof schemaProblem>[2]) {
  try {
    return schemaProblem(value, schema, options);
  } catch (error) {
    if (error instanceof CircularSchemaError) throw new InvalidError(error.message, [{ path: [], message: error.message }]);
    throw error;
  }
}

/**
 * Prefect's `DeploymentUpdate.check_valid_configuration`: the job variables alone against the
 * pool's variables schema (repaired, `required` ignored); 409 with the problem as Python shows it.
 */
export function checkUpdatedJobVariables(pool: WorkPool, jobVariables: Json | null | undefined): void {
  const schema = isRecord(pool.base_job_template) ? pool.base_job_template.variables : undefined;
  if (!isRecord(schema) || !jobVariables) return;
  const problem = schemaCheck(jobVariables, schema, { preprocess: true, ignoreRequired: true });
  if (problem) throw new HttpError(409, `Error creating deployment: <ValidationError: ${pythonRepr(problem.reason)}>`);
}

/** A Prefect validation failure that its API reports as a 422 naming only the message. */
export function unprocessable(message: string, path: (string | number)[] = []): InvalidError {
  return new InvalidError(message, [{ path, message }]);
}

// ---------------------------------------------------------------------------------------------
// Parameters

/**
 * Prefect's DeploymentCreate validators when `enforce_parameter_schema` is given as true: the
 * parameters must fit the parameter schema (`required` ignored, no repairs) and the schema must be
 * valid JSON Schema. 422 as pydantic reports a model validator's error.
 */
export function checkCreateParameters(body: { enforce_parameter_schema?: boolean | undefined; parameters?: Json | undefined; parameter_openapi_schema?: Json | null | undefined }): void {
  if (!body.enforce_parameter_schema) return;
  const schema = body.parameter_openapi_schema;
  if (schema === null || schema === undefined) return;
  const problem = schemaCheck(body.parameters ?? {}, schema, { preprocess: false, ignoreRequired: true });
  if (problem) throw unprocessable(`Value error, ${problem.message}`);
}

/** A template the server would have to render with Jinja (hydration of `jinja` values). */
export function needsJinja(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(needsJinja);
  if (!isRecord(value)) return false;
  if (value.__prefect_kind === "jinja" && typeof value.template === "string" && /\{\{|\{%|\{#/.test(value.template)) return true;
  return Object.values(value).some(needsJinja);
}

export const JINJA_UNSUPPORTED =
  "Jinja templates in parameters are not supported by this server: give the value itself, or a workspace variable ({'__prefect_kind': 'workspace_variable'}).";

// ---------------------------------------------------------------------------------------------
// Schedules given to PATCH /deployments/{id}

export interface ScheduleChange {
  readonly active?: boolean | null | undefined;
  readonly schedule?: DeploymentSchedule["schedule"] | null | undefined;
  readonly max_scheduled_runs?: number | null | undefined;
  readonly parameters?: Json | undefined;
  readonly slug?: string | null | undefined;
  readonly replaces?: string | null | undefined;
}

export interface SchedulePlan {
  /** Replace every schedule with these (Prefect's fallback when slugs cannot be matched). */
  readonly replaceAll: ScheduleChange[] | undefined;
  /** Update the schedule with the slug `replaces ?? slug`. */
  readonly patches: ScheduleChange[];
  /** Add these. */
  readonly creates: ScheduleChange[];
}

/**
 * How Prefect's update applies `schedules`: when every existing schedule and every given one has a
 * slug, the given ones update the schedules with their slug (or the slug they replace) and the
 * others are added, leaving unmentioned schedules alone; when the existing ones have slugs and a
 * given one does not, 422; otherwise, when schedules are given, they replace all of them.
 */
export function planSchedules(existing: readonly DeploymentSchedule[], given: readonly ScheduleChange[] | undefined): SchedulePlan {
  const provided = given ?? [];
  const allProvidedHaveSlugs = provided.every((s) => s.slug !== null && s.slug !== undefined);
  const allExistingHaveSlugs = existing.length > 0 && existing.every((s) => s.slug !== null);
  if (allProvidedHaveSlugs && allExistingHaveSlugs) {
    const current = new Set(existing.map((s) => s.slug));
    const replaced = new Set<string>();
    for (const schedule of provided) {
      if (!schedule.replaces) continue;
      if (replaced.has(schedule.replaces)) throw unprocessable(`Multiple schedules have 'replaces' targeting the same slug: ${schedule.replaces}`, ["schedules"]);
      replaced.add(schedule.replaces);
    }
    for (const schedule of provided) {
      if (schedule.slug && current.has(schedule.slug) && !replaced.has(schedule.slug) && schedule.replaces) {
        throw unprocessable(
          `Cannot rename schedule from '${schedule.replaces}' to '${schedule.slug}': a schedule with slug '${schedule.slug}' already exists.`,
          ["schedules"],
        );
      }
    }
    const patches: ScheduleChange[] = [];
    const creates: ScheduleChange[] = [];
    for (const schedule of provided) {
      const target = schedule.replaces ? schedule.replaces : schedule.slug;
      if (target && current.has(target)) patches.push(schedule);
      else if (schedule.schedule) creates.push(schedule);
      else throw unprocessable("Unable to create new deployment schedules without a schedule configuration.", ["schedules"]);
    }
    return { replaceAll: undefined, patches, creates };
  }
  if (!allProvidedHaveSlugs && allExistingHaveSlugs) {
    throw unprocessable("Please provide a slug for each schedule in your request to ensure schedules are updated correctly.", ["schedules"]);
  }
  return { replaceAll: given === undefined ? undefined : [...given], patches: [], creates: [] };
}

/**
 * What Prefect writes when it updates a schedule from a change: the values given that are not null,
 * `parameters` always (an empty object when not given), never `replaces`.
 */
export function scheduleUpdateValues(change: ScheduleChange) {
  return {
    parameters: change.parameters ?? {},
    ...(change.active !== null && change.active !== undefined ? { active: change.active } : {}),
    ...(change.schedule ? { schedule: change.schedule } : {}),
    ...(change.max_scheduled_runs !== null && change.max_scheduled_runs !== undefined ? { max_scheduled_runs: change.max_scheduled_runs } : {}),
    ...(change.slug !== null && change.slug !== undefined ? { slug: change.slug } : {}),
  };
}

/**
 * A schedule Prefect creates from a deployment's create or update: the definition, `active` (true
 * unless given), parameters and slug; Prefect does not carry `max_scheduled_runs` over there.
 */
export function scheduleFromChange(change: ScheduleChange & { schedule: DeploymentSchedule["schedule"] }) {
  return {
    schedule: change.schedule,
    active: change.active ?? true,
    parameters: change.parameters ?? {},
    slug: change.slug ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Events

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

/** Deep equality of JSON values, object key order ignored. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return false;
}

/** Prefect's `_detect_deployment_changed_fields`: `{field: {from, to}}` for the fields that changed. */
export function changedFields(before: Deployment, after: Deployment): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const [field, read] of EVENT_FIELDS) {
    const from = read(before) ?? null;
    const to = read(after) ?? null;
    if (!sameJson(from, to)) changes[field] = { from, to };
  }
  return changes;
}

type Related = Record<string, string>[];

/** Prefect's `_deployment_related_resources`: the flow, work queue, work pool, blocks and concurrency limit. */
export async function deploymentRelated(tx: Repositories, d: Deployment): Promise<Related> {
  const related: Related = [];
  const flow = await tx.flows.get(d.flow_id);
  if (flow) related.push({ "prefect.resource.id": `prefect.flow.${flow.id}`, "prefect.resource.name": flow.name, "prefect.resource.role": "flow" });
  const queue = d.work_queue_id ? await tx.workPools.getQueue(d.work_queue_id) : null;
  if (queue) related.push({ "prefect.resource.id": `prefect.work-queue.${queue.id}`, "prefect.resource.name": queue.name, "prefect.resource.role": "work-queue" });
  const pool = queue ? await tx.workPools.get(queue.work_pool_id) : null;
  if (pool) {
    related.push({
      "prefect.resource.id": `prefect.work-pool.${pool.id}`,
      "prefect.resource.name": pool.name,
      "prefect.work-pool.type": pool.type,
      "prefect.resource.role": "work-pool",
    });
  }
  if (d.storage_document_id) related.push({ "prefect.resource.id": `prefect.block-document.${d.storage_document_id}`, "prefect.resource.role": "storage" });
  if (d.infrastructure_document_id) {
    related.push({ "prefect.resource.id": `prefect.block-document.${d.infrastructure_document_id}`, "prefect.resource.role": "infrastructure" });
  }
  if (d.concurrency_limit_id) {
    related.push({ "prefect.resource.id": `prefect.concurrency-limit.${d.concurrency_limit_id}`, "prefect.resource.role": "concurrency-limit" });
  }
  return related;
}

/** An event about a deployment, to publish once its change has committed. */
export interface DeploymentEvent {
  readonly event: string;
  readonly resource: Record<string, string>;
  readonly related: Related;
  readonly payload: Json;
  readonly occurred: string;
}

/** `prefect.deployment.<what>` for `d` (created, updated, deleted, ready, not-ready). */
export async function deploymentEvent(tx: Repositories, what: string, d: Deployment, payload: Json = {}): Promise<DeploymentEvent> {
  return {
    event: `prefect.deployment.${what}`,
    resource: { "prefect.resource.id": `prefect.deployment.${d.id}`, "prefect.resource.name": d.name },
    related: await deploymentRelated(tx, d),
    payload,
    occurred: now(),
  };
}

/** The `prefect.deployment.updated` event for a change, or none when no tracked field changed. */
export async function updatedEvent(tx: Repositories, before: Deployment, after: Deployment): Promise<DeploymentEvent[]> {
  const changes = changedFields(before, after);
  if (Object.keys(changes).length === 0) return [];
  return [await deploymentEvent(tx, "updated", after, { updated_fields: Object.keys(changes), updates: changes })];
}

export function publishDeploymentEvents(context: AppContext, events: readonly DeploymentEvent[]): void {
  if (events.length === 0) return;
  const received = now();
  context.events.publish(events.map((e) => ({ id: uuid7(), occurred: e.occurred, received, event: e.event, resource: e.resource, related: e.related, payload: e.payload })));
}
