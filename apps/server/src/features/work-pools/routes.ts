/**
 * Work pools (Prefect's "Work Pools" routes): pools by name (create, read, filter, count, update,
 * delete, concurrency status), their queues (create, read, filter, update, delete), their workers
 * (heartbeat, filter, delete) and the scheduled runs workers poll for. Changes publish Prefect's
 * `prefect.work-pool.*` and `prefect.work-queue.*` events once they have committed.
 *
 * Polling for runs changes no run: workers propose PENDING themselves, and orchestration lets only
 * one of them have each run. The poll's bookkeeping (queues and deployments marked polled and
 * READY) happens after the answer, as in Prefect.
 */
import {
  AlreadyExistsError,
  InvalidError,
  NotFoundError,
  now,
  type Repositories,
  WorkPoolCreate,
  WorkPoolUpdate,
  type WorkQueue,
  type WorkPool,
} from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import { fernetProvider } from "../blocks/encryption.js";
import { pythonRepr } from "../blocks/python-json.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { limitOf } from "./common.js";
import { INTEGRITY_CONFLICT } from "./run-support.js";
import {
  changedFields,
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
} from "./work-pool-events.js";
import {
  checkJobVariableDefaults,
  coreFlowRunResponse,
  isReservedPoolName,
  omitsResultStorageBlock,
  pageCount,
  pollRecorder,
  poolByName,
  poolNotFound,
  poolQueueNotFound,
  queueByName,
  slotSummary,
  validated,
  workerResponse,
  workPoolResponse,
  workQueueResponse,
} from "./work-pool-support.js";

const PoolParams = z.strictObject({ name: z.string() });
const QueueParams = z.strictObject({ name: z.string(), queue_name: z.string() });
const WorkerParams = z.strictObject({ name: z.string(), worker_name: z.string() });

/** Prefect's default number of flow runs per queue in a pool's concurrency status. */
const DEFAULT_FLOW_RUNS_PER_QUEUE = 10;

const RESERVED_CREATE = "Work pools starting with 'Prefect' are reserved for internal use.";
const RESERVED_UPDATE = "Work pools starting with 'Prefect' are reserved for internal use and can only be updated to set concurrency limits or pause.";
const RESERVED_DELETE = "Work pools starting with 'Prefect' are reserved for internal use and can not be deleted.";

/** Fields of a pool update that Prefect would set to NULL although the column is NOT NULL (its 409). */
const NOT_NULL_POOL_FIELDS = ["is_paused", "base_job_template", "storage_configuration"] as const;
/** The same for a queue update. */
export const NOT_NULL_QUEUE_FIELDS = ["name", "description", "priority"] as const;

/** 409 as Prefect's integrity handler answers when a body sets a NOT NULL column to null. */
export function refuseNulls(body: Record<string, unknown>, fields: readonly string[]): void {
  if (fields.some((field) => field in body && body[field] === null)) throw INTEGRITY_CONFLICT;
}

