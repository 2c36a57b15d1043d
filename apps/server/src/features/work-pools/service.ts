/**
 * Work pools by name (create, read, filter, count, update, delete, concurrency status), their queues
 * (create, read, filter, update, delete), their workers (heartbeat, filter, delete) and the scheduled
 * runs workers poll for. Changes publish Prefect's `prefect.work-pool.*` and `prefect.work-queue.*`
 * events once they have committed.
 *
 * Polling for runs changes no run: workers propose PENDING themselves, and orchestration lets only
 * one of them have each run. The poll's bookkeeping (queues and deployments marked polled and
 * READY) happens after the answer, as in Prefect.
 */
import {
  AlreadyExistsError,
  type FlowRun,
  InvalidError,
  now,
  type Repositories,
  type SlotHolder,
  WorkPoolCreate,
  WorkPoolUpdate,
  type WorkPool,
  type WorkQueue,
  type WorkQueueCreate,
} from "@prefect/db";
import type { z } from "zod";
import type { AppContext, Logger } from "../../context.js";
import type * as api from "../../generated/prefect-api.js";
import { conflict, forbidden, integrityConflict, notFound, notFoundAs } from "../../prefect/errors.js";
import { jobVariablesProblem } from "../../prefect/job-variables.js";
import { pythonRepr } from "../../prefect/python.js";
import { blockDataLookup } from "../blocks/service.js";
import { publishEvents } from "../events/bus.js";
import { changedFields } from "../../prefect/json.js";
import {
  WORK_POOL_EVENT_FIELDS,
  WORK_QUEUE_EVENT_FIELDS,
  workPoolCreatedEvent,
  workPoolDeletedEvent,
  workPoolStatusEvent,
  workPoolUpdatedEvent,
  workQueueCreatedEvent,
  workQueueDeletedEvent,
  workQueueStatusEvent,
  workQueueUpdatedEvent,
} from "./events.js";
import { pollRecorder } from "./polls.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** Prefect's default number of flow runs per queue in a pool's concurrency status. */
export const DEFAULT_FLOW_RUNS_PER_QUEUE = 10;

const RESERVED_CREATE = "Work pools starting with 'Prefect' are reserved for internal use.";
const RESERVED_UPDATE = "Work pools starting with 'Prefect' are reserved for internal use and can only be updated to set concurrency limits or pause.";
const RESERVED_DELETE = "Work pools starting with 'Prefect' are reserved for internal use and can not be deleted.";

/** Fields of a pool update that Prefect would set to NULL although the column is NOT NULL (its 409). */
const NOT_NULL_POOL_FIELDS = ["is_paused", "base_job_template", "storage_configuration"] as const;
/** The same for a queue update. */
const NOT_NULL_QUEUE_FIELDS = ["name", "description", "priority"] as const;

/** Prefect reserves pool names starting with "prefect" (any case) for itself. */
const isReservedPoolName = (name: string) => name.toLowerCase().startsWith("prefect");

/** Prefect's 404 for a pool looked up by name. */
export const poolNotFound = (name: string) => notFound(`Work pool "${name}" not found.`);

/** Prefect's 404 for a queue looked up by pool and queue name. */
const poolQueueNotFound = (poolName: string, queueName: string) => notFound(`Work pool queue '${poolName}/${queueName}' not found.`);

/** 409 as Prefect's integrity handler answers when a body sets a NOT NULL column to null. */
function refuseNulls(body: Record<string, unknown>, fields: readonly string[]): void {
  if (fields.some((field) => field in body && body[field] === null)) throw integrityConflict();
}

/**
 * `input` checked against a data-layer schema up front (Prefect validates its bodies before anything
 * else): a problem is a 422 naming where it is.
 */
function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ path: issue.path.map((p) => (typeof p === "symbol" ? String(p) : p)), message: issue.message }));
  throw new InvalidError(issues.map((i) => i.message).join("; "), issues);
}

