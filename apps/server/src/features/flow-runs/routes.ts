/**
 * Flow runs and flow run states (Prefect's "Flow Runs" and "Flow Run States" routes): create (through
 * orchestration), read, update, labels, delete, filter/count/paginate, history, lateness, graphs,
 * state changes (one run, many runs, resuming a paused run) and the logs download. The run inputs
 * under `/flow_runs/{id}/input` live elsewhere.
 */
import { Readable } from "node:stream";
import { now, TimestampSchema, Uuid } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { apiVersionOf, clientVersionOf, createdByOf, OrchestrationHeaders } from "../../http/headers.js";
import { IdParams, limitOf, paginated } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { pythonQuote } from "../../prefect/python.js";
import { orchestrationResponse, stateResponse } from "../../prefect/run-responses.js";
import { dependencyResult, flowRunGraph } from "./graph.js";
import { logLines } from "./logs-download.js";
import { flowRunResponse } from "./responses.js";
import {
  averageFlowRunLateness,
  BULK_LIMIT,
  bulkDeleteFlowRuns,
  bulkSetFlowRunState,
  type ClientInfo,
  countFlowRuns,
  createFlowRun,
  deleteFlowRun,
  flowRunHistory,
  paginateFlowRuns,
  readFlowRun,
  readFlowRuns,
  readFlowRunState,
  readFlowRunStates,
  readRunForGraph,
  readTaskRunsOf,
  resumeFlowRun,
  setFlowRunState,
  updateFlowRun,
  updateFlowRunLabels,
} from "./service.js";
import type { FastifyRequest } from "fastify";

/** Prefect's FlowRunCreate: a null or empty name draws a generated one. */
const FlowRunCreateBody = api.FlowRunCreate.extend({ name: z.string().nullish() });
const FlowRunUpdateBody = api.FlowRunUpdate;
const LabelsBody = z.record(z.string(), z.unknown());
const StatesQuery = z.looseObject({ flow_run_id: Uuid });
const GraphQuery = z.looseObject({ since: TimestampSchema.optional() });

const clientOf = (request: FastifyRequest): ClientInfo => ({ apiVersion: apiVersionOf(request), clientVersion: clientVersionOf(request) });