export function workPoolRoutes(context: AppContext): Routes {
  const { db, events, settings } = context;
  const fernet = fernetProvider(db, settings.encryptionKey);

  /** The active slots of pools with a limit. */
  const activeSlots = async (pools: readonly WorkPool[]) => db.workPools.countActiveSlots(pools.filter((p) => p.concurrency_limit !== null).map((p) => p.id));

  /** The active slots (PENDING and RUNNING runs) of queues with a limit. */
  const queueSlots = async (queues: readonly WorkQueue[]) => db.workPools.countQueueActiveSlots(queues.filter((q) => q.concurrency_limit !== null).map((q) => q.id));

  return async (app) => {
    const polls = pollRecorder(context, app.log);
    app.addHook("onClose", async () => polls.drain());

    // -- Pools ------------------------------------------------------------------------------------

    app.post("/work_pools/", { schema: { body: api.WorkPoolCreate } }, async (request, reply) => {
      const input = validated(WorkPoolCreate, request.body);
      if (isReservedPoolName(input.name)) throw new HttpError(403, RESERVED_CREATE);
      await checkJobVariableDefaults(db, fernet, input.base_job_template);
      let pool: WorkPool;
      try {
        pool = await db.workPools.create(request.body);
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new HttpError(409, "A work pool with this name already exists.");
        throw error;
      }
      const defaultQueue = pool.default_queue_id ? await db.workPools.getQueue(pool.default_queue_id) : null;
      events.publish([
        ...(defaultQueue ? [workQueueCreatedEvent(defaultQueue, pool)] : []),
        workPoolCreatedEvent(pool),
        workPoolStatusEvent(pool, null),
      ]);
      return reply.code(201).send(workPoolResponse(pool, 0, omitsResultStorageBlock(request)));
    });

    app.get("/work_pools/:name", { schema: { params: PoolParams } }, async (request) => {
      const pool = await poolByName(db, request.params.name);
      const slots = await activeSlots([pool]);
      return workPoolResponse(pool, slots.get(pool.id) ?? 0, omitsResultStorageBlock(request));
    });

    app.post("/work_pools/filter", { schema: { body: api.Body_read_work_pools_work_pools_filter_post } }, async (request) => {
      const body = request.body;
      const pools = await db.workPools.read({ work_pools: body.work_pools ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const slots = await activeSlots(pools);
      const omit = omitsResultStorageBlock(request);
      return pools.map((pool) => workPoolResponse(pool, slots.get(pool.id) ?? 0, omit));
    });

    app.post("/work_pools/count", { schema: { body: api.Body_count_work_pools_work_pools_count_post } }, async (request) =>
      db.workPools.count({ work_pools: request.body.work_pools ?? null }),
    );

    app.patch("/work_pools/:name", { schema: { params: PoolParams, body: api.WorkPoolUpdate } }, async (request, reply) => {
      const body = request.body;
      validated(WorkPoolUpdate, body);
      const name = request.params.name;
      if (isReservedPoolName(name) && Object.keys(body).some((field) => field !== "is_paused" && field !== "concurrency_limit")) {
        throw new HttpError(403, RESERVED_UPDATE);
      }
      const pool = await poolByName(db, name);
      refuseNulls(body, NOT_NULL_POOL_FIELDS);
      const { previous, current } = await db.workPools.change(pool.id, body);
      const changes = changedFields(previous, current, WORK_POOL_EVENT_FIELDS.filter((field) => field in body));
      const published = [];
      if (Object.keys(changes).length > 0) published.push(workPoolUpdatedEvent(current, changes));
      // Prefect reports the status whenever an update sets it (pausing or unpausing), changed or not.
      if (current.last_status_event_id !== previous.last_status_event_id && current.last_status_event_id) {
        published.push(workPoolStatusEvent(current, previous, { id: current.last_status_event_id, occurred: current.last_transitioned_status_at ?? now() }));
      }
      events.publish(published);
      return reply.code(204).send();
    });

    app.delete("/work_pools/:name", { schema: { params: PoolParams } }, async (request, reply) => {
      const name = request.params.name;
      if (isReservedPoolName(name)) throw new HttpError(403, RESERVED_DELETE);
      const pool = await poolByName(db, name);
      const deleted = await db.workPools.delete(pool.id).catch(notFoundAs(() => poolNotFound(name)));
      events.publish([...deleted.queues.map((queue) => workQueueDeletedEvent(queue, deleted.pool)), workPoolDeletedEvent(deleted.pool)]);
      return reply.code(204).send();
    });

    app.post(
      "/work_pools/:name/concurrency_status",
      { schema: { params: PoolParams, body: api.Body_read_work_pool_concurrency_status_work_pools__name__concurrency_status_post } },
      async (request) => {
        const body = request.body;
        const page = body.page ?? 1;
        const limit = limitOf(body.limit);
        const perQueue = body.flow_run_limit ?? DEFAULT_FLOW_RUNS_PER_QUEUE;
        const pool = await db.workPools.getByName(request.params.name);
        if (!pool) throw new HttpError(404, `Work pool ${pythonRepr(request.params.name)} not found.`);
        const [queues, queueCount, byQueue] = await Promise.all([
          db.workPools.readQueues(pool.id, { limit, offset: (page - 1) * limit }),
          db.workPools.countQueues(pool.id),
          db.workPools.countPoolSlotHoldersByQueue(pool.id),
        ]);
        const holders = await db.workPools.readPoolSlotHolders(pool.id, { workQueueIds: queues.map((q) => q.id), perQueueLimit: perQueue });
        const at = now();
        return {
          active_slots: [...byQueue.values()].reduce((sum, n) => sum + n, 0),
          concurrency_limit: pool.concurrency_limit,
          queues: queues.map((queue) => ({
            queue_id: queue.id,
            queue_name: queue.name,
            active_slots: byQueue.get(queue.id) ?? 0,
            concurrency_limit: queue.concurrency_limit,
            flow_runs: holders.filter((h) => h.work_queue_id === queue.id).map((h) => slotSummary(h, at)),
            flow_run_count: byQueue.get(queue.id) ?? 0,
          })),
          count: queueCount,
          limit,
          pages: pageCount(queueCount, limit),
          page,
        };
      },
    );

    app.post(
      "/work_pools/:name/get_scheduled_flow_runs",
      { schema: { params: PoolParams, body: api.Body_get_scheduled_flow_runs_work_pools__name__get_scheduled_flow_runs_post } },
      async (request) => {
        const body = request.body;
        const limit = limitOf(body.limit);
        const poolName = request.params.name;
        const pool = await poolByName(db, poolName);
        const names = body.work_queue_names ?? [];
        // The queues polled: those named (each must exist), or all of the pool's.
        const polled = names.length === 0 ? await db.workPools.readQueues(pool.id) : await Promise.all(names.map((n) => queueByName(db, poolName, n)));
        const runs = await db.workPools.getScheduledFlowRuns({
          workPoolNames: [poolName],
          workQueueNames: names.length === 0 ? null : names,
          scheduledBefore: body.scheduled_before ?? null,
          scheduledAfter: body.scheduled_after ?? null,
          limit,
        });
        polls.record(`work_pool:${pool.id}`, polled.map((q) => q.id));
        const at = now();
        return runs.map((r) => ({ work_pool_id: r.work_pool_id, work_queue_id: r.work_queue_id, flow_run: coreFlowRunResponse(r.flow_run, at) }));
      },
    );

    // -- Queues -----------------------------------------------------------------------------------

    app.post("/work_pools/:name/queues", { schema: { params: PoolParams, body: api.WorkQueueCreate } }, async (request, reply) => {
      const pool = await poolByName(db, request.params.name);
      let queue: WorkQueue;
      try {
        queue = await db.workPools.createQueue(pool.id, request.body);
      } catch (error) {
        // Prefect's message, placeholder and all (it is not formatted there).
        if (error instanceof AlreadyExistsError) throw new HttpError(409, "A work queue with this name already exists in work pool {work_pool_name!r}.");
        throw error;
      }
      events.publish([workQueueCreatedEvent(queue, pool)]);
      return reply.code(201).send(workQueueResponse(queue, 0));
    });

    app.get("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams } }, async (request) => {
      const queue = await queueByName(db, request.params.name, request.params.queue_name);
      const slots = await queueSlots([queue]);
      return workQueueResponse(queue, slots.get(queue.id) ?? 0);
    });

    app.post(
      "/work_pools/:name/queues/filter",
      { schema: { params: PoolParams, body: api.Body_read_work_queues_work_pools__work_pool_name__queues_filter_post } },
      async (request) => {
        const body = request.body;
        const pool = await poolByName(db, request.params.name);
        const queues = await db.workPools.readQueues(pool.id, { work_queues: body.work_queues ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
        const slots = await queueSlots(queues);
        return queues.map((queue) => workQueueResponse(queue, slots.get(queue.id) ?? 0));
      },
    );

    app.patch("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams, body: api.WorkQueueUpdate } }, async (request, reply) => {
      const { name, queue_name: queueName } = request.params;
      const pool = await poolByName(db, name);
      const queue = await queueByName(db, name, queueName);
      await updateQueue(context, queue, pool, request.body);
      return reply.code(204).send();
    });

    app.delete("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams } }, async (request, reply) => {
      const { name, queue_name: queueName } = request.params;
      const pool = await poolByName(db, name);
      const queue = await queueByName(db, name, queueName);
      const deleted = await db.workPools.deleteQueue(queue.id).catch((error: unknown) => {
        // Prefect fails on the pool's reference to its default queue: a conflict with the pool.
        if (error instanceof InvalidError) throw new HttpError(409, error.message);
        return notFoundAs(() => poolQueueNotFound(name, queueName))(error);
      });
      events.publish([workQueueDeletedEvent(deleted, pool)]);
      return reply.code(204).send();
    });

    // -- Workers ----------------------------------------------------------------------------------

    app.post(
      "/work_pools/:name/workers/heartbeat",
      { schema: { params: PoolParams, body: api.Body_worker_heartbeat_work_pools__work_pool_name__workers_heartbeat_post } },
      async (request, reply) => {
        const { name } = request.params;
        const pool = await poolByName(db, name);
        const input = { name: request.body.name, heartbeat_interval_seconds: request.body.heartbeat_interval_seconds ?? null };
        const { readied } = await db.workPools.recordHeartbeat(pool.id, input).catch(notFoundAs(() => poolNotFound(name)));
        if (readied) {
          const { previous, current } = readied;
          events.publish([workPoolStatusEvent(current, previous, { id: current.last_status_event_id ?? undefined, occurred: current.last_transitioned_status_at ?? undefined })]);
        }
        return reply.code(204).send();
      },
    );

    app.post(
      "/work_pools/:name/workers/filter",
      { schema: { params: PoolParams, body: api.Body_read_workers_work_pools__work_pool_name__workers_filter_post } },
      async (request) => {
        const body = request.body;
        const pool = await poolByName(db, request.params.name);
        const workers = await db.workPools.readWorkers(pool.id, { workers: body.workers ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
        return workers.map(workerResponse);
      },
    );

    app.delete("/work_pools/:name/workers/:worker_name", { schema: { params: WorkerParams } }, async (request, reply) => {
      const pool = await poolByName(db, request.params.name);
      await db.workPools.deleteWorker(pool.id, request.params.worker_name).catch(notFoundAs(() => new HttpError(404, "Worker not found.")));
      return reply.code(204).send();
    });
  };
}

/** Rethrows a NotFoundError as the HTTP error given (a row deleted meanwhile), anything else as it is. */
export function notFoundAs(make: () => HttpError) {
  return (error: unknown): never => {
    if (error instanceof NotFoundError) throw make();
    throw error;
  };
}

/**
 * Updates a queue as both Prefect's pool queue and legacy queue routes do, publishing
 * `prefect.work-queue.updated` for changed fields and the queue's status event when it changed.
 */
export async function updateQueue(context: AppContext, queue: WorkQueue, pool: WorkPool | null, body: z.output<typeof api.WorkQueueUpdate>): Promise<void> {
  const { db, events } = context;
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
  let change: Awaited<ReturnType<Repositories["workPools"]["changeQueue"]>>;
  try {
    change = await db.workPools.changeQueue(queue.id, patch);
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw INTEGRITY_CONFLICT;
    throw error;
  }
  const { previous, current } = change;
  const owner = pool ?? (await db.workPools.get(current.work_pool_id));
  const changes = changedFields(previous, current, WORK_QUEUE_EVENT_FIELDS.filter((field) => field in patch));
  const published = [];
  if (Object.keys(changes).length > 0) published.push(workQueueUpdatedEvent(current, owner, changes));
  if (current.status !== previous.status) published.push(workQueueStatusEvent(current, owner));
  events.publish(published);
}
