/**
 * Work queues by id (Prefect's queues from before work pools), and the work queue a name stands for
 * when a deployment or a run names one: created in the `default-agent-pool` (made on first use),
 * read by id and by name, filtered, updated, deleted, the runs a legacy agent polls for, concurrency
 * and health status. Queues with a `filter` are Prefect's deprecated tag-based queues: their runs are
 * those matching the filter.
 */
import {
  AlreadyExistsError,
  type FlowRun,
  InvalidError,
  NotFoundError,
  now,
  type QueueFilter,
  type Repositories,
  secondsBetween,
  type WorkPool,
  type WorkQueue,
  type WorkQueueCreate,
} from "@prefect/db";
import type { AppContext, Logger } from "../../context.js";
import { conflict, integrityConflict, notFound, ObjectNotFoundError } from "../../prefect/errors.js";
import { publishEvents } from "../events/bus.js";
import { workPoolCreatedEvent, workQueueCreatedEvent, workQueueDeletedEvent } from "../work-pools/events.js";
import { pollRecorder } from "../work-pools/polls.js";
import { type QueueUpdate, updateQueue } from "../work-pools/service.js";

/** Prefect's DEFAULT_AGENT_WORK_POOL_NAME: the pool legacy (agent) work queues live in. */
export const DEFAULT_AGENT_POOL_NAME = "default-agent-pool";
const AGENT_POOL_TYPE = "prefect-agent";
const DEFAULT_QUEUE_NAME = "default";

const NOT_FOUND = "work queue not found";

/** Prefect's health policy of every queue: no late runs, polled in the last minute. */
const HEALTH_POLICY = { maximum_late_runs: 0, maximum_seconds_since_last_polled: 60 };

type Context = Pick<AppContext, "db" | "events">;

// ---- The queue a name stands for --------------------------------------------------------------

/**
 * The default agent pool, created on first use. Of concurrent first uses one creates it and the
 * others find it. Returns the pool and whether this call created it.
 */
async function defaultAgentPool(tx: Repositories): Promise<{ pool: WorkPool; created: boolean }> {
  const existing = await tx.workPools.getByName(DEFAULT_AGENT_POOL_NAME);
  if (existing) return { pool: existing, created: false };
  try {
    return { pool: await tx.workPools.create({ name: DEFAULT_AGENT_POOL_NAME, type: AGENT_POOL_TYPE }), created: true };
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
    const found = await tx.workPools.getByName(DEFAULT_AGENT_POOL_NAME);
    if (!found) throw error;
    return { pool: found, created: false };
  }
}

const workPoolNotFound = (name: string) => notFound(`Work pool "${name}" not found.`);

/** Creates a queue, or, when a concurrent request created it first, returns that one. */
async function createQueueOnce(tx: Repositories, pool: WorkPool, name: string, priority?: number): Promise<string> {
  try {
    return (await tx.workQueues.create(pool.id, priority === undefined ? { name } : { name, priority })).id;
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
    const existing = await tx.workQueues.getByName(pool.name, name);
    if (!existing) throw error;
    return existing.id;
  }
}

/** Prefect's `_get_work_queue_id_from_name(create_queue_if_not_found=True)`: 404 for an unknown pool. */
export async function poolQueueId(tx: Repositories, poolName: string, queueName: string): Promise<string> {
  const existing = await tx.workQueues.getByName(poolName, queueName);
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
  if (!(await tx.workPools.getByName(DEFAULT_AGENT_POOL_NAME))) {
    for (const pool of await tx.workPools.read()) {
      const [queue] = await tx.workQueues.read(pool.id, { work_queues: { name: { any_: [name] } } });
      if (queue) return queue.id;
    }
  }
  const { pool: agentPool } = await defaultAgentPool(tx);
  const existing = await tx.workQueues.getByName(DEFAULT_AGENT_POOL_NAME, name);
  if (existing) return existing.id;
  if (name === DEFAULT_QUEUE_NAME) return agentPool.default_queue_id;
  return createQueueOnce(tx, agentPool, name, 1);
}

