/**
 * Tag-based (v1) concurrency limits (Prefect's `/concurrency_limits` routes), served as Prefect 3
 * serves them: an adapter over global limits named `tag:<tag>`, falling back to legacy v1 rows of
 * older databases. A task run's slots are leases held by the task run in the server's lease storage
 * (the one orchestration's tag-concurrency rules use), so slots taken here are freed when the task
 * run leaves RUNNING, and the task runs `active_slots` lists are the leases' holders.
 */
import { type ConcurrencyLimitV2, type Database, NotFoundError, type TagConcurrencyLimit, type TagSlotRelease } from "@prefect/db";
import { type ConcurrencyLease, type LeaseStorage, TASK_LEASE_TTL_SECONDS } from "@prefect/orchestration";
import { z } from "zod";
import type { AppContext } from "../app.js";
import type { EventBus } from "../events/bus.js";
import { publishLifecycleEvent } from "../events/lifecycle.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf } from "./common.js";
import { minimalLimit, publishLimitEvent } from "./concurrency-limits-v2.js";
import { UUID_ID } from "./fields.js";

const NOT_FOUND = "Concurrency limit not found";
const TAG_PREFIX = "tag:";

const TagParams = z.strictObject({ tag: z.string() });

/** A limit on the tag (v2 first, then a legacy row), with the task runs holding its slots. */
async function limitResponse(leases: LeaseStorage, limit: TagConcurrencyLimit) {
  let holders = limit.active_slots;
  if (limit.source === "v2") {
    holders = (await leases.listHoldersForLimit(limit.id)).filter(({ holder }) => holder.type === "task_run").map(({ holder }) => holder.id);
  }
  return { id: limit.id, created: limit.created, updated: limit.updated, tag: limit.tag, concurrency_limit: limit.concurrency_limit, active_slots: holders };
}

/** Prefect's events for a deleted tag limit: the global limit's, or the legacy row's own kind. */
function publishDeleted(events: EventBus, limit: TagConcurrencyLimit, v2: ConcurrencyLimitV2 | null): void {
  if (v2) {
    publishLimitEvent(events, "deleted", v2);
    return;
  }
  publishLifecycleEvent(events, {
    kind: "concurrency-limit",
    action: "deleted",
    resourceId: `prefect.concurrency-limit.${limit.id}`,
    resourceName: limit.tag,
    payload: { tag: limit.tag, concurrency_limit: limit.concurrency_limit },
  });
}

/**
 * Drops the leases' hold on a limit that was deleted or reset (its slot count no longer reflects
 * them). Prefect revokes every lease on the limit; a lease that also holds slots on other limits that
 * still exist keeps those (it is narrowed to them), so they are still given back with it.
 */
async function releaseLeasesOn(db: Database, leases: LeaseStorage, limitId: string, only?: readonly ConcurrencyLease[]): Promise<void> {
  const affected = only ?? (await leases.listLeasesForLimit(limitId));
  for (const lease of affected) {
    const others = lease.resource_ids.filter((id) => id !== limitId);
    const remaining: string[] = [];
    for (const id of others) if (await db.concurrencyLimits.get(id)) remaining.push(id);
    if (remaining.length === 0) {
      await leases.revokeLease(lease.id);
      continue;
    }
    // Take, then put back narrowed: a release racing with this one either takes the lease first
    // (and frees every limit) or finds the narrowed one.
    const current = await leases.takeLease(lease.id);
    if (current) await leases.saveLease({ ...current, resource_ids: current.resource_ids.filter((id) => id !== limitId) });
  }
}

