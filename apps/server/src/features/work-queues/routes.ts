/**
 * Work queues by id (Prefect's "Work Queues" routes, from before work pools): create, read by id and
 * by name, filter, update, delete, the runs a legacy agent polls for, concurrency and health status
 * (see service.ts).
 */
import { now } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, LaxBoolean, limitOf, pageCount, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { flowRunResponse } from "../flow-runs/responses.js";
import { pollRecorder } from "../work-pools/polls.js";
import { slotSummary, workQueueResponse } from "../work-pools/responses.js";
import {
  createLegacyQueue,
  deleteLegacyQueue,
  legacyActiveSlots,
  legacyQueueConcurrency,
  legacyQueueHealth,
  pollLegacyQueue,
  readAllQueues,
  readLegacyQueue,
  readLegacyQueueByName,
  updateLegacyQueue,
} from "./service.js";

const NameParams = z.strictObject({ name: z.string() });
const UiHeaders = z.looseObject({ "x-prefect-ui": LaxBoolean.optional() });

export function workQueueRoutes(context: AppContext): Routes {
  const { db } = context;

  const response = async (queue: Parameters<typeof workQueueResponse>[0]) => workQueueResponse(queue, (await legacyActiveSlots(db, [queue])).get(queue.id) ?? 0);

  return async (app) => {
    // Polls recorded after their answer are all recorded before the app closes.
    const polls = pollRecorder(context, app.log);
    app.addHook("onClose", async () => polls.drain());

    app.post("/work_queues/", { schema: { body: api.WorkQueueCreate } }, async (request, reply) => {
      return reply.code(201).send(workQueueResponse(await createLegacyQueue(context, request.body), 0));
    });

    app.get(`/work_queues/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => response(await readLegacyQueue(db, request.params.id)));

    app.get("/work_queues/name/:name", { schema: { params: NameParams } }, async (request) => response(await readLegacyQueueByName(db, request.params.name)));

    app.post("/work_queues/filter", { schema: { body: api.Body_read_work_queues_work_queues_filter_post } }, async (request) => {
      const body = request.body;
      const queues = await readAllQueues(db, { work_queues: body.work_queues ?? null, limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const slots = await legacyActiveSlots(db, queues);
      return queues.map((queue) => workQueueResponse(queue, slots.get(queue.id) ?? 0));
    });

    app.patch(`/work_queues/${UUID_ID}`, { schema: { params: IdParams, body: api.WorkQueueUpdate } }, async (request, reply) => {
      await updateLegacyQueue(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete(`/work_queues/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteLegacyQueue(context, request.params.id);
      return reply.code(204).send();
    });

    app.post(
      `/work_queues/${UUID_ID}/get_runs`,
      { schema: { params: IdParams, body: api.Body_read_work_queue_runs_work_queues__id__get_runs_post, headers: UiHeaders } },
      async (request) => {
        const body = request.body;
        const runs = await pollLegacyQueue(context, request.log, request.params.id, {
          limit: limitOf(body.limit),
          scheduledBefore: body.scheduled_before ?? null,
          fromUi: Boolean(request.headers["x-prefect-ui"]),
        });
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
        const { queue, count, holders } = await legacyQueueConcurrency(db, request.params.id, { limit, offset: (page - 1) * limit });
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

    app.get(`/work_queues/${UUID_ID}/status`, { schema: { params: IdParams } }, async (request) => legacyQueueHealth(db, request.params.id));
  };
}
