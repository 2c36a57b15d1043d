/**
 * Work pools (Prefect's "Work Pools" routes): pools by name, their queues, their workers and the
 * scheduled runs workers poll for (see service.ts).
 */
import { now } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { omitsResultStorageBlock } from "../../http/headers.js";
import { limitOf, pageCount } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { pollRecorder } from "./polls.js";
import { coreFlowRunResponse, slotSummary, workerResponse, workPoolResponse, workQueueResponse } from "./responses.js";
import {
  countPools,
  createPool,
  createPoolQueue,
  DEFAULT_FLOW_RUNS_PER_QUEUE,
  deletePool,
  deletePoolQueue,
  deleteWorker,
  poolActiveSlots,
  poolConcurrency,
  pollPool,
  queueActiveSlots,
  readPool,
  readPoolQueue,
  readPoolQueues,
  readPools,
  readWorkers,
  recordHeartbeat,
  updatePool,
  updatePoolQueue,
} from "./service.js";

const PoolParams = z.strictObject({ name: z.string() });
const QueueParams = z.strictObject({ name: z.string(), queue_name: z.string() });
const WorkerParams = z.strictObject({ name: z.string(), worker_name: z.string() });

export function workPoolRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    // Polls recorded after their answer are all recorded before the app closes.
    const polls = pollRecorder(context, app.log);
    app.addHook("onClose", async () => polls.drain());

    // -- Pools ------------------------------------------------------------------------------------

    app.post("/work_pools/", { schema: { body: api.WorkPoolCreate } }, async (request, reply) => {
      const pool = await createPool(context, request.body);
      return reply.code(201).send(workPoolResponse(pool, 0, omitsResultStorageBlock(request)));
    });

    app.get("/work_pools/:name", { schema: { params: PoolParams } }, async (request) => {
      const pool = await readPool(db, request.params.name);
      const slots = await poolActiveSlots(db, [pool]);
      return workPoolResponse(pool, slots.get(pool.id) ?? 0, omitsResultStorageBlock(request));
    });

    app.post("/work_pools/filter", { schema: { body: api.Body_read_work_pools_work_pools_filter_post } }, async (request) => {
      const body = request.body;
      const pools = await readPools(db, { work_pools: body.work_pools ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const slots = await poolActiveSlots(db, pools);
      const omit = omitsResultStorageBlock(request);
      return pools.map((pool) => workPoolResponse(pool, slots.get(pool.id) ?? 0, omit));
    });

    app.post("/work_pools/count", { schema: { body: api.Body_count_work_pools_work_pools_count_post } }, async (request) =>
      countPools(db, { work_pools: request.body.work_pools ?? null }),
    );

    app.patch("/work_pools/:name", { schema: { params: PoolParams, body: api.WorkPoolUpdate } }, async (request, reply) => {
      await updatePool(context, request.params.name, request.body);
      return reply.code(204).send();
    });

    app.delete("/work_pools/:name", { schema: { params: PoolParams } }, async (request, reply) => {
      await deletePool(context, request.params.name);
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
        const { pool, queues, queueCount, byQueue, holders } = await poolConcurrency(db, request.params.name, { limit, offset: (page - 1) * limit }, perQueue);
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
        const runs = await pollPool(context, request.log, request.params.name, {
          queueNames: body.work_queue_names ?? [],
          scheduledBefore: body.scheduled_before ?? null,
          scheduledAfter: body.scheduled_after ?? null,
          limit,
        });
        const at = now();
        return runs.map((r) => ({ work_pool_id: r.work_pool_id, work_queue_id: r.work_queue_id, flow_run: coreFlowRunResponse(r.flow_run, at) }));
      },
    );

    // -- Queues -----------------------------------------------------------------------------------

    app.post("/work_pools/:name/queues", { schema: { params: PoolParams, body: api.WorkQueueCreate } }, async (request, reply) => {
      return reply.code(201).send(workQueueResponse(await createPoolQueue(context, request.params.name, request.body), 0));
    });

    app.get("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams } }, async (request) => {
      const queue = await readPoolQueue(db, request.params.name, request.params.queue_name);
      const slots = await queueActiveSlots(db, [queue]);
      return workQueueResponse(queue, slots.get(queue.id) ?? 0);
    });

    app.post(
      "/work_pools/:name/queues/filter",
      { schema: { params: PoolParams, body: api.Body_read_work_queues_work_pools__work_pool_name__queues_filter_post } },
      async (request) => {
        const body = request.body;
        const queues = await readPoolQueues(db, request.params.name, { work_queues: body.work_queues ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
        const slots = await queueActiveSlots(db, queues);
        return queues.map((queue) => workQueueResponse(queue, slots.get(queue.id) ?? 0));
      },
    );

    app.patch("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams, body: api.WorkQueueUpdate } }, async (request, reply) => {
      await updatePoolQueue(context, request.params.name, request.params.queue_name, request.body);
      return reply.code(204).send();
    });

    app.delete("/work_pools/:name/queues/:queue_name", { schema: { params: QueueParams } }, async (request, reply) => {
      await deletePoolQueue(context, request.params.name, request.params.queue_name);
      return reply.code(204).send();
    });

    // -- Workers ----------------------------------------------------------------------------------

    app.post(
      "/work_pools/:name/workers/heartbeat",
      { schema: { params: PoolParams, body: api.Body_worker_heartbeat_work_pools__work_pool_name__workers_heartbeat_post } },
      async (request, reply) => {
        await recordHeartbeat(context, request.params.name, { name: request.body.name, heartbeat_interval_seconds: request.body.heartbeat_interval_seconds ?? null });
        return reply.code(204).send();
      },
    );

    app.post(
      "/work_pools/:name/workers/filter",
      { schema: { params: PoolParams, body: api.Body_read_workers_work_pools__work_pool_name__workers_filter_post } },
      async (request) => {
        const body = request.body;
        const workers = await readWorkers(db, request.params.name, { workers: body.workers ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
        return workers.map(workerResponse);
      },
    );

    app.delete("/work_pools/:name/workers/:worker_name", { schema: { params: WorkerParams } }, async (request, reply) => {
      await deleteWorker(db, request.params.name, request.params.worker_name);
      return reply.code(204).send();
    });
  };
}
