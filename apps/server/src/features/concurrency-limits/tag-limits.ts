/**
 * Tag-based (v1) concurrency limits, served as Prefect 3 serves them: an adapter over global limits
 * named `tag:<tag>`, falling back to legacy v1 rows of older databases. A task run's slots are leases
 * held by the task run (the ones orchestration's tag-concurrency rules take), so slots taken here are
 * freed when the task run leaves RUNNING, and the task runs `active_slots` lists are the leases'
 * holders. Slot counts and leases change together, in one transaction.
 */
import {
  type ConcurrencyLease,
  type ConcurrencyLimitV2,
  NotFoundError,
  type Repositories,
  TASK_LEASE_TTL_SECONDS,
  type TagConcurrencyLimit,
  type TagSlotRelease,
} from "@prefect/db";
import type { AppContext } from "../../context.js";
import { locked, notFound } from "../../prefect/errors.js";
import { publishEvents } from "../events/bus.js";
import { lifecycleEvent } from "../events/lifecycle.js";
import { publishLimitEvent } from "./service.js";

const NOT_FOUND = "Concurrency limit not found";
const TAG_PREFIX = "tag:";

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** The limit as Prefect's v1 API shows it, with the task runs holding its slots. */
export interface TagLimitView {
  readonly limit: TagConcurrencyLimit;
  readonly holders: readonly string[];
}

/** A limit on the tag (v2 first, then a legacy row), with the task runs holding its slots. */
async function withHolders(db: Repositories, limit: TagConcurrencyLimit): Promise<TagLimitView> {
  if (limit.source !== "v2") return { limit, holders: limit.active_slots };
  const holders = (await db.concurrencyLeases.listHoldersForLimit(limit.id)).filter(({ holder }) => holder.type === "task_run").map(({ holder }) => holder.id);
  return { limit, holders };
}

/** A limit as the increment and decrement answers name it. */
export interface MinimalLimit {
  readonly id: string;
  readonly name: string;
  readonly limit: number;
}

/** Prefect's events for a deleted tag limit: the global limit's, or the legacy row's own kind. */
function publishDeleted(context: Context, limit: TagConcurrencyLimit, v2: ConcurrencyLimitV2 | null): void {
  if (v2) {
    publishLimitEvent(context, "deleted", v2);
    return;
  }
  publishEvents(context.events, [
    lifecycleEvent({
      kind: "concurrency-limit",
      action: "deleted",
      resourceId: `prefect.concurrency-limit.${limit.id}`,
      resourceName: limit.tag,
      payload: { tag: limit.tag, concurrency_limit: limit.concurrency_limit },
    }),
  ]);
}

/**
 * Drops the leases' hold on a limit that was deleted or reset (its slot count no longer reflects
 * them). Prefect revokes every lease on the limit; a lease that also holds slots on other limits that
 * still exist keeps those (it is narrowed to them), so they are still given back with it.
 */
async function releaseLeasesOn(tx: Repositories, limitId: string, only?: readonly ConcurrencyLease[]): Promise<void> {
  const affected = only ?? (await tx.concurrencyLeases.listLeasesForLimit(limitId));
  for (const lease of affected) {
    const remaining: string[] = [];
    for (const id of lease.resource_ids) if (id !== limitId && (await tx.concurrencyLimits.get(id))) remaining.push(id);
    if (remaining.length === 0) await tx.concurrencyLeases.revokeLease(lease.id);
    else await tx.concurrencyLeases.narrowLease(lease.id, remaining);
  }
}

/** Creates the tag's limit or sets a new one on it (`created` tells which). */
export async function createTagLimit(context: Context, input: { tag: string; concurrency_limit: number }): Promise<TagLimitView & { created: boolean }> {
  const { row, created } = await context.db.concurrencyLimits.createTagLimit(input);
  const v2 = await context.db.concurrencyLimits.get(row.id);
  if (v2) publishLimitEvent(context, created ? "created" : "updated", v2);
  return { ...(await withHolders(context.db, row)), created };
}

export async function readTagLimits(context: Context, page: { limit: number; offset: number }): Promise<TagLimitView[]> {
  const limits = await context.db.concurrencyLimits.readTagLimits(page);
  return Promise.all(limits.map((limit) => withHolders(context.db, limit)));
}

async function found(context: Context, read: Promise<TagConcurrencyLimit | null>): Promise<TagLimitView> {
  const limit = await read;
  if (!limit) throw notFound(NOT_FOUND);
  return withHolders(context.db, limit);
}

export const readTagLimit = (context: Context, id: string) => found(context, context.db.concurrencyLimits.getTagLimit(id));
export const readTagLimitByTag = (context: Context, tag: string) => found(context, context.db.concurrencyLimits.getTagLimitByTag(tag));

