/** Prefect's `GET /collections/views/{view}`, answered offline (see service.ts). */
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { notFound } from "../../prefect/errors.js";
import type { Routes } from "../../http/zod.js";
import { MissingViewContentError, readView, UnknownViewError } from "./service.js";

const ViewParams = z.strictObject({ view: z.string() });

export function collectionRoutes(_context: AppContext): Routes {
  return async (app) => {
    app.get("/collections/views/:view", { schema: { params: ViewParams } }, async (request) => {
      try {
        return readView(request.params.view);
      } catch (error) {
        if (error instanceof UnknownViewError || error instanceof MissingViewContentError) throw notFound(error.message);
        throw error;
      }
    });
  };
}
