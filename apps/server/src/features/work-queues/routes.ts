/**
 * Work queues by id (Prefect's "Work Queues" routes, from before work pools): create (in the
 * `default-agent-pool`, made on first use), read by id and by name, filter, update, delete, the runs a
 * legacy agent polls for (which change no run; polling marks the queue and its deployments polled
 * after the answer), concurrency status and health status. Queues with a `filter` are Prefect's
 * deprecated tag-based queues: their runs are those matching the filter.
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
} from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf } from "./common.js";
import { UUID_ID } from "./fields.js";
import { flowRunResponse } from "./responses.js";
import { INTEGRITY_CONFLICT, objectNotFound } from "./run-support.js";
import { workPoolCreatedEvent, workQueueCreatedEvent, workQueueDeletedEvent } from "./work-pool-events.js";
import { pageCount, pollRecorder, slotSummary, workQueueResponse } from "./work-pool-support.js";
import { updateQueue } from "./work-pools.js";

/** The pool Prefect keeps queues created without one in. */
export const DEFAULT_AGENT_POOL_NAME = "default-agent-pool";

const NOT_FOUND = "work queue not found";
const NameParams = z.strictObject({ name: z.string() });

/** What Prefect reads as true and false in a boolean header (pydantic's lax booleans). */
const TRUE = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE = new Set(["0", "off", "f", "false", "n", "no"]);
const UiHeaders = z.looseObject({
  "x-prefect-ui": z
    .string()
    .optional()
    .refine((v) => v === undefined || TRUE.has(v.toLowerCase()) || FALSE.has(v.toLowerCase()), { message: "Input should be a valid boolean, unable to interpret input" })
    .transform((v) => v !== undefined && TRUE.has(v.toLowerCase())),
});

/** Prefect's health policy of every queue: no late runs, polled in the last minute. */
const HEALTH_POLICY = { maximum_late_runs: 0, maximum_seconds_since_last_polled: 60 };

/** The flow run criteria of a tag-based queue: all of its tags, any of its deployments (runs with one). */
function legacyCriteria(filter: QueueFilter) {
  return { tags: { all_: filter.tags ?? null }, deployment_id: { any_: filter.deployment_ids ?? null, is_null_: false } };
}

/**
 * Active slots of queues with a limit, as the legacy routes count them: PENDING, RUNNING and
 * CANCELLING runs of the queue, or for a tag-based queue its PENDING and RUNNING matching runs.
 */
async function activeSlots(db: Repositories, queues: readonly WorkQueue[]): Promise<Map<string, number>> {
  const limited = queues.filter((q) => q.concurrency_limit !== null);
  const counts = await db.workPools.countQueueActiveSlots(
    limited.filter((q) => q.filter === null).map((q) => q.id),
    { includeCancelling: true },
  );
  for (const queue of limited) {
    if (queue.filter === null) continue;
    counts.set(queue.id, await db.flowRuns.count({ flow_runs: { ...legacyCriteria(queue.filter), state: { type: { any_: ["PENDING", "RUNNING"] } } } }));
  }
  return counts;
}

/** Prefect's read_work_queue_by_name: in the default agent pool when there is one, else in any pool. */
async function queueByLegacyName(db: Repositories, name: string): Promise<WorkQueue | null> {
  if (await db.workPools.getByName(DEFAULT_AGENT_POOL_NAME)) return db.workPools.getQueueByName(DEFAULT_AGENT_POOL_NAME, name);
  const [queue] = await db.workPools.readAllQueues({ work_queues: { name: { any_: [name] } }, limit: 1 });
  return queue ?? null;
}

