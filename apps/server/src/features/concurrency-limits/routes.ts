/**
 * Global concurrency and rate limits (Prefect's `/v2/concurrency_limits` routes): create (409 for a
 * taken name), read, update and delete by id or by name, filter; slots taken on every named limit at
 * once or on none (423 Locked with Prefect's `Retry-After` when one is full) and given back; and
 * leases: slots held for a while, renewed by their holder, given back with the lease, or by the
 * repossessor service once the lease lapses. Each change of a limit publishes Prefect's
 * `prefect.concurrency-limit.*` lifecycle event.
 *
 * Slot counts live in the database, where one conditional UPDATE per call decides (see the
 * repository): any number of servers share them safely. Leases live in the server's lease storage
 * (process memory, Prefect's default), shared with orchestration's tag-concurrency rules; a lease
 * this server does not know answers as Prefect answers for an unknown lease (renew: 410, release:
 * 204 without freeing anything).
 */
import {
  AlreadyExistsError,
  type ConcurrencyLimitV2,
  type Database,
  InvalidError,
  now,
  NotFoundError,
  type RetryHint,
  type SlotAcquisition,
  type SlotWaitSettings,
  secondsBetween,
  Uuid,
} from "@prefect/db";
import { clampedPoissonInterval, type ConcurrencyLease, type LeaseStorage } from "@prefect/orchestration";
import { z } from "zod";
import type { AppContext } from "../app.js";
import type { EventBus } from "../events/bus.js";
import { publishLifecycleEvent } from "../events/lifecycle.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import type { ServerSettings } from "../settings.js";
import { limitOf } from "./common.js";

const NOT_FOUND = "Concurrency Limit not found";
/** What Prefect answers when a write runs into a unique name (its IntegrityError handler). */
export const INTEGRITY_CONFLICT = "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.";
const LEASE_GONE = "Lease not found - it may have expired or been revoked";
/** Prefect's default `lease_duration` (seconds). */
const DEFAULT_LEASE_SECONDS = 300;
/** The largest slot count a limit can hold (the column is a 32-bit integer). */
const MAX_SLOTS = 2_147_483_647;

const NAME_PATTERN = "^[^/%&><]+$";
const LimitName = z.string().regex(new RegExp(NAME_PATTERN), { message: `String should match pattern '${NAME_PATTERN}'` });
const CreateBody = api.ConcurrencyLimitV2Create.extend({ name: LimitName });
const UpdateBody = api.ConcurrencyLimitV2Update.extend({ name: LimitName.nullable().optional() });
const IdOrNameParams = z.strictObject({ id_or_name: z.string() });
const LeaseParams = z.strictObject({ lease_id: Uuid });

