/**
 * Saved searches (the Prefect UI's named filter sets): create or replace by name, read, list and delete.
 */
import { NotFoundError, type SavedSearch } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { createdStatus, IdParams, limitOf } from "./common.js";
import { RequiredAnyValue, UUID_ID } from "./fields.js";

const NOT_FOUND = "Saved search not found";

/** Prefect's SavedSearchFilter: every field required, `value` any JSON (null included). */
const SavedSearchFilterBody = z.object({
  object: z.string(),
  property: z.string(),
  type: z.string(),
  operation: z.string(),
  value: RequiredAnyValue,
});

const SavedSearchCreateBody = z.strictObject({
  name: z.string(),
  filters: z.array(SavedSearchFilterBody).optional(),
});

export function savedSearchResponse(search: SavedSearch) {
  return { id: search.id, created: search.created, updated: search.updated, name: search.name, filters: search.filters };
}

export function savedSearchRoutes({ db }: AppContext): Routes {
  return async (app) => {
    app.put("/saved_searches/", { schema: { body: SavedSearchCreateBody } }, async (request, reply) => {
      const { row, created } = await db.savedSearches.create({ name: request.body.name, filters: request.body.filters ?? [] });
      return reply.code(createdStatus(created)).send(savedSearchResponse(row));
    });

    app.get(`/saved_searches/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      const search = await db.savedSearches.get(request.params.id);
      if (!search) throw new HttpError(404, NOT_FOUND);
      return savedSearchResponse(search);
    });

    app.post("/saved_searches/filter", { schema: { body: api.Body_read_saved_searches_saved_searches_filter_post } }, async (request) => {
      const body = request.body;
      const searches = await db.savedSearches.read({ limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return searches.map(savedSearchResponse);
    });

    app.delete(`/saved_searches/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      try {
        await db.savedSearches.delete(request.params.id);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        throw error;
      }
      return reply.code(204).send();
    });
  };
}
