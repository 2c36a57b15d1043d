/**
 * Concurrency limits: Prefect's tag-based (v1) `/concurrency_limits` routes (tag-limits.ts) and its
 * global concurrency and rate limits under `/v2/concurrency_limits` (service.ts).
 */
import { Uuid } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, limitOf, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import {
  acquireSlots,
  acquireSlotsWithLease,
  createLimit,
  DEFAULT_LEASE_SECONDS,
  deleteLimit,
  readLimit,
  readLimits,
  releaseLease,
  releaseSlots,
  renewLease,
  updateLimit,
} from "./service.js";
import {
  createTagLimit,
  decrementTagSlots,
  deleteTagLimit,
  deleteTagLimitByTag,
  incrementTagSlots,
  readTagLimit,
  readTagLimitByTag,
  readTagLimits,
  resetTagLimit,
} from "./tag-limits.js";
import { globalLimitResponse, limitV2Response, minimalLimit, tagLimitResponse } from "./responses.js";

const NAME_PATTERN = "^[^/%&><]+$";
const LimitName = z.string().regex(new RegExp(NAME_PATTERN), { message: `String should match pattern '${NAME_PATTERN}'` });
const CreateBody = api.ConcurrencyLimitV2Create.extend({ name: LimitName });
const UpdateBody = api.ConcurrencyLimitV2Update.extend({ name: LimitName.nullable().optional() });
const IdOrNameParams = z.strictObject({ id_or_name: z.string() });
const LeaseParams = z.strictObject({ lease_id: Uuid });
const TagParams = z.strictObject({ tag: z.string() });

/** The v1 routes answer `null` (JSON) where Prefect's return nothing with a 200. */
const JSON_NULL = "null";

export function concurrencyLimitRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    // ---- Tag-based (v1) limits ----------------------------------------------------------------
    app.post("/concurrency_limits/", { schema: { body: api.ConcurrencyLimitCreate } }, async (request, reply) => {
      const { created, ...view } = await createTagLimit(context, request.body);
      return reply.code(created ? 201 : 200).send(tagLimitResponse(view));
    });

    app.post("/concurrency_limits/filter", { schema: { body: api.Body_read_concurrency_limits_concurrency_limits_filter_post } }, async (request) =>
      (await readTagLimits(context, { limit: limitOf(request.body.limit), offset: request.body.offset ?? 0 })).map(tagLimitResponse),
    );

    app.post("/concurrency_limits/increment", { schema: { body: api.Body_increment_concurrency_limits_v1_concurrency_limits_increment_post } }, async (request) =>
      (await incrementTagSlots(context, request.body.names, request.body.task_run_id)).map(minimalLimit),
    );

    app.post("/concurrency_limits/decrement", { schema: { body: api.Body_decrement_concurrency_limits_v1_concurrency_limits_decrement_post } }, async (request) =>
      (await decrementTagSlots(context, request.body.names, request.body.task_run_id)).map(minimalLimit),
    );

    app.get(`/concurrency_limits/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => tagLimitResponse(await readTagLimit(context, request.params.id)));

    app.get("/concurrency_limits/tag/:tag", { schema: { params: TagParams } }, async (request) => tagLimitResponse(await readTagLimitByTag(context, request.params.tag)));

    app.post(
      "/concurrency_limits/tag/:tag/reset",
      { schema: { params: TagParams, body: api.Body_reset_concurrency_limit_by_tag_concurrency_limits_tag__tag__reset_post } },
      async (request, reply) => {
        await resetTagLimit(context, request.params.tag, request.body.slot_override ?? []);
        return reply.code(200).type("application/json").send(JSON_NULL);
      },
    );

    app.delete(`/concurrency_limits/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteTagLimit(context, request.params.id);
      return reply.code(200).type("application/json").send(JSON_NULL);
    });

    app.delete("/concurrency_limits/tag/:tag", { schema: { params: TagParams } }, async (request, reply) => {
      await deleteTagLimitByTag(context, request.params.tag);
      return reply.code(200).type("application/json").send(JSON_NULL);
    });

    // ---- Global (v2) limits -------------------------------------------------------------------
    app.post("/v2/concurrency_limits/", { schema: { body: CreateBody } }, async (request, reply) => {
      return reply.code(201).send(limitV2Response(await createLimit(context, request.body)));
    });

    app.post("/v2/concurrency_limits/filter", { schema: { body: api.Body_read_all_concurrency_limits_v2_v2_concurrency_limits_filter_post } }, async (request) =>
      (await readLimits(db, { limit: limitOf(request.body.limit), offset: request.body.offset ?? 0 })).map(globalLimitResponse),
    );

    app.post(
      "/v2/concurrency_limits/increment",
      { schema: { body: api.Body_bulk_increment_active_slots_v2_concurrency_limits_increment_post } },
      async (request) => {
        // `create_if_missing` is accepted and ignored, as Prefect does since it deprecated it.
        const { names, slots, mode } = request.body;
        return (await acquireSlots(context, names, slots, mode ?? "concurrency")).map(minimalLimit);
      },
    );

    app.post(
      "/v2/concurrency_limits/increment-with-lease",
      { schema: { body: api.Body_bulk_increment_active_slots_with_lease_v2_concurrency_limits_increment_with_lease_post } },
      async (request) => {
        const { names, slots, mode, lease_duration: duration, holder } = request.body;
        const { lease, limits } = await acquireSlotsWithLease(context, names, slots, mode ?? "concurrency", duration ?? DEFAULT_LEASE_SECONDS, holder);
        return { lease_id: lease.id, limits: limits.map(minimalLimit) };
      },
    );

    app.post(
      "/v2/concurrency_limits/decrement",
      { schema: { body: api.Body_bulk_decrement_active_slots_v2_concurrency_limits_decrement_post } },
      async (request) => {
        const { names, slots, occupancy_seconds: occupancy } = request.body;
        return (await releaseSlots(context, names, slots, occupancy ?? null)).map(minimalLimit);
      },
    );

    app.post(
      "/v2/concurrency_limits/decrement-with-lease",
      { schema: { body: api.Body_bulk_decrement_active_slots_with_lease_v2_concurrency_limits_decrement_with_lease_post } },
      async (request, reply) => {
        await releaseLease(context, request.body.lease_id);
        return reply.code(204).send();
      },
    );

    app.post(
      "/v2/concurrency_limits/leases/:lease_id/renew",
      { schema: { params: LeaseParams, body: api.Body_renew_concurrency_lease_v2_concurrency_limits_leases__lease_id__renew_post } },
      async (request, reply) => {
        await renewLease(context, request.params.lease_id, request.body.lease_duration ?? DEFAULT_LEASE_SECONDS);
        return reply.code(204).send();
      },
    );

    app.get("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams } }, async (request) => globalLimitResponse(await readLimit(db, request.params.id_or_name)));

    app.patch("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams, body: UpdateBody } }, async (request, reply) => {
      await updateLimit(context, request.params.id_or_name, request.body);
      return reply.code(204).send();
    });

    app.delete("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams } }, async (request, reply) => {
      await deleteLimit(context, request.params.id_or_name);
      return reply.code(204).send();
    });
  };
}