/** Starlette's `Union[UUID, str]` path parameter: any form Python's `UUID()` reads is an id. */
export function idOf(idOrName: string): string | null {
  const hex = idOrName
    .trim()
    .replace(/^urn:uuid:/i, "")
    .replace(/^\{(.*)\}$/, "$1")
    .replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return null;
  const h = hex.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The server's bounds on how long refused callers are told to wait. */
export function slotWaits(settings: ServerSettings): SlotWaitSettings {
  return { tag_slot_wait_seconds: settings.concurrency.tagSlotWaitSeconds, maximum_slot_wait_seconds: settings.concurrency.maximumSlotWaitSeconds };
}

export function limitV2Response(limit: ConcurrencyLimitV2) {
  return {
    id: limit.id,
    created: limit.created,
    updated: limit.updated,
    active: limit.active,
    name: limit.name,
    limit: limit.limit,
    active_slots: limit.active_slots,
    denied_slots: limit.denied_slots,
    slot_decay_per_second: limit.slot_decay_per_second,
    avg_slot_occupancy_seconds: limit.avg_slot_occupancy_seconds,
  };
}

/** Prefect's GlobalConcurrencyLimitResponse: active slots after decay, no denied slots nor occupancy. */
function globalLimitResponse(limit: ConcurrencyLimitV2) {
  return {
    id: limit.id,
    created: limit.created,
    updated: limit.updated,
    active: limit.active,
    name: limit.name,
    limit: limit.limit,
    active_slots: limit.active_slots,
    slot_decay_per_second: limit.slot_decay_per_second,
  };
}

export const minimalLimit = (id: string, name: string, limit: number) => ({ id, name, limit });

/** Publishes Prefect's `prefect.concurrency-limit.<action>` event for a global (or `tag:`) limit. */
export function publishLimitEvent(events: EventBus, action: "created" | "updated" | "deleted", limit: ConcurrencyLimitV2): void {
  publishLifecycleEvent(events, {
    kind: "concurrency-limit",
    action,
    resourceId: `prefect.concurrency-limit.${limit.id}`,
    resourceName: limit.name,
    payload: { name: limit.name, limit: limit.limit, active: limit.active, slot_decay_per_second: limit.slot_decay_per_second },
  });
}

/**
 * Prefect's 423 for refused slots: `Retry-After` is a Poisson-jittered interval around the blocking
 * limit's expected wait (its average occupancy, capped, or its decay rate).
 */
function locked(hint: RetryHint): HttpError {
  const average = hint.average_interval_seconds;
  const retryAfter = average > 0 && Number.isFinite(average) ? clampedPoissonInterval(average) : 0;
  return new HttpError(423, "Locked", { "Retry-After": String(retryAfter) });
}

/**
 * Takes `slots` on every active limit named, or on none. Returns every limit found (Prefect's
 * answer lists inactive ones too); refusals become Prefect's 422 and 423 answers.
 */
async function acquire(db: Database, names: readonly string[], slots: number, mode: "concurrency" | "rate_limit", waits: SlotWaitSettings) {
  let result: SlotAcquisition;
  try {
    result = await db.concurrencyLimits.incrementActiveSlots({ names }, slots, { mode, ...waits });
  } catch (error) {
    // "Slots requested is greater than the limit" and the rate-limit refusal: Prefect's plain 422.
    if (error instanceof InvalidError && error.issues.length === 0) throw new HttpError(422, error.message);
    throw error;
  }
  if (!result.acquired) throw locked(result.retry);
  return result.limits;
}

/**
 * Gives back the slots of a lease its caller has taken out of the lease storage (so no other caller
 * can free them again), folding how long they were held into the limits' average occupancy. If the
 * database refuses, the lease is put back as it was, for a retry or the repossessor.
 */
export async function freeLeaseSlots(db: Database, leases: LeaseStorage, lease: ConcurrencyLease, waits: SlotWaitSettings): Promise<void> {
  const occupancy = Math.max(0, secondsBetween(now(), lease.created_at));
  try {
    await db.concurrencyLimits.decrementActiveSlots({ ids: lease.resource_ids }, Math.min(lease.metadata?.slots ?? 0, MAX_SLOTS), {
      ...waits,
      occupancy_seconds: occupancy > 0 ? occupancy : null,
    });
  } catch (error) {
    await leases.saveLease(lease);
    throw error;
  }
}

export function concurrencyLimitV2Routes({ db, events, settings, leases }: AppContext): Routes {
  const waits = slotWaits(settings);

  return async (app) => {
    app.post("/v2/concurrency_limits/", { schema: { body: CreateBody } }, async (request, reply) => {
      let limit: ConcurrencyLimitV2;
      try {
        limit = await db.concurrencyLimits.create(request.body);
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new HttpError(409, INTEGRITY_CONFLICT);
        throw error;
      }
      publishLimitEvent(events, "created", limit);
      return reply.code(201).send(limitV2Response(limit));
    });

    app.post("/v2/concurrency_limits/filter", { schema: { body: api.Body_read_all_concurrency_limits_v2_v2_concurrency_limits_filter_post } }, async (request) => {
      const limits = await db.concurrencyLimits.read({ limit: limitOf(request.body.limit), offset: request.body.offset ?? 0 });
      return limits.map(globalLimitResponse);
    });

    app.post(
      "/v2/concurrency_limits/increment",
      { schema: { body: api.Body_bulk_increment_active_slots_v2_concurrency_limits_increment_post } },
      async (request) => {
        // `create_if_missing` is accepted and ignored, as Prefect does since it deprecated it.
        const { names, slots, mode } = request.body;
        const limits = await acquire(db, names, slots, mode ?? "concurrency", waits);
        return limits.map((l) => minimalLimit(l.id, l.name, l.limit));
      },
    );

    app.post(
      "/v2/concurrency_limits/increment-with-lease",
      { schema: { body: api.Body_bulk_increment_active_slots_with_lease_v2_concurrency_limits_increment_with_lease_post } },
      async (request) => {
        const { names, slots, mode, lease_duration: duration, holder } = request.body;
        const limits = await acquire(db, names, slots, mode ?? "concurrency", waits);
        // The lease covers the limits that gave slots: inactive ones took none, so it frees none there.
        const lease = await leases.createLease(
          limits.filter((l) => l.active).map((l) => l.id),
          duration ?? DEFAULT_LEASE_SECONDS,
          { slots, holder: holder ?? null },
        );
        return { lease_id: lease.id, limits: limits.map((l) => minimalLimit(l.id, l.name, l.limit)) };
      },
    );

    app.post(
      "/v2/concurrency_limits/decrement",
      { schema: { body: api.Body_bulk_decrement_active_slots_v2_concurrency_limits_decrement_post } },
      async (request) => {
        const { names, slots, occupancy_seconds: occupancy } = request.body;
        // More slots than a limit can hold frees them all, as the requested count would.
        const limits = await db.concurrencyLimits.decrementActiveSlots({ names }, Math.min(slots, MAX_SLOTS), { ...waits, occupancy_seconds: occupancy ?? null });
        return limits.map((l) => minimalLimit(l.id, l.name, l.limit));
      },
    );

    app.post(
      "/v2/concurrency_limits/decrement-with-lease",
      { schema: { body: api.Body_bulk_decrement_active_slots_with_lease_v2_concurrency_limits_decrement_with_lease_post } },
      async (request, reply) => {
        // Taking the lease out first makes the release happen once, whoever else tries it.
        const lease = await leases.takeLease(request.body.lease_id);
        if (lease) await freeLeaseSlots(db, leases, lease, waits);
        return reply.code(204).send();
      },
    );

    app.post(
      "/v2/concurrency_limits/leases/:lease_id/renew",
      { schema: { params: LeaseParams, body: api.Body_renew_concurrency_lease_v2_concurrency_limits_leases__lease_id__renew_post } },
      async (request, reply) => {
        const renewed = await leases.renewLease(request.params.lease_id, request.body.lease_duration ?? DEFAULT_LEASE_SECONDS);
        if (!renewed) throw new HttpError(410, LEASE_GONE);
        return reply.code(204).send();
      },
    );

    app.get("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams } }, async (request) => {
      const id = idOf(request.params.id_or_name);
      const limit = id ? await db.concurrencyLimits.get(id) : await db.concurrencyLimits.getByName(request.params.id_or_name);
      if (!limit) throw new HttpError(404, NOT_FOUND);
      return globalLimitResponse(limit);
    });

    app.patch("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams, body: UpdateBody } }, async (request, reply) => {
      const id = idOf(request.params.id_or_name);
      let limit: ConcurrencyLimitV2;
      try {
        limit = id ? await db.concurrencyLimits.update(id, request.body) : await db.concurrencyLimits.updateByName(request.params.id_or_name, request.body);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        if (error instanceof AlreadyExistsError) throw new HttpError(409, INTEGRITY_CONFLICT);
        throw error;
      }
      publishLimitEvent(events, "updated", limit);
      return reply.code(204).send();
    });

    app.delete("/v2/concurrency_limits/:id_or_name", { schema: { params: IdOrNameParams } }, async (request, reply) => {
      const id = idOf(request.params.id_or_name);
      const deleted = await db.transaction(async (tx) => {
        const found = id ? await tx.concurrencyLimits.get(id) : await tx.concurrencyLimits.getByName(request.params.id_or_name);
        if (found) await tx.concurrencyLimits.delete(found.id);
        return found;
      });
      if (!deleted) throw new HttpError(404, NOT_FOUND);
      publishLimitEvent(events, "deleted", deleted);
      return reply.code(204).send();
    });
  };
}
