/**
 * What the work pool and work queue routes share: their response bodies, Prefect's reserved pool
 * names, the check of a new pool's job variable defaults, and the bookkeeping of polls (queues and
 * their deployments marked polled and READY after the answer, as Prefect's background tasks do).
 */
import {
  BusyError,
  type Database,
  type FlowRun,
  InvalidError,
  now,
  type Repositories,
  secondsBetween,
  type SlotHolder,
  type Timestamp,
  type Worker,
  type WorkPool,
  type WorkQueue,
} from "@prefect/db";
import Ajv2020 from "ajv/dist/2020.js";
import type { FastifyBaseLogger, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { AppContext } from "../app.js";
import { readBlockDocument } from "../blocks/documents.js";
import type { Fernet } from "../blocks/encryption.js";
import { HttpError } from "../http/errors.js";
import { preprocessSchema, withoutKey } from "./json-schema.js";
import { flowRunResponse } from "./responses.js";
import { validateRunInput } from "./run-input.js";
import { clientVersionOf } from "./run-support.js";
import { deploymentStatusEvent, workQueueStatusEvent } from "./work-pool-events.js";

/**
 * `input` checked against a data-layer schema up front (Prefect validates its bodies before anything
 * else): a problem is a 422 naming where it is.
 */
export function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ path: issue.path.map((p) => (typeof p === "symbol" ? String(p) : p)), message: issue.message }));
  throw new InvalidError(issues.map((i) => i.message).join("; "), issues);
}

/** Prefect reserves pool names starting with "prefect" (any case) for itself. */
export const isReservedPoolName = (name: string) => name.toLowerCase().startsWith("prefect");

/** Prefect's 404 for a pool looked up by name. */
export const poolNotFound = (name: string) => new HttpError(404, `Work pool "${name}" not found.`);

/** Prefect's 404 for a queue looked up by pool and queue name. */
export const poolQueueNotFound = (poolName: string, queueName: string) => new HttpError(404, `Work pool queue '${poolName}/${queueName}' not found.`);

/** The pool with this name, or Prefect's 404. */
export async function poolByName(db: Repositories, name: string): Promise<WorkPool> {
  const pool = await db.workPools.getByName(name);
  if (!pool) throw poolNotFound(name);
  return pool;
}

/** The queue with these names, or Prefect's 404. */
export async function queueByName(db: Repositories, poolName: string, queueName: string): Promise<WorkQueue> {
  const queue = await db.workPools.getQueueByName(poolName, queueName);
  if (!queue) throw poolQueueNotFound(poolName, queueName);
  return queue;
}

/**
 * Prefect clients up to 3.3.7 fail on `storage_configuration.default_result_storage_block_id`, so
 * Prefect leaves it out for them (their version is in the User-Agent).
 */
export function omitsResultStorageBlock(request: FastifyRequest): boolean {
  const version = clientVersionOf(request);
  const match = version ? /^(\d+)\.(\d+)\.(\d+)(.*)$/.exec(version) : null;
  if (!match) return false;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const suffix = match[4] ?? "";
  const order = major - 3 || minor - 3 || patch - 7;
  if (order !== 0) return order < 0;
  // 3.3.7 itself, and its pre-releases (a, b, rc, dev), but not its post or local releases.
  return suffix === "" || /^\.?(a|b|rc|dev)/.test(suffix);
}

/** Prefect's WorkPoolResponse: `active_slots` only for pools with a limit. */
export function workPoolResponse(pool: WorkPool, activeSlots: number | null, omitResultStorageBlock = false) {
  const { default_result_storage_block_id, ...storage } = pool.storage_configuration;
  return {
    id: pool.id,
    created: pool.created,
    updated: pool.updated,
    name: pool.name,
    description: pool.description,
    type: pool.type,
    base_job_template: pool.base_job_template,
    is_paused: pool.is_paused,
    concurrency_limit: pool.concurrency_limit,
    status: pool.status,
    default_queue_id: pool.default_queue_id,
    storage_configuration: omitResultStorageBlock ? storage : { ...storage, default_result_storage_block_id },
    active_slots: pool.concurrency_limit === null ? null : activeSlots,
  };
}