/** The pool with this name, or Prefect's 404. */
export async function readPool(db: Repositories, name: string): Promise<WorkPool> {
  const pool = await db.workPools.getByName(name);
  if (!pool) throw poolNotFound(name);
  return pool;
}

/** The queue with these names, or Prefect's 404. */
export async function readPoolQueue(db: Repositories, poolName: string, queueName: string): Promise<WorkQueue> {
  const queue = await db.workQueues.getByName(poolName, queueName);
  if (!queue) throw poolQueueNotFound(poolName, queueName);
  return queue;
}

/** The active slots of pools with a limit. */
export const poolActiveSlots = (db: Repositories, pools: readonly WorkPool[]) =>
  db.workPools.countActiveSlots(pools.filter((p) => p.concurrency_limit !== null).map((p) => p.id));

/** The active slots (PENDING and RUNNING runs) of queues with a limit. */
export const queueActiveSlots = (db: Repositories, queues: readonly WorkQueue[]) =>
  db.workQueues.countActiveSlots(queues.filter((q) => q.concurrency_limit !== null).map((q) => q.id));

// ---- Pools ----------------------------------------------------------------------------------------

/**
 * Checks the defaults of a base job template's variables against their own schema, required fields
 * aside (a default need not exist), as Prefect does when a pool is created: a default given as a
 * block reference stands for that block's data (404 "Block not found." when there is no such block).
 * An invalid schema or default is a 422.
 */
async function checkJobVariableDefaults(context: Context, template: Record<string, unknown>): Promise<void> {
  const problem = await jobVariablesProblem(template, [], { ignoreRequired: true, ignoreInvalidDefaults: false, blockData: blockDataLookup(context), report: "first" });
  if (problem?.kind === "invalid_schema") {
    const message = `Invalid schema: ${problem.reason}`;
    throw new InvalidError(message, [{ path: ["base_job_template", "variables"], message }]);
  }
  if (problem) {
    const message = `Validation failed for work pool's job variable defaults: ${problem.message}`;
    throw new InvalidError(message, [{ path: ["base_job_template"], message }]);
  }
}

export async function createPool(context: Context, body: WorkPoolCreate): Promise<WorkPool> {
  const { db } = context;
  const input = validated(WorkPoolCreate, body);
  if (isReservedPoolName(input.name)) throw forbidden(RESERVED_CREATE);
  await checkJobVariableDefaults(context, input.base_job_template);
  let pool: WorkPool;
  try {
    pool = await db.workPools.create(body);
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw conflict("A work pool with this name already exists.");
    throw error;
  }
  const defaultQueue = pool.default_queue_id ? await db.workQueues.get(pool.default_queue_id) : null;
  publishEvents(context.events, [...(defaultQueue ? [workQueueCreatedEvent(defaultQueue, pool)] : []), workPoolCreatedEvent(pool), workPoolStatusEvent(pool, null)]);
  return pool;
}

export const readPools = (db: Repositories, options: Parameters<Repositories["workPools"]["read"]>[0]) => db.workPools.read(options);
export const countPools = (db: Repositories, criteria: Parameters<Repositories["workPools"]["count"]>[0]) => db.workPools.count(criteria);

export async function updatePool(context: Context, name: string, body: WorkPoolUpdate): Promise<void> {
  const { db } = context;
  validated(WorkPoolUpdate, body);
  if (isReservedPoolName(name) && Object.keys(body).some((field) => field !== "is_paused" && field !== "concurrency_limit")) throw forbidden(RESERVED_UPDATE);
  const pool = await readPool(db, name);
  refuseNulls(body, NOT_NULL_POOL_FIELDS);
  const { previous, current } = await db.workPools.change(pool.id, body);
  const changes = changedFields(previous, current, WORK_POOL_EVENT_FIELDS.filter((field) => field in body));
  const published = [];
  if (Object.keys(changes).length > 0) published.push(workPoolUpdatedEvent(current, changes));
  // Prefect reports the status whenever an update sets it (pausing or unpausing), changed or not.
  if (current.last_status_event_id !== previous.last_status_event_id && current.last_status_event_id) {
    published.push(workPoolStatusEvent(current, previous, { id: current.last_status_event_id, occurred: current.last_transitioned_status_at ?? now() }));
  }
  publishEvents(context.events, published);
}