// ---- Legacy queues ----------------------------------------------------------------------------

/** The flow run criteria of a tag-based queue: all of its tags, any of its deployments (runs with one). */
function legacyCriteria(filter: QueueFilter) {
  return { tags: { all_: filter.tags ?? null }, deployment_id: { any_: filter.deployment_ids ?? null, is_null_: false } };
}

const hasFilter = (queue: WorkQueue): queue is WorkQueue & { filter: QueueFilter } => queue.filter !== null;

/**
 * Active slots of queues with a limit, as the legacy routes count them: PENDING, RUNNING and
 * CANCELLING runs of the queue, or for a tag-based queue its PENDING and RUNNING matching runs.
 */
export async function legacyActiveSlots(db: Repositories, queues: readonly WorkQueue[]): Promise<Map<string, number>> {
  const limited = queues.filter((q) => q.concurrency_limit !== null);
  const counts = await db.workQueues.countActiveSlots(
    limited.filter((q) => q.filter === null).map((q) => q.id),
    { includeCancelling: true },
  );
  for (const queue of limited) {
    if (queue.filter === null) continue;
    counts.set(queue.id, await db.flowRuns.count({ flow_runs: { ...legacyCriteria(queue.filter), state: { type: { any_: ["PENDING", "RUNNING"] } } } }));
  }
  return counts;
}

/** Creates a queue in the default agent pool (the pool and its `default` queue too, on first use). */
export async function createLegacyQueue(context: Context, input: WorkQueueCreate): Promise<WorkQueue> {
  let outcome: { queue: WorkQueue; pool: WorkPool; poolCreated: boolean; defaultQueue: WorkQueue | null };
  try {
    outcome = await context.db.transaction(async (tx) => {
      const { pool, created } = await defaultAgentPool(tx);
      const defaultQueue = created && pool.default_queue_id ? await tx.workQueues.get(pool.default_queue_id) : null;
      // A new pool comes with its `default` queue: asked for that name, that is the queue.
      if (defaultQueue && input.name === defaultQueue.name) return { queue: defaultQueue, pool, poolCreated: created, defaultQueue };
      return { queue: await tx.workQueues.create(pool.id, input), pool, poolCreated: created, defaultQueue };
    });
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw conflict("A work queue with this name already exists.");
    throw error;
  }
  const { queue, pool, poolCreated, defaultQueue } = outcome;
  publishEvents(context.events, [
    ...(defaultQueue ? [workQueueCreatedEvent(defaultQueue, pool)] : []),
    ...(poolCreated ? [workPoolCreatedEvent(pool)] : []),
    ...(queue.id !== defaultQueue?.id ? [workQueueCreatedEvent(queue, pool)] : []),
  ]);
  return queue;
}

export async function readLegacyQueue(db: Repositories, id: string): Promise<WorkQueue> {
  const queue = await db.workQueues.get(id);
  if (!queue) throw notFound(NOT_FOUND);
  return queue;
}

/** Prefect's read_work_queue_by_name: in the default agent pool when there is one, else in any pool. */
export async function readLegacyQueueByName(db: Repositories, name: string): Promise<WorkQueue> {
  const queue = (await db.workPools.getByName(DEFAULT_AGENT_POOL_NAME))
    ? await db.workQueues.getByName(DEFAULT_AGENT_POOL_NAME, name)
    : ((await db.workQueues.readAll({ work_queues: { name: { any_: [name] } }, limit: 1 }))[0] ?? null);
  if (!queue) throw notFound(NOT_FOUND);
  return queue;
}

export const readAllQueues = (db: Repositories, options: Parameters<Repositories["workQueues"]["readAll"]>[0]) => db.workQueues.readAll(options);

export async function updateLegacyQueue(context: Context, id: string, body: QueueUpdate): Promise<void> {
  const missing = () => notFound(`Work Queue ${id} not found`);
  const queue = await context.db.workQueues.get(id);
  if (!queue) throw missing();
  await updateQueue(context, queue, null, body).catch((error: unknown) => {
    throw error instanceof NotFoundError ? missing() : error;
  });
}

