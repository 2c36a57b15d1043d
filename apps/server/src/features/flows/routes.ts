/**
 * Flows: create (returns the existing flow for a known name), read, filter, count, paginate, update,
 * delete, bulk delete.
 */
import { type Flow, NotFoundError } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import type { Routes } from "../http/zod.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import { createdStatus, IdParams, limitOf, paginated, runCriteria } from "./common.js";

export function flowResponse(flow: Flow) {
  return { id: flow.id, created: flow.created, updated: flow.updated, name: flow.name, tags: flow.tags, labels: flow.labels ?? {} };
}

export function flowRoutes({ db }: AppContext): Routes {
  return async (app) => {
    app.post("/flows/", { schema: { body: api.FlowCreate } }, async (request, reply) => {
      const { row, created } = await db.flows.create(request.body);
      return reply.code(createdStatus(created)).send(flowResponse(row));
    });

    app.get("/flows/:id", { schema: { params: IdParams } }, async (request) => {
      const flow = await db.flows.get(request.params.id);
      if (!flow) throw new HttpError(404, "Flow not found");
      return flowResponse(flow);
    });

    app.get("/flows/name/:name", { schema: { params: z.strictObject({ name: z.string() }) } }, async (request) => {
      const flow = await db.flows.getByName(request.params.name);
      if (!flow) throw new HttpError(404, "Flow not found");
      return flowResponse(flow);
    });

    app.patch("/flows/:id", { schema: { params: IdParams, body: api.FlowUpdate } }, async (request, reply) => {
      await db.flows.update(request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete("/flows/:id", { schema: { params: IdParams } }, async (request, reply) => {
      await db.flows.delete(request.params.id);
      return reply.code(204).send();
    });

    app.post("/flows/filter", { schema: { body: api.Body_read_flows_flows_filter_post } }, async (request) => {
      const body = request.body;
      const flows = await db.flows.read({ ...runCriteria(body), sort: body.sort ?? "NAME_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return flows.map(flowResponse);
    });

    app.post("/flows/count", { schema: { body: api.Body_count_flows_flows_count_post } }, async (request) => db.flows.count(runCriteria(request.body)));

    app.post("/flows/paginate", { schema: { body: api.Body_paginate_flows_flows_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const criteria = runCriteria(body);
      const [flows, count] = await Promise.all([
        db.flows.read({ ...criteria, sort: body.sort ?? "NAME_ASC", limit, offset: (page - 1) * limit }),
        db.flows.count(criteria),
      ]);
      return paginated(flows.map(flowResponse), count, limit, page);
    });

    app.post("/flows/bulk_delete", { schema: { body: api.Body_bulk_delete_flows_flows_bulk_delete_post } }, async (request) => {
      const body = request.body;
      const flows = await db.flows.read({ flows: body.flows ?? null, limit: body.limit ?? 50, sort: "CREATED_DESC" });
      const deleted: string[] = [];
      for (const flow of flows) {
        try {
          await db.flows.delete(flow.id);
          deleted.push(flow.id);
        } catch (error) {
          // A flow deleted meanwhile by another request is simply not reported.
          if (!(error instanceof NotFoundError)) throw error;
        }
      }
      return { deleted };
    });
  };
}