export async function deletePool(context: Context, name: string): Promise<void> {
  if (isReservedPoolName(name)) throw forbidden(RESERVED_DELETE);
  const pool = await readPool(context.db, name);
  const deleted = await context.db.workPools.delete(pool.id).catch(notFoundAs(() => poolNotFound(name)));
  publishEvents(context.events, [...deleted.queues.map((queue) => workQueueDeletedEvent(queue, deleted.pool)), workPoolDeletedEvent(deleted.pool)]);
}

export interface PoolConcurrency {
  readonly pool: WorkPool;
  readonly queues: readonly WorkQueue[];
  readonly queueCount: number;
  readonly byQueue: ReadonlyMap<string, number>;
  readonly holders: readonly SlotHolder[];
}

/** The pool's slot holders by queue (a page of its queues, `perQueue` holders each). */
export async function poolConcurrency(db: Repositories, name: string, page: { limit: number; offset: number }, perQueue: number): Promise<PoolConcurrency> {
  const pool = await db.workPools.getByName(name);
  if (!pool) throw notFound(`Work pool ${pythonRepr(name)} not found.`);
  const [queues, queueCount, byQueue] = await Promise.all([
    db.workQueues.read(pool.id, page),
    db.workQueues.count(pool.id),
    db.workPools.countSlotHoldersByQueue(pool.id),
  ]);
  const holders = await db.workPools.readSlotHolders(pool.id, { workQueueIds: queues.map((q) => q.id), perQueueLimit: perQueue });
  return { pool, queues, queueCount, byQueue, holders };
}

/**
 * The scheduled runs of the pool's queues (those named, each of which must exist, or all of them)
 * that a worker polls for. The poll is recorded after the answer.
 */
export async function pollPool(
  context: Context,
  log: Logger,
  name: string,
  options: { queueNames: readonly string[]; scheduledBefore: string | null; scheduledAfter: string | null; limit: number },
): Promise<{ work_pool_id: string; work_queue_id: string; flow_run: FlowRun }[]> {
  const { db } = context;
  const pool = await readPool(db, name);
  const names = options.queueNames;
  // The queues polled: those named (each must exist), or all of the pool's.
  const polled = names.length === 0 ? await db.workQueues.read(pool.id) : await Promise.all(names.map((n) => readPoolQueue(db, name, n)));
  const runs = await db.workerRuns.getScheduledFlowRuns({
    workPoolNames: [name],
    workQueueNames: names.length === 0 ? null : [...names],
    scheduledBefore: options.scheduledBefore,
    scheduledAfter: options.scheduledAfter,
    limit: options.limit,
  });
  pollRecorder(context, log).record(
    `work_pool:${pool.id}`,
    polled.map((q) => q.id),
  );
  return runs;
}

// ---- Queues ---------------------------------------------------------------------------------------

export async function createPoolQueue(context: Context, poolName: string, input: WorkQueueCreate): Promise<WorkQueue> {
  const pool = await readPool(context.db, poolName);
  let queue: WorkQueue;
  try {
    queue = await context.db.workQueues.create(pool.id, input);
  } catch (error) {
    // Prefect's message, placeholder and all (it is not formatted there).
    if (error instanceof AlreadyExistsError) throw conflict("A work queue with this name already exists in work pool {work_pool_name!r}.");
    throw error;
  }
  publishEvents(context.events, [workQueueCreatedEvent(queue, pool)]);
  return queue;
}

export async function readPoolQueues(db: Repositories, poolName: string, options: Parameters<Repositories["workQueues"]["read"]>[1]): Promise<WorkQueue[]> {
  const pool = await readPool(db, poolName);
  return db.workQueues.read(pool.id, options);
}