export async function deleteLegacyQueue(context: Context, id: string): Promise<void> {
  const { db } = context;
  const queue = await readLegacyQueue(db, id);
  const deleted = await db.workQueues.delete(queue.id).catch((error: unknown) => {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    // A pool's default queue: the pool refers to it (Prefect's integrity conflict).
    if (error instanceof InvalidError) throw integrityConflict();
    throw error;
  });
  publishEvents(context.events, [workQueueDeletedEvent(deleted, await db.workPools.get(deleted.work_pool_id))]);
}

/** The runs of a tag-based queue a poll gets (Prefect's `_legacy_get_runs_in_work_queue`). */
async function legacyQueueRuns(db: Repositories, queue: WorkQueue & { filter: QueueFilter }, limit: number, scheduledBefore: string | null): Promise<FlowRun[]> {
  if (queue.is_paused) return [];
  const criteria = legacyCriteria(queue.filter);
  let room = limit;
  if (queue.concurrency_limit !== null) {
    const running = await db.flowRuns.count({ flow_runs: { ...criteria, state: { type: { any_: ["PENDING", "RUNNING"] } } } });
    room = Math.min(limit, Math.max(0, queue.concurrency_limit - running));
  }
  return db.flowRuns.read({
    flow_runs: { ...criteria, state: { type: { any_: ["SCHEDULED"] } }, next_scheduled_start_time: { before_: scheduledBefore } },
    sort: "NEXT_SCHEDULED_START_TIME_ASC",
    limit: room,
  });
}

/**
 * The runs an agent polling the queue gets (which changes no run). The poll is recorded after the
 * answer (the queue and its deployments marked polled) unless it is the UI's read.
 */
export async function pollLegacyQueue(
  context: Context,
  log: Logger,
  id: string,
  options: { limit: number; scheduledBefore: string | null; fromUi: boolean },
): Promise<FlowRun[]> {
  const { db } = context;
  const missing = () => new ObjectNotFoundError(`Work queue with id ${id} not found.`);
  const queue = await db.workQueues.get(id);
  if (!queue) throw missing();
  let runs: FlowRun[];
  try {
    runs = hasFilter(queue)
      ? await legacyQueueRuns(db, queue, options.limit, options.scheduledBefore)
      : await db.workQueues.getRuns(id, { limit: options.limit, scheduledBefore: options.scheduledBefore });
  } catch (error) {
    if (error instanceof NotFoundError) throw missing();
    throw error;
  }
  // The UI reads this to show what is waiting; only agents' reads count as polls.
  if (!options.fromUi) pollRecorder(context, log).record(`work_queue:${id}`, [id]);
  return runs;
}

/** The queue's limit, its slot holders (a page of them) and how many there are. */
export async function legacyQueueConcurrency(db: Repositories, id: string, page: { limit: number; offset: number }) {
  const queue = await db.workQueues.get(id);
  if (!queue) throw notFound("Work queue not found.");
  const [count, holders] = await Promise.all([db.workQueues.countSlotHolders(queue.id), db.workQueues.readSlotHolders(queue.id, page)]);
  return { queue, count, holders };
}

/** Prefect's queue health: no late runs and polled within the last minute. */
export async function legacyQueueHealth(db: Repositories, id: string) {
  const queue = await db.workQueues.get(id);
  if (!queue) throw new ObjectNotFoundError(`Work queue with id ${id} not found`);
  const late = await db.flowRuns.count({ flow_runs: { state: { name: { any_: ["Late"] } } }, work_queue_ids: [id] });
  const polledRecently = queue.last_polled !== null && secondsBetween(now(), queue.last_polled) <= HEALTH_POLICY.maximum_seconds_since_last_polled;
  return {
    healthy: late <= HEALTH_POLICY.maximum_late_runs && polledRecently,
    late_runs_count: late,
    last_polled: queue.last_polled,
    health_check_policy: HEALTH_POLICY,
  };
}