/** The runs of a tag-based queue a poll gets (Prefect's `_legacy_get_runs_in_work_queue`). */
async function legacyQueueRuns(db: Repositories, queue: WorkQueue & { filter: QueueFilter }, limit: number, scheduledBefore: string | null): Promise<FlowRun[]> {
  if (queue.is_paused) return [];
  const criteria = legacyCriteria(queue.filter);
  if (queue.concurrency_limit !== null) {
    const running = await db.flowRuns.count({ flow_runs: { ...criteria, state: { type: { any_: ["PENDING", "RUNNING"] } } } });
    limit = Math.min(limit, Math.max(0, queue.concurrency_limit - running));
  }
  return db.flowRuns.read({
    flow_runs: { ...criteria, state: { type: { any_: ["SCHEDULED"] } }, next_scheduled_start_time: { before_: scheduledBefore } },
    sort: "NEXT_SCHEDULED_START_TIME_ASC",
    limit,
  });
}

const hasFilter = (queue: WorkQueue): queue is WorkQueue & { filter: QueueFilter } => queue.filter !== null;

export function workQueueRoutes(context: AppContext): Routes {
  const { db, events } = context;

  const response = async (queue: WorkQueue) => workQueueResponse(queue, (await activeSlots(db, [queue])).get(queue.id) ?? 0);

  /**
   * The default agent pool, created on first use. Of concurrent first uses one creates it and the
   * others find it. Returns the pool and whether this call created it.
   */
  async function defaultAgentPool(tx: Repositories): Promise<{ pool: WorkPool; created: boolean }> {
    const existing = await tx.workPools.getByName(DEFAULT_AGENT_POOL_NAME);
    if (existing) return { pool: existing, created: false };
    try {
      return { pool: await tx.workPools.create({ name: DEFAULT_AGENT_POOL_NAME, type: "prefect-agent" }), created: true };
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      const found = await tx.workPools.getByName(DEFAULT_AGENT_POOL_NAME);
      if (!found) throw error;
      return { pool: found, created: false };
    }
  }

  return async (app) => {
    const polls = pollRecorder(context, app.log);
    app.addHook("onClose", async () => polls.drain());

    app.post("/work_queues/", { schema: { body: api.WorkQueueCreate } }, async (request, reply) => {
      const body = request.body;
      let outcome: { queue: WorkQueue; pool: WorkPool; poolCreated: boolean; defaultQueue: WorkQueue | null };
      try {
        outcome = await db.transaction(async (tx) => {
          const { pool, created } = await defaultAgentPool(tx);
          const defaultQueue = created && pool.default_queue_id ? await tx.workPools.getQueue(pool.default_queue_id) : null;
          // A new pool comes with its `default` queue: asked for that name, that is the queue.
          if (defaultQueue && body.name === defaultQueue.name) return { queue: defaultQueue, pool, poolCreated: created, defaultQueue };
          return { queue: await tx.workPools.createQueue(pool.id, body), pool, poolCreated: created, defaultQueue };
        });
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new HttpError(409, "A work queue with this name already exists.");
        throw error;
      }
      const { queue, pool, poolCreated, defaultQueue } = outcome;
      events.publish([
        ...(defaultQueue ? [workQueueCreatedEvent(defaultQueue, pool)] : []),
        ...(poolCreated ? [workPoolCreatedEvent(pool)] : []),
        ...(queue.id !== defaultQueue?.id ? [workQueueCreatedEvent(queue, pool)] : []),
      ]);
      return reply.code(201).send(workQueueResponse(queue, 0));
    });

    app.get(`/work_queues/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      const queue = await db.workPools.getQueue(request.params.id);
      if (!queue) throw new HttpError(404, NOT_FOUND);
      return response(queue);
    });

    app.get("/work_queues/name/:name", { schema: { params: NameParams } }, async (request) => {
      const queue = await queueByLegacyName(db, request.params.name);
      if (!queue) throw new HttpError(404, NOT_FOUND);
      return response(queue);
    });

    app.post("/work_queues/filter", { schema: { body: api.Body_read_work_queues_work_queues_filter_post } }, async (request) => {
      const body = request.body;
      const queues = await db.workPools.readAllQueues({ work_queues: body.work_queues ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const slots = await activeSlots(db, queues);
      return queues.map((queue) => workQueueResponse(queue, slots.get(queue.id) ?? 0));
    });

    app.patch(`/work_queues/${UUID_ID}`, { schema: { params: IdParams, body: api.WorkQueueUpdate } }, async (request, reply) => {
      const notFound = new HttpError(404, `Work Queue ${request.params.id} not found`);
      const queue = await db.workPools.getQueue(request.params.id);
      if (!queue) throw notFound;
      await updateQueue(context, queue, null, request.body).catch((error: unknown) => {
        throw error instanceof NotFoundError ? notFound : error;
      });
      return reply.code(204).send();
    });

    app.delete(`/work_queues/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const queue = await db.workPools.getQueue(request.params.id);
      if (!queue) throw new HttpError(404, NOT_FOUND);
      const deleted = await db.workPools.deleteQueue(queue.id).catch((error: unknown) => {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        // A pool's default queue: the pool refers to it (Prefect's integrity conflict).
        if (error instanceof InvalidError) throw INTEGRITY_CONFLICT;
        throw error;
      });
      events.publish([workQueueDeletedEvent(deleted, await db.workPools.get(deleted.work_pool_id))]);
      return reply.code(204).send();
    });

    app.post(
      `/work_queues/${UUID_ID}/get_runs`,
      { schema: { params: IdParams, body: api.Body_read_work_queue_runs_work_queues__id__get_runs_post, headers: UiHeaders } },
      async (request, reply) => {
        const body = request.body;
        const limit = limitOf(body.limit);
        const id = request.params.id;
        const queue = await db.workPools.getQueue(id);
        if (!queue) return objectNotFound(reply, `Work queue with id ${id} not found.`);
        let runs: FlowRun[];
        try {
          runs = hasFilter(queue)
            ? await legacyQueueRuns(db, queue, limit, body.scheduled_before ?? null)
            : await db.workPools.getQueueRuns(id, { limit, scheduledBefore: body.scheduled_before ?? null });
        } catch (error) {
          if (error instanceof NotFoundError) return objectNotFound(reply, `Work queue with id ${id} not found.`);
          throw error;
        }
        // The UI reads this to show what is waiting; only agents' reads count as polls.
        if (!request.headers["x-prefect-ui"]) polls.record(`work_queue:${id}`, [id]);
        const at = now();
        return runs.map((run) => flowRunResponse(run, at));
      },
    );

    app.post(
      `/work_queues/${UUID_ID}/concurrency_status`,
      { schema: { params: IdParams, body: api.Body_read_work_queue_concurrency_status_work_queues__id__concurrency_status_post } },
      async (request) => {
        const body = request.body;
        const page = body.page ?? 1;
        const limit = limitOf(body.limit);
        const queue = await db.workPools.getQueue(request.params.id);
        if (!queue) throw new HttpError(404, "Work queue not found.");
        const [count, holders] = await Promise.all([
          db.workPools.countQueueSlotHolders(queue.id),
          db.workPools.readQueueSlotHolders(queue.id, { limit, offset: (page - 1) * limit }),
        ]);
        const at = now();
        return {
          active_slots: count,
          concurrency_limit: queue.concurrency_limit,
          flow_runs: holders.map((h) => slotSummary(h, at)),
          count,
          limit,
          pages: pageCount(count, limit),
          page,
        };
      },
    );

    app.get(`/work_queues/${UUID_ID}/status`, { schema: { params: IdParams } }, async (request, reply) => {
      const id = request.params.id;
      const queue = await db.workPools.getQueue(id);
      if (!queue) return objectNotFound(reply, `Work queue with id ${id} not found`);
      const late = await db.flowRuns.count({ flow_runs: { state: { name: { any_: ["Late"] } } }, work_queue_ids: [id] });
      const polledRecently = queue.last_polled !== null && secondsBetween(now(), queue.last_polled) <= HEALTH_POLICY.maximum_seconds_since_last_polled;
      return {
        healthy: late <= HEALTH_POLICY.maximum_late_runs && polledRecently,
        late_runs_count: late,
        last_polled: queue.last_polled,
        health_check_policy: HEALTH_POLICY,
      };
    });
  };
}