/** Prefect's WorkQueueResponse: `active_slots` only for queues with a limit. */
export function workQueueResponse(queue: WorkQueue, activeSlots: number | null) {
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
    work_pool_name: queue.work_pool_name,
    status: queue.status,
    active_slots: queue.concurrency_limit === null ? null : activeSlots,
  };
}

/** Prefect's WorkerResponse. */
export function workerResponse(worker: Worker) {
  return {
    id: worker.id,
    created: worker.created,
    updated: worker.updated,
    name: worker.name,
    work_pool_id: worker.work_pool_id,
    last_heartbeat_time: worker.last_heartbeat_time,
    heartbeat_interval_seconds: worker.heartbeat_interval_seconds,
    status: worker.status,
  };
}

/** A flow run as Prefect's core FlowRun shows it (what workers get: no pool fields). */
export function coreFlowRunResponse(run: FlowRun, at: Timestamp) {
  const { work_pool_id: _pool, work_pool_name: _poolName, ...core } = flowRunResponse(run, at);
  return core;
}

/** Prefect's FlowRunSlotSummary. */
export function slotSummary(holder: SlotHolder, at: Timestamp) {
  return {
    id: holder.id,
    name: holder.name,
    state_type: holder.state_type,
    state_name: holder.state_name,
    start_time: holder.start_time,
    state_timestamp: holder.state_timestamp,
    time_in_current_state: holder.state_timestamp === null ? null : secondsBetween(at, holder.state_timestamp),
  };
}

/** Prefect's page count. */
export const pageCount = (count: number, limit: number) => (limit > 0 ? Math.ceil(count / limit) : 0);

// ---------------------------------------------------------------------------------------------
// Job variable defaults of a new pool (Prefect's validate_job_variable_defaults_for_work_pool)
// ---------------------------------------------------------------------------------------------

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

const schemaChecker = new Ajv2020.default({ strict: false, validateFormats: false });

/**
 * Checks the defaults of a base job template's variables against their own schema, required fields
 * aside (a default need not exist), as Prefect does when a pool is created: a default given as a
 * block reference (`{"$ref": {"block_document_id": ...}}`) stands for that block's data (404 "Block
 * not found." when there is no such block). An invalid schema or default is a 422.
 */
