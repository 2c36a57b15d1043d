/**
 * Saved searches (the Prefect UI's named filter sets): create or replace by name, read, list and delete.
 */
import type { SavedSearch } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { createdStatus, IdParams, limitOf, RequiredAnyValue, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { createSavedSearch, deleteSavedSearch, readSavedSearch, readSavedSearches } from "./service.js";

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
      const { row, created } = await createSavedSearch(db, { name: request.body.name, filters: request.body.filters ?? [] });
      return reply.code(createdStatus(created)).send(savedSearchResponse(row));
    });

    app.get(`/saved_searches/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      return savedSearchResponse(await readSavedSearch(db, request.params.id));
    });

    app.post("/saved_searches/filter", { schema: { body: api.Body_read_saved_searches_saved_searches_filter_post } }, async (request) => {
      const body = request.body;
      const searches = await readSavedSearches(db, { limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return searches.map(savedSearchResponse);
    });

    app.delete(`/saved_searches/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteSavedSearch(db, request.params.id);
      return reply.code(204).send();
    });
  };
}
