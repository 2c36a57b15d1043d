/**
 * Flows: create (returns the existing flow for a known name), read, filter, count, paginate, update,
 * delete, bulk delete.
 */
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { createdStatus, IdParams, limitOf, paginated } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { runCriteria } from "../../prefect/run-criteria.js";
import { flowResponse } from "./responses.js";
import { bulkDeleteFlows, countFlows, createFlow, deleteFlow, paginateFlows, readFlow, readFlowByName, readFlows, updateFlow } from "./service.js";

export function flowRoutes({ db }: AppContext): Routes {
  return async (app) => {
    app.post("/flows/", { schema: { body: api.FlowCreate } }, async (request, reply) => {
      const { row, created } = await createFlow(db, request.body);
      return reply.code(createdStatus(created)).send(flowResponse(row));
    });

    app.get("/flows/:id", { schema: { params: IdParams } }, async (request) => flowResponse(await readFlow(db, request.params.id)));

    app.get("/flows/name/:name", { schema: { params: z.strictObject({ name: z.string() }) } }, async (request) => flowResponse(await readFlowByName(db, request.params.name)));

    app.patch("/flows/:id", { schema: { params: IdParams, body: api.FlowUpdate } }, async (request, reply) => {
      await updateFlow(db, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete("/flows/:id", { schema: { params: IdParams } }, async (request, reply) => {
      await deleteFlow(db, request.params.id);
      return reply.code(204).send();
    });

    app.post("/flows/filter", { schema: { body: api.Body_read_flows_flows_filter_post } }, async (request) => {
      const body = request.body;
      const flows = await readFlows(db, { ...runCriteria(body), sort: body.sort ?? "NAME_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return flows.map(flowResponse);
    });

    app.post("/flows/count", { schema: { body: api.Body_count_flows_flows_count_post } }, async (request) => countFlows(db, runCriteria(request.body)));

    app.post("/flows/paginate", { schema: { body: api.Body_paginate_flows_flows_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const { flows, count } = await paginateFlows(db, { ...runCriteria(body), sort: body.sort ?? "NAME_ASC", limit, offset: (page - 1) * limit });
      return paginated(flows.map(flowResponse), count, limit, page);
    });

    app.post("/flows/bulk_delete", { schema: { body: api.Body_bulk_delete_flows_flows_bulk_delete_post } }, async (request) => ({
      deleted: await bulkDeleteFlows(db, request.body.flows ?? null, request.body.limit ?? 50),
    }));
  };
}