export function concurrencyLimitRoutes({ db, events, leases, settings }: AppContext): Routes {
  /** Deletes the tag limit `find` reads and drops the leases on it; unknown → 404. */
  async function remove(find: () => Promise<TagConcurrencyLimit | null>, drop: () => Promise<void>) {
    const limit = await find();
    if (!limit) throw new HttpError(404, NOT_FOUND);
    const v2 = limit.source === "v2" ? await db.concurrencyLimits.get(limit.id) : null;
    try {
      await drop();
    } catch (error) {
      if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
      throw error;
    }
    if (limit.source === "v2") await releaseLeasesOn(db, leases, limit.id);
    publishDeleted(events, limit, v2);
  }

  return async (app) => {
    app.post("/concurrency_limits/", { schema: { body: api.ConcurrencyLimitCreate } }, async (request, reply) => {
      const { row, created } = await db.concurrencyLimits.createTagLimit(request.body);
      const v2 = await db.concurrencyLimits.get(row.id);
      if (v2) publishLimitEvent(events, created ? "created" : "updated", v2);
      return reply.code(created ? 201 : 200).send(await limitResponse(leases, row));
    });

    app.post("/concurrency_limits/filter", { schema: { body: api.Body_read_concurrency_limits_concurrency_limits_filter_post } }, async (request) => {
      const limits = await db.concurrencyLimits.readTagLimits({ limit: limitOf(request.body.limit), offset: request.body.offset ?? 0 });
      return Promise.all(limits.map((limit) => limitResponse(leases, limit)));
    });

    app.post("/concurrency_limits/increment", { schema: { body: api.Body_increment_concurrency_limits_v1_concurrency_limits_increment_post } }, async (request) => {
      const { names, task_run_id: taskRunId } = request.body;
      const result = await db.concurrencyLimits.incrementTagSlots(names, taskRunId);
      if (result.status === "zero_limit") {
        throw new HttpError(423, `The concurrency limit on tag "${result.tag}" is 0 and will deadlock if the task tries to run again.`);
      }
      if (result.status === "limit_reached") {
        throw new HttpError(423, `Concurrency limit for the ${result.tag} tag has been reached`, {
          "Retry-After": String(settings.concurrency.tagSlotWaitSeconds),
        });
      }
      if (result.limits.length > 0) {
        await leases.createLease(
          result.limits.map((l) => l.id),
          TASK_LEASE_TTL_SECONDS,
          { slots: 1, holder: { type: "task_run", id: taskRunId } },
        );
      }
      return [
        ...result.limits.map((l) => minimalLimit(l.id, l.name.slice(TAG_PREFIX.length), l.limit)),
        ...result.legacy.map((l) => minimalLimit(l.id, l.tag, l.concurrency_limit)),
      ];
    });

    app.post("/concurrency_limits/decrement", { schema: { body: api.Body_decrement_concurrency_limits_v1_concurrency_limits_decrement_post } }, async (request) => {
      const { names, task_run_id: taskRunId } = request.body;
      const limits = await db.concurrencyLimits.readByNames(names.map((tag) => TAG_PREFIX + tag));
      const leaseIds = new Set<string>();
      for (const limit of limits) {
        for (const { leaseId, holder } of await leases.listHoldersForLimit(limit.id)) if (holder.id === taskRunId) leaseIds.add(leaseId);
      }
      // Taken out of the storage first, so that no other release frees them again.
      const taken: ConcurrencyLease[] = [];
      for (const id of leaseIds) {
        const lease = await leases.takeLease(id);
        if (lease) taken.push(lease);
      }
      let released: TagSlotRelease;
      try {
        released = await db.concurrencyLimits.decrementTagSlots(
          names,
          taskRunId,
          taken.map((lease) => ({ resource_ids: [...lease.resource_ids], slots: lease.metadata?.slots ?? 0 })),
        );
      } catch (error) {
        for (const lease of taken) await leases.saveLease(lease);
        throw error;
      }
      // Prefect names the global limits by their own name here (`tag:<tag>`), legacy rows by tag.
      return [
        ...released.limits.map((l) => minimalLimit(l.id, l.name, l.limit)),
        ...released.legacy.map((l) => minimalLimit(l.id, l.tag, l.concurrency_limit)),
      ];
    });

    app.get(`/concurrency_limits/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      const limit = await db.concurrencyLimits.getTagLimit(request.params.id);
      if (!limit) throw new HttpError(404, NOT_FOUND);
      return limitResponse(leases, limit);
    });

    app.get("/concurrency_limits/tag/:tag", { schema: { params: TagParams } }, async (request) => {
      const limit = await db.concurrencyLimits.getTagLimitByTag(request.params.tag);
      if (!limit) throw new HttpError(404, NOT_FOUND);
      return limitResponse(leases, limit);
    });

    app.post(
      "/concurrency_limits/tag/:tag/reset",
      { schema: { params: TagParams, body: api.Body_reset_concurrency_limit_by_tag_concurrency_limits_tag__tag__reset_post } },
      async (request, reply) => {
        const { tag } = request.params;
        const holders = [...new Set(request.body.slot_override ?? [])];
        const before = await db.concurrencyLimits.getTagLimitByTag(tag);
        // The leases on the limit before the reset: the reset's count replaces what they held.
        const previous = before?.source === "v2" ? await leases.listLeasesForLimit(before.id) : [];
        const limit = await db.concurrencyLimits.resetTagLimit(tag, holders);
        if (!limit) throw new HttpError(404, NOT_FOUND);
        if (limit.source === "v2") {
          await releaseLeasesOn(db, leases, limit.id, before?.id === limit.id ? previous : undefined);
          for (const taskRunId of holders) {
            await leases.createLease([limit.id], TASK_LEASE_TTL_SECONDS, { slots: 1, holder: { type: "task_run", id: taskRunId } });
          }
        }
        return reply.code(200).type("application/json").send("null");
      },
    );

    app.delete(`/concurrency_limits/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const { id } = request.params;
      await remove(
        () => db.concurrencyLimits.getTagLimit(id),
        () => db.concurrencyLimits.deleteTagLimit(id),
      );
      return reply.code(200).type("application/json").send("null");
    });

    app.delete("/concurrency_limits/tag/:tag", { schema: { params: TagParams } }, async (request, reply) => {
      const { tag } = request.params;
      await remove(
        () => db.concurrencyLimits.getTagLimitByTag(tag),
        () => db.concurrencyLimits.deleteTagLimitByTag(tag),
      );
      return reply.code(200).type("application/json").send("null");
    });
  };
}
