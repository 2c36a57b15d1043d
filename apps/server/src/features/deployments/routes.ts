/**
 * Deployments (Prefect's "Deployments" routes): create (an upsert on flow and name), read (by id and
 * by flow and deployment name), update, delete and bulk delete, filter/count/paginate, schedules,
 * flow runs created from a deployment (one or many), pause and resume, scheduling runs now, the
 * scheduled runs of deployments for runners (which marks them READY) and the deprecated work queue
 * check (see service.ts and flow-runs.ts).
 */
import { type DeploymentCriteria, now, Uuid } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { createdByOf } from "../../http/headers.js";
import { IdParams, limitOf, paginated, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { flowRunResponse } from "../flow-runs/responses.js";
import { coreWorkQueueResponse } from "../work-pools/responses.js";
import { createFlowRunFromDeployment, createFlowRunsFromDeployment } from "./flow-runs.js";
import { deploymentResponse, scheduleResponse } from "./responses.js";
import { DeploymentCreateBody, DeploymentUpdateBody, ScheduleCreateBody, ScheduleUpdateBody } from "./schemas.js";
import {
  bulkDeleteDeployments,
  countDeployments,
  createDeployment,
  createDeploymentSchedules,
  deleteDeployment,
  deleteDeploymentSchedule,
  paginateDeployments,
  pauseDeployment,
  pollDeployments,
  queuesPickingUp,
  readDeployment,
  readDeploymentByName,
  readDeployments,
  readDeploymentSchedules,
  resumeDeployment,
  scheduleDeploymentRuns,
  updateDeployment,
  updateDeploymentSchedule,
} from "./service.js";

/** Prefect's BULK_OPERATION_LIMIT. */
const BULK_DELETE_LIMIT = 50;

const ScheduleParams = z.strictObject({ id: Uuid, schedule_id: Uuid });
const NameParams = z.strictObject({ flow_name: z.string(), deployment_name: z.string() });
const SCHEDULE_ID = ":schedule_id([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

type ReadBody = z.output<typeof api.Body_read_deployments_deployments_filter_post>;

/** The deployment criteria of a read body, for the repository (which validates them again). */
function criteriaOf(body: Omit<ReadBody, "sort" | "limit" | "offset">): DeploymentCriteria {
  return {
    flows: (body.flows ?? null) as DeploymentCriteria["flows"],
    flow_runs: (body.flow_runs ?? null) as DeploymentCriteria["flow_runs"],
    task_runs: (body.task_runs ?? null) as DeploymentCriteria["task_runs"],
    deployments: (body.deployments ?? null) as DeploymentCriteria["deployments"],
    work_pools: (body.work_pools ?? null) as DeploymentCriteria["work_pools"],
    work_pool_queues: (body.work_pool_queues ?? null) as DeploymentCriteria["work_pool_queues"],
  };
}

export function deploymentRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/deployments/", { schema: { body: DeploymentCreateBody } }, async (request, reply) => {
      const { deployment, created } = await createDeployment(context, request.body);
      return reply.code(created ? 201 : 200).send(deploymentResponse(deployment));
    });

    app.patch(`/deployments/${UUID_ID}`, { schema: { params: IdParams, body: DeploymentUpdateBody } }, async (request, reply) => {
      await updateDeployment(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.get("/deployments/name/:flow_name/:deployment_name", { schema: { params: NameParams } }, async (request) =>
      deploymentResponse(await readDeploymentByName(db, request.params.flow_name, request.params.deployment_name)),
    );

    app.get(`/deployments/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => deploymentResponse(await readDeployment(db, request.params.id)));

    app.post("/deployments/filter", { schema: { body: api.Body_read_deployments_deployments_filter_post } }, async (request) => {
      const body = request.body;
      const deployments = await readDeployments(db, { ...criteriaOf(body), sort: body.sort ?? "NAME_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return deployments.map(deploymentResponse);
    });

    app.post("/deployments/paginate", { schema: { body: api.Body_paginate_deployments_deployments_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const { deployments, count } = await paginateDeployments(db, criteriaOf(body), { sort: body.sort ?? "NAME_ASC", limit, offset: (page - 1) * limit });
      return paginated(deployments.map(deploymentResponse), count, limit, page);
    });

    app.post("/deployments/count", { schema: { body: api.Body_count_deployments_deployments_count_post } }, async (request) =>
      countDeployments(db, criteriaOf(request.body)),
    );

    app.post(
      "/deployments/get_scheduled_flow_runs",
      { schema: { body: api.Body_get_scheduled_flow_runs_for_deployments_deployments_get_scheduled_flow_runs_post } },
      async (request) => {
        const body = request.body;
        const runs = await pollDeployments(context, request.log, body.deployment_ids, { scheduledBefore: body.scheduled_before ?? null, limit: limitOf(body.limit) });
        const at = now();
        return runs.map((run) => flowRunResponse(run, at));
      },
    );

    app.delete(`/deployments/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteDeployment(context, request.params.id);
      return reply.code(204).send();
    });

    app.post("/deployments/bulk_delete", { schema: { body: api.Body_bulk_delete_deployments_deployments_bulk_delete_post } }, async (request) => ({
      deleted: await bulkDeleteDeployments(context, (request.body.deployments ?? null) as DeploymentCriteria["deployments"], request.body.limit ?? BULK_DELETE_LIMIT),
    }));

    app.post(
      `/deployments/${UUID_ID}/schedule`,
      { schema: { params: IdParams, body: api.Body_schedule_deployment_deployments__id__schedule_post } },
      async (request, reply) => {
        // Runs of an unknown deployment: none, and 200, as Prefect answers.
        const body = request.body;
        await scheduleDeploymentRuns(context, request.params.id, {
          startTime: body.start_time ?? undefined,
          endTime: body.end_time ?? undefined,
          minTime: body.min_time ?? undefined,
          minRuns: body.min_runs ?? undefined,
          maxRuns: body.max_runs ?? undefined,
          log: request.log,
        });
        return reply.code(200).send(null);
      },
    );

    app.post(`/deployments/${UUID_ID}/resume_deployment`, { schema: { params: IdParams } }, async (request, reply) => {
      await resumeDeployment(db, request.params.id);
      return reply.code(200).send(null);
    });

    app.post(`/deployments/${UUID_ID}/pause_deployment`, { schema: { params: IdParams } }, async (request, reply) => {
      await pauseDeployment(db, request.params.id);
      return reply.code(200).send(null);
    });

    app.post(`/deployments/${UUID_ID}/create_flow_run`, { schema: { params: IdParams, body: api.DeploymentFlowRunCreate } }, async (request, reply) => {
      const outcome = await createFlowRunFromDeployment(context, request.params.id, request.body, createdByOf(request));
      return reply.code(outcome.created ? 201 : 200).send(flowRunResponse(outcome.run));
    });

    app.post(`/deployments/${UUID_ID}/create_flow_run/bulk`, { schema: { params: IdParams, body: z.array(api.DeploymentFlowRunCreate) } }, async (request) => ({
      results: await createFlowRunsFromDeployment(context, request.params.id, request.body, createdByOf(request)),
    }));

    app.get(`/deployments/${UUID_ID}/work_queue_check`, { schema: { params: IdParams } }, async (request) =>
      (await queuesPickingUp(db, request.params.id)).map(coreWorkQueueResponse),
    );

    app.get(`/deployments/${UUID_ID}/schedules`, { schema: { params: IdParams } }, async (request) =>
      (await readDeploymentSchedules(db, request.params.id)).map(scheduleResponse),
    );

    app.post(`/deployments/${UUID_ID}/schedules`, { schema: { params: IdParams, body: z.array(ScheduleCreateBody) } }, async (request, reply) => {
      const created = await createDeploymentSchedules(db, request.params.id, request.body);
      return reply.code(201).send(created.map(scheduleResponse));
    });

    app.patch(`/deployments/${UUID_ID}/schedules/${SCHEDULE_ID}`, { schema: { params: ScheduleParams, body: ScheduleUpdateBody } }, async (request, reply) => {
      await updateDeploymentSchedule(db, request.params.id, request.params.schedule_id, request.body);
      return reply.code(204).send();
    });

    app.delete(`/deployments/${UUID_ID}/schedules/${SCHEDULE_ID}`, { schema: { params: ScheduleParams } }, async (request, reply) => {
      await deleteDeploymentSchedule(db, request.params.id, request.params.schedule_id);
      return reply.code(204).send();
    });
  };
}