/** Takes a slot for the task run on each tag's limit (423 when one is full or zero). */
export async function incrementTagSlots(context: Context, names: readonly string[], taskRunId: string): Promise<MinimalLimit[]> {
  const result = await context.db.transaction(async (tx) => {
    const taken = await tx.concurrencyLimits.incrementTagSlots([...names], taskRunId);
    if (taken.status === "acquired" && taken.limits.length > 0) {
      await tx.concurrencyLeases.createLease(
        taken.limits.map((l) => l.id),
        TASK_LEASE_TTL_SECONDS,
        { slots: 1, holder: { type: "task_run", id: taskRunId } },
      );
    }
    return taken;
  });
  if (result.status === "zero_limit") {
    throw locked(`The concurrency limit on tag "${result.tag}" is 0 and will deadlock if the task tries to run again.`);
  }
  if (result.status === "limit_reached") {
    throw locked(`Concurrency limit for the ${result.tag} tag has been reached`, { "Retry-After": String(context.settings.concurrency.tagSlotWaitSeconds) });
  }
  return [
    ...result.limits.map((l) => ({ id: l.id, name: l.name.slice(TAG_PREFIX.length), limit: l.limit })),
    ...result.legacy.map((l) => ({ id: l.id, name: l.tag, limit: l.concurrency_limit })),
  ];
}

/** Gives back the task run's slots on each tag's limit (its leases there, taken out first). */
export async function decrementTagSlots(context: Context, names: readonly string[], taskRunId: string): Promise<MinimalLimit[]> {
  const released: TagSlotRelease = await context.db.transaction(async (tx) => {
    const limits = await tx.concurrencyLimits.readByNames(names.map((tag) => TAG_PREFIX + tag));
    const limitIds = new Set(limits.map((limit) => limit.id));
    const held = await tx.concurrencyLeases.listLeasesHeldBy({ type: "task_run", id: taskRunId });
    // Taken out first, so that no other release frees them again.
    const taken: ConcurrencyLease[] = [];
    for (const lease of held) {
      if (!lease.resource_ids.some((id) => limitIds.has(id))) continue;
      const got = await tx.concurrencyLeases.takeLease(lease.id);
      if (got) taken.push(got);
    }
    return tx.concurrencyLimits.decrementTagSlots(
      [...names],
      taskRunId,
      taken.map((lease) => ({ resource_ids: [...lease.resource_ids], slots: lease.metadata?.slots ?? 0 })),
    );
  });
  // Prefect names the global limits by their own name here (`tag:<tag>`), legacy rows by tag.
  return [...released.limits.map((l) => ({ id: l.id, name: l.name, limit: l.limit })), ...released.legacy.map((l) => ({ id: l.id, name: l.tag, limit: l.concurrency_limit }))];
}

/** Resets the tag's slots to the task runs given (their leases replace those on the limit). */
export async function resetTagLimit(context: Context, tag: string, slotOverride: readonly string[]): Promise<void> {
  const holders = [...new Set(slotOverride)];
  await context.db.transaction(async (tx) => {
    const before = await tx.concurrencyLimits.getTagLimitByTag(tag);
    // The leases on the limit before the reset: the reset's count replaces what they held.
    const previous = before?.source === "v2" ? await tx.concurrencyLeases.listLeasesForLimit(before.id) : [];
    const limit = await tx.concurrencyLimits.resetTagLimit(tag, holders);
    if (!limit) throw notFound(NOT_FOUND);
    if (limit.source !== "v2") return;
    await releaseLeasesOn(tx, limit.id, before?.id === limit.id ? previous : undefined);
    for (const taskRunId of holders) {
      await tx.concurrencyLeases.createLease([limit.id], TASK_LEASE_TTL_SECONDS, { slots: 1, holder: { type: "task_run", id: taskRunId } });
    }
  });
}

/** Deletes the tag limit `find` reads and drops the leases on it; unknown: 404. */
async function remove(context: Context, find: (db: Repositories) => Promise<TagConcurrencyLimit | null>, drop: (db: Repositories) => Promise<void>): Promise<void> {
  const { limit, v2 } = await context.db.transaction(async (tx) => {
    const limit = await find(tx);
    if (!limit) throw notFound(NOT_FOUND);
    const v2 = limit.source === "v2" ? await tx.concurrencyLimits.get(limit.id) : null;
    try {
      await drop(tx);
    } catch (error) {
      if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
      throw error;
    }
    if (limit.source === "v2") await releaseLeasesOn(tx, limit.id);
    return { limit, v2 };
  });
  publishDeleted(context, limit, v2);
}

export const deleteTagLimit = (context: Context, id: string) =>
  remove(
    context,
    (db) => db.concurrencyLimits.getTagLimit(id),
    (db) => db.concurrencyLimits.deleteTagLimit(id),
  );

export const deleteTagLimitByTag = (context: Context, tag: string) =>
  remove(
    context,
    (db) => db.concurrencyLimits.getTagLimitByTag(tag),
    (db) => db.concurrencyLimits.deleteTagLimitByTag(tag),
  );