export async function checkJobVariableDefaults(db: Repositories, fernet: () => Promise<Fernet>, template: Record<string, unknown>): Promise<void> {
  const variables = template.variables;
  if (!isRecord(variables) || Object.keys(variables).length === 0) return;
  if (!schemaChecker.validateSchema(variables)) {
    const message = `Invalid schema: ${schemaChecker.errorsText(schemaChecker.errors, { dataVar: "schema" })}`;
    throw new InvalidError(message, [{ path: ["base_job_template", "variables"], message }]);
  }
  const properties = isRecord(variables.properties) ? variables.properties : {};
  const defaults: Record<string, unknown> = {};
  for (const [name, attributes] of Object.entries(properties)) {
    if (!isRecord(attributes) || !("default" in attributes)) continue;
    const value = attributes.default;
    if (isRecord(value) && "$ref" in value) {
      const resolved = await blockReference(db, fernet, value.$ref);
      if (resolved !== undefined) defaults[name] = resolved;
    } else {
      defaults[name] = value;
    }
  }
  const problem = validateRunInput(defaults, withoutKey(preprocessSchema(variables, true), "required"));
  if (problem !== null) {
    const message = `Validation failed for work pool's job variable defaults: ${problem.replace(/^Reason: /, "")}`;
    throw new InvalidError(message, [{ path: ["base_job_template"], message }]);
  }
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** The data of the referenced block document; undefined when the reference names none. */
async function blockReference(db: Repositories, fernet: () => Promise<Fernet>, reference: unknown): Promise<unknown> {
  const id = isRecord(reference) ? reference.block_document_id : undefined;
  if (id === undefined || id === null) return undefined;
  if (typeof id !== "string" || !UUID.test(id)) throw new HttpError(404, "Block not found.");
  const hex = id.replace(/-/g, "").toLowerCase();
  const canonical = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const document = await readBlockDocument(db, await fernet(), canonical, false);
  if (!document) throw new HttpError(404, "Block not found.");
  return document.data;
}

// ---------------------------------------------------------------------------------------------
// Polls
// ---------------------------------------------------------------------------------------------

/** Prefect retries its poll bookkeeping 5 times, half a second apart. */
const MARK_ATTEMPTS = 5;
const MARK_RETRY_DELAY_MS = 500;

/**
 * Records polls after their answer has gone out, as Prefect's API hands them to background tasks:
 * the polled queues get `last_polled` (NOT_READY ones become READY, with Prefect's
 * `prefect.work-queue.ready` event), and their deployments become READY (`prefect.deployment.ready`
 * for those that were not). Polls of the same pool (or legacy queue) arriving while one is being
 * recorded are recorded together once it is done, so a crowd of polling workers costs a write now
 * and then rather than one each. The rows are locked in id order, so recorders on other servers over
 * the same database queue up behind each other. `drain()` waits until everything asked is recorded.
 */
export class PollRecorder {
  readonly #pending = new Map<string, Set<string>>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(
    private readonly context: AppContext,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Records that the queues were polled; `key` groups the polls recorded together. */
  record(key: string, workQueueIds: readonly string[]): void {
    if (workQueueIds.length === 0) return;
    let ids = this.#pending.get(key);
    if (!ids) {
      ids = new Set();
      this.#pending.set(key, ids);
    }
    for (const id of workQueueIds) ids.add(id);
    if (!this.#running.has(key)) this.#running.set(key, this.#work(key));
  }

  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running.values());
  }

  async #work(key: string): Promise<void> {
    // Yield first, so that the answer to the poll goes out before its bookkeeping starts.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      const ids = this.#pending.get(key);
      if (!ids) {
        this.#running.delete(key);
        return;
      }
      this.#pending.delete(key);
      await this.#attempt("marking work queues polled", () => this.#markQueues([...ids]));
      await this.#attempt("marking deployments polled", () => this.#markDeployments([...ids]));
    }
  }

  async #attempt(what: string, work: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= MARK_ATTEMPTS) {
          this.log.error({ err: error }, `${what} failed`);
          return;
        }
        if (!(error instanceof BusyError)) this.log.warn({ err: error }, `${what} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, MARK_RETRY_DELAY_MS));
      }
    }
  }

  async #markQueues(ids: string[]): Promise<void> {
    const { db, events } = this.context;
    const readied = await db.workPools.markQueuesPolled(ids);
    if (readied.length === 0) return;
    const pools = await poolsById(db, readied.map((q) => q.work_pool_id));
    events.publish(readied.map((queue) => workQueueStatusEvent(queue, pools.get(queue.work_pool_id) ?? null)));
  }

  async #markDeployments(ids: string[]): Promise<void> {
    const { db, events } = this.context;
    const readied = await db.workPools.markDeploymentsPolled(ids);
    if (readied.length === 0) return;
    const at = now();
    const published = [];
    for (const id of readied) {
      const deployment = await db.deployments.get(id);
      if (!deployment) continue;
      const queue = deployment.work_queue_id ? await db.workPools.getQueue(deployment.work_queue_id) : null;
      const pool = queue ? await db.workPools.get(queue.work_pool_id) : null;
      const flow = await db.flows.get(deployment.flow_id);
      published.push(deploymentStatusEvent(deployment, "READY", { flowName: flow?.name ?? null, queue, pool }, at));
    }
    events.publish(published);
  }
}

async function poolsById(db: Database, ids: readonly string[]): Promise<Map<string, WorkPool>> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return new Map();
  const pools = await db.workPools.read({ work_pools: { id: { any_: unique } } });
  return new Map(pools.map((p) => [p.id, p]));
}

const recorders = new WeakMap<AppContext, PollRecorder>();

/**
 * The app's poll recorder (one for the work pool and the work queue routes), drained when the app
 * closes so that no poll goes unrecorded.
 */
export function pollRecorder(context: AppContext, log: FastifyBaseLogger): PollRecorder {
  let recorder = recorders.get(context);
  if (!recorder) {
    recorder = new PollRecorder(context, log);
    recorders.set(context, recorder);
  }
  return recorder;
}
