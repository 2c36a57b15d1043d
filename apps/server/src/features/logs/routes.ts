/** Logs: batched writes from clients and workers, and filtered reads. */
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { limitOf } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { createLogs, readLogs } from "./service.js";

export function logRoutes({ db }: AppContext): Routes {
  return async (app) => {
    app.post("/logs/", { schema: { body: api.LogCreate.array() } }, async (request, reply) => {
      await createLogs(db, request.body);
      return reply.code(201).send();
    });

    app.post("/logs/filter", { schema: { body: api.Body_read_logs_logs_filter_post } }, async (request) => {
      const body = request.body;
      return readLogs(db, { filter: body.logs ?? null, sort: body.sort ?? "TIMESTAMP_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
    });
  };
}