export function flowRunRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/flow_runs/", { schema: { body: FlowRunCreateBody, headers: OrchestrationHeaders } }, async (request, reply) => {
      const outcome = await createFlowRun(context, request.body, { apiVersion: apiVersionOf(request), clientVersion: null }, createdByOf(request));
      return reply.code(outcome.created ? 201 : 200).send(flowRunResponse(outcome.run));
    });

    app.post(
      "/flow_runs/:id/set_state",
      { schema: { params: IdParams, body: api.Body_set_flow_run_state_flow_runs__id__set_state_post, headers: OrchestrationHeaders } },
      async (request, reply) => {
        const result = await setFlowRunState(context, request.params.id, request.body.state, clientOf(request), request.body.force ?? false);
        return reply.code(result.written ? 201 : 200).send(orchestrationResponse(result));
      },
    );

    app.post(
      "/flow_runs/bulk_set_state",
      { schema: { body: api.Body_bulk_set_flow_run_state_flow_runs_bulk_set_state_post, headers: OrchestrationHeaders } },
      async (request) => {
        const body = request.body;
        const client = clientOf(request);
        return { results: await bulkSetFlowRunState(context, body.flow_runs ?? null, body.limit ?? BULK_LIMIT, body.state, client, body.force ?? false) };
      },
    );

    app.post(
      "/flow_runs/:id/resume",
      { schema: { params: IdParams, body: api.Body_resume_flow_run_flow_runs__id__resume_post, headers: OrchestrationHeaders } },
      async (request, reply) => {
        const outcome = await resumeFlowRun(context, request.params.id, request.body.run_input ?? null, clientOf(request));
        return reply.code(outcome.written ? 201 : 200).send({ state: outcome.state, status: outcome.status, details: outcome.details });
      },
    );

    app.get("/flow_runs/:id", { schema: { params: IdParams } }, async (request) => flowRunResponse(await readFlowRun(db, request.params.id)));

    app.patch("/flow_runs/:id", { schema: { params: IdParams, body: FlowRunUpdateBody } }, async (request, reply) => {
      await updateFlowRun(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.patch("/flow_runs/:id/labels", { schema: { params: IdParams, body: LabelsBody } }, async (request, reply) => {
      await updateFlowRunLabels(db, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete("/flow_runs/:id", { schema: { params: IdParams } }, async (request, reply) => {
      await deleteFlowRun(db, request.params.id);
      return reply.code(204).send();
    });

    app.post("/flow_runs/filter", { schema: { body: api.Body_read_flow_runs_flow_runs_filter_post } }, async (request) => {
      const body = request.body;
      const runs = await readFlowRuns(db, { ...body, work_queues: body.work_pool_queues }, { sort: body.sort ?? "ID_DESC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const at = now();
      return runs.map((run) => flowRunResponse(run, at));
    });

    app.post("/flow_runs/count", { schema: { body: api.Body_count_flow_runs_flow_runs_count_post } }, async (request) =>
      countFlowRuns(db, { ...request.body, work_queues: request.body.work_pool_queues }),
    );

    app.post("/flow_runs/paginate", { schema: { body: api.Body_paginate_flow_runs_flow_runs_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const { runs, count } = await paginateFlowRuns(db, { ...body, work_queues: body.work_pool_queues }, { sort: body.sort ?? "ID_DESC", limit, offset: (page - 1) * limit });
      const at = now();
      return paginated(
        runs.map((run) => flowRunResponse(run, at)),
        count,
        limit,
        page,
      );
    });

    app.post("/flow_runs/history", { schema: { body: api.Body_flow_run_history_flow_runs_history_post } }, async (request) => flowRunHistory(db, request.body));

    app.post("/flow_runs/lateness", { schema: { body: api.Body_average_flow_run_lateness_flow_runs_lateness_post } }, async (request) =>
      averageFlowRunLateness(db, { ...request.body, work_queues: request.body.work_pool_queues }),
    );

    app.post("/flow_runs/bulk_delete", { schema: { body: api.Body_bulk_delete_flow_runs_flow_runs_bulk_delete_post } }, async (request) => ({
      deleted: await bulkDeleteFlowRuns(context.db, request.body.flow_runs ?? null, request.body.limit ?? BULK_LIMIT),
    }));

    app.get("/flow_runs/:id/graph", { schema: { params: IdParams } }, async (request) => {
      const run = await readRunForGraph(db, request.params.id, `Flow run with id ${request.params.id} not found`);
      const tasks = await readTaskRunsOf(db, run.id);
      const at = now();
      return tasks.map((task) => dependencyResult(task, at));
    });

    app.get("/flow_runs/:id/graph-v2", { schema: { params: IdParams, querystring: GraphQuery } }, async (request) => {
      const run = await readRunForGraph(db, request.params.id, `Flow run ${request.params.id} not found`);
      return flowRunGraph(db, run, request.query.since ?? null);
    });

    app.get("/flow_runs/:id/logs/download", { schema: { params: IdParams } }, async (request, reply) => {
      const run = await readFlowRun(db, request.params.id);
      const filename = pythonQuote(`${run.name}-logs.csv`);
      return reply
        .header("content-type", "text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="flow-run-logs.csv"; filename*=UTF-8''${filename}`)
        .send(Readable.from(logLines(db, run.id)));
    });

    app.get("/flow_run_states/:id", { schema: { params: IdParams } }, async (request) => stateResponse(await readFlowRunState(db, request.params.id)));

    app.get("/flow_run_states/", { schema: { querystring: StatesQuery } }, async (request) => (await readFlowRunStates(db, request.query.flow_run_id)).map(stateResponse));
  };
}
