/**
 * Global concurrency and rate limits (Prefect's v2 limits): created (409 for a taken name), read,
 * updated and deleted by id or by name; slots taken on every named limit at once or on none (423
 * Locked with Prefect's `Retry-After` when one is full) and given back; and leases: slots held for a
 * while, renewed by their holder, given back with the lease, or by the repossessor once the lease
 * lapses. Each change of a limit publishes Prefect's `prefect.concurrency-limit.*` lifecycle event.
 *
 * Slot counts and leases live in the database, where one conditional UPDATE per call decides: any
 * number of servers share them safely, and a lease taken through one server is renewed or released
 * through any other. A lease and the slots it holds change in one transaction; an unknown lease
 * answers as Prefect answers (renew: 410, release: nothing freed).
 */
import {
  AlreadyExistsError,
  type ConcurrencyLease,
  type ConcurrencyLeaseHolder,
  type ConcurrencyLimitV2,
  type ConcurrencyLimitV2Create,
  type ConcurrencyLimitV2Update,
  InvalidError,
  NotFoundError,
  now,
  type Repositories,
  type RetryHint,
  type SlotAcquisition,
  type SlotWaitSettings,
  secondsBetween,
} from "@prefect/db";
import { clampedPoissonInterval } from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import type { ServerSettings } from "../../settings.js";
import { gone, integrityConflict, locked, notFound, unprocessableDetail } from "../../prefect/errors.js";
import { uuidOrNull } from "../../prefect/ids.js";
import { publishEvents } from "../events/bus.js";
import { lifecycleEvent } from "../events/lifecycle.js";

const NOT_FOUND = "Concurrency Limit not found";
const LEASE_GONE = "Lease not found - it may have expired or been revoked";
/** Prefect's default `lease_duration` (seconds). */
export const DEFAULT_LEASE_SECONDS = 300;
/** The largest slot count a limit can hold (the column is a 32-bit integer). */
const MAX_SLOTS = 2_147_483_647;

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** The server's bounds on how long refused callers are told to wait. */
export function slotWaits(settings: ServerSettings): SlotWaitSettings {
  return { tag_slot_wait_seconds: settings.concurrency.tagSlotWaitSeconds, maximum_slot_wait_seconds: settings.concurrency.maximumSlotWaitSeconds };
}

/** Publishes Prefect's `prefect.concurrency-limit.<action>` event for a global (or `tag:`) limit. */
export function publishLimitEvent(context: Pick<AppContext, "events">, action: "created" | "updated" | "deleted", limit: ConcurrencyLimitV2): void {
  publishEvents(context.events, [
    lifecycleEvent({
      kind: "concurrency-limit",
      action,
      resourceId: `prefect.concurrency-limit.${limit.id}`,
      resourceName: limit.name,
      payload: { name: limit.name, limit: limit.limit, active: limit.active, slot_decay_per_second: limit.slot_decay_per_second },
    }),
  ]);
}

export async function createLimit(context: Context, input: ConcurrencyLimitV2Create): Promise<ConcurrencyLimitV2> {
  let limit: ConcurrencyLimitV2;
  try {
    limit = await context.db.concurrencyLimits.create(input);
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw integrityConflict();
    throw error;
  }
  publishLimitEvent(context, "created", limit);
  return limit;
}

export const readLimits = (db: Repositories, page: { limit: number; offset: number }) => db.concurrencyLimits.read(page);

/** The limit by id (any form Python's `UUID()` reads) or else by name. */
export async function readLimit(db: Repositories, idOrName: string): Promise<ConcurrencyLimitV2> {
  const id = uuidOrNull(idOrName);
  const limit = id ? await db.concurrencyLimits.get(id) : await db.concurrencyLimits.getByName(idOrName);
  if (!limit) throw notFound(NOT_FOUND);
  return limit;
}

export async function updateLimit(context: Context, idOrName: string, patch: ConcurrencyLimitV2Update): Promise<void> {
  const id = uuidOrNull(idOrName);
  let limit: ConcurrencyLimitV2;
  try {
    limit = id ? await context.db.concurrencyLimits.update(id, patch) : await context.db.concurrencyLimits.updateByName(idOrName, patch);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    if (error instanceof AlreadyExistsError) throw integrityConflict();
    throw error;
  }
  publishLimitEvent(context, "updated", limit);
}