/** A queue update as Prefect's WorkQueueUpdate gives it. */
export type QueueUpdate = z.output<typeof api.WorkQueueUpdate>;

/**
 * Updates a queue as both Prefect's pool queue and legacy queue routes do, publishing
 * `prefect.work-queue.updated` for changed fields and the queue's status event when it changed.
 */
export async function updateQueue(context: Pick<AppContext, "db" | "events">, queue: WorkQueue, pool: WorkPool | null, body: QueueUpdate): Promise<void> {
  const { db } = context;
  refuseNulls(body, NOT_NULL_QUEUE_FIELDS);
  const patch = {
    ...("name" in body && body.name !== null ? { name: body.name } : {}),
    ...("description" in body && body.description !== null ? { description: body.description } : {}),
    ...(body.is_paused !== undefined ? { is_paused: body.is_paused } : {}),
    ...("concurrency_limit" in body ? { concurrency_limit: body.concurrency_limit ?? null } : {}),
    ...("priority" in body && body.priority !== null ? { priority: body.priority } : {}),
    ...("last_polled" in body ? { last_polled: body.last_polled ?? null } : {}),
    ...("filter" in body ? { filter: body.filter ?? null } : {}),
  };
  let change: Awaited<ReturnType<Repositories["workQueues"]["change"]>>;
  try {
    change = await db.workQueues.change(queue.id, patch);
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw integrityConflict();
    throw error;
  }
  const { previous, current } = change;
  const owner = pool ?? (await db.workPools.get(current.work_pool_id));
  const changes = changedFields(previous, current, WORK_QUEUE_EVENT_FIELDS.filter((field) => field in patch));
  const published = [];
  if (Object.keys(changes).length > 0) published.push(workQueueUpdatedEvent(current, owner, changes));
  if (current.status !== previous.status) published.push(workQueueStatusEvent(current, owner));
  publishEvents(context.events, published);
}

export async function updatePoolQueue(context: Context, poolName: string, queueName: string, body: QueueUpdate): Promise<void> {
  const pool = await readPool(context.db, poolName);
  const queue = await readPoolQueue(context.db, poolName, queueName);
  await updateQueue(context, queue, pool, body);
}

export async function deletePoolQueue(context: Context, poolName: string, queueName: string): Promise<void> {
  const pool = await readPool(context.db, poolName);
  const queue = await readPoolQueue(context.db, poolName, queueName);
  const deleted = await context.db.workQueues.delete(queue.id).catch((error: unknown) => {
    // Prefect fails on the pool's reference to its default queue: a conflict with the pool.
    if (error instanceof InvalidError) throw conflict(error.message);
    return notFoundAs(() => poolQueueNotFound(poolName, queueName))(error);
  });
  publishEvents(context.events, [workQueueDeletedEvent(deleted, pool)]);
}

// ---- Workers --------------------------------------------------------------------------------------

export async function recordHeartbeat(context: Context, poolName: string, input: { name: string; heartbeat_interval_seconds: number | null }): Promise<void> {
  const pool = await readPool(context.db, poolName);
  const { readied } = await context.db.workers.recordHeartbeat(pool.id, input).catch(notFoundAs(() => poolNotFound(poolName)));
  if (!readied) return;
  const { previous, current } = readied;
  publishEvents(context.events, [
    workPoolStatusEvent(current, previous, { id: current.last_status_event_id ?? undefined, occurred: current.last_transitioned_status_at ?? undefined }),
  ]);
}

export async function readWorkers(db: Repositories, poolName: string, options: Parameters<Repositories["workers"]["read"]>[1]) {
  const pool = await readPool(db, poolName);
  return db.workers.read(pool.id, options);
}

export async function deleteWorker(db: Repositories, poolName: string, workerName: string): Promise<void> {
  const pool = await readPool(db, poolName);
  await db.workers.delete(pool.id, workerName).catch(notFoundAs(() => notFound("Worker not found.")));
}