export async function deleteLimit(context: Context, idOrName: string): Promise<void> {
  const id = uuidOrNull(idOrName);
  const deleted = await context.db.transaction(async (tx) => {
    const found = id ? await tx.concurrencyLimits.get(id) : await tx.concurrencyLimits.getByName(idOrName);
    if (found) await tx.concurrencyLimits.delete(found.id);
    return found;
  });
  if (!deleted) throw notFound(NOT_FOUND);
  publishLimitEvent(context, "deleted", deleted);
}

/**
 * Prefect's 423 for refused slots: `Retry-After` is a Poisson-jittered interval around the blocking
 * limit's expected wait (its average occupancy, capped, or its decay rate).
 */
function slotsRefused(hint: RetryHint): Error {
  const average = hint.average_interval_seconds;
  const retryAfter = average > 0 && Number.isFinite(average) ? clampedPoissonInterval(average) : 0;
  return locked("Locked", { "Retry-After": String(retryAfter) });
}

/**
 * Takes `slots` on every active limit named, or on none. Returns every limit found (Prefect's answer
 * lists inactive ones too); refusals are Prefect's 422 and 423 answers.
 */
export function acquireSlots(context: Context, names: readonly string[], slots: number, mode: "concurrency" | "rate_limit") {
  return takeSlots(context.db, context.settings, names, slots, mode);
}

async function takeSlots(db: Repositories, settings: ServerSettings, names: readonly string[], slots: number, mode: "concurrency" | "rate_limit") {
  let result: SlotAcquisition;
  try {
    result = await db.concurrencyLimits.incrementActiveSlots({ names }, slots, { mode, ...slotWaits(settings) });
  } catch (error) {
    // "Slots requested is greater than the limit" and the rate-limit refusal: Prefect's plain 422.
    if (error instanceof InvalidError && error.issues.length === 0) throw unprocessableDetail(error.message);
    throw error;
  }
  if (!result.acquired) throw slotsRefused(result.retry);
  return result.limits;
}

/**
 * `acquireSlots`, the slots held under a lease on the limits that gave them (inactive ones took
 * none); the slots and the lease are written together.
 */
export function acquireSlotsWithLease(
  context: Context,
  names: readonly string[],
  slots: number,
  mode: "concurrency" | "rate_limit",
  leaseSeconds: number,
  holder: ConcurrencyLeaseHolder | null | undefined,
) {
  return context.db.transaction(async (tx) => {
    const limits = await takeSlots(tx, context.settings, names, slots, mode);
    const lease = await tx.concurrencyLeases.createLease(
      limits.filter((l) => l.active).map((l) => l.id),
      leaseSeconds,
      { slots, holder: holder ?? null },
    );
    return { lease, limits };
  });
}

/** Gives slots back on the limits named (more than a limit can hold frees them all). */
export function releaseSlots(context: Context, names: readonly string[], slots: number, occupancySeconds: number | null) {
  return context.db.concurrencyLimits.decrementActiveSlots({ names }, Math.min(slots, MAX_SLOTS), { ...slotWaits(context.settings), occupancy_seconds: occupancySeconds });
}

/**
 * Gives back the slots of a lease its caller has taken out (in the same transaction, so no other
 * caller can free them again, and a failure puts the lease back), folding how long they were held
 * into the limits' average occupancy.
 */
export async function freeLeaseSlots(tx: Repositories, lease: ConcurrencyLease, waits: SlotWaitSettings): Promise<void> {
  const occupancy = Math.max(0, secondsBetween(now(), lease.created_at));
  await tx.concurrencyLimits.decrementActiveSlots({ ids: lease.resource_ids }, Math.min(lease.metadata?.slots ?? 0, MAX_SLOTS), {
    ...waits,
    occupancy_seconds: occupancy > 0 ? occupancy : null,
  });
}

/** Releases a lease's slots; an unknown lease frees nothing. Taking it out first makes the release happen once. */
export async function releaseLease(context: Context, leaseId: string): Promise<void> {
  await context.db.transaction(async (tx) => {
    const lease = await tx.concurrencyLeases.takeLease(leaseId);
    if (lease) await freeLeaseSlots(tx, lease, slotWaits(context.settings));
  });
}

export async function renewLease(context: Context, leaseId: string, seconds: number): Promise<void> {
  if (!(await context.db.concurrencyLeases.renewLease(leaseId, seconds))) throw gone(LEASE_GONE);
}
