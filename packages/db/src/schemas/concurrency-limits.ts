/**
 * Concurrency limits: Prefect's global (v2) limits, and the tag-based (v1) limits its API now keeps as
 * v2 limits named `tag:<tag>`. Field names are Prefect's.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { Uuid } from "./common.js";

/** Prefect's `Name`: not empty, and none of `/ % & > <`. */
export const LimitName = z.string().regex(/^[^/%&><]+$/, { message: "Name must not be empty nor contain any of the characters / % & > <" });

const MAX_INT = 2_147_483_647;
const Count = z.number().int().min(0).max(MAX_INT);
const Rate = z.number().min(0);

/** A global concurrency limit (or rate limit, when `slot_decay_per_second` > 0). */
export interface ConcurrencyLimitV2 {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  active: boolean;
  name: string;
  limit: number;
  /** Occupied slots; reads give the value after slot decay (rate limits), as Prefect's API does. */
  active_slots: number;
  denied_slots: number;
  slot_decay_per_second: number;
  avg_slot_occupancy_seconds: number;
}

export const ConcurrencyLimitV2Create = z.strictObject({
  active: z.boolean().default(true),
  name: LimitName,
  limit: Count,
  active_slots: Count.default(0),
  denied_slots: Count.default(0),
  slot_decay_per_second: Rate.default(0),
});
export type ConcurrencyLimitV2Create = z.input<typeof ConcurrencyLimitV2Create>;

/** Fields left out (or null) are left as they are. */
export const ConcurrencyLimitV2Update = z.strictObject({
  active: z.boolean().nullish(),
  name: LimitName.nullish(),
  limit: Count.nullish(),
  active_slots: Count.nullish(),
  denied_slots: Count.nullish(),
  slot_decay_per_second: Rate.nullish(),
});
export type ConcurrencyLimitV2Update = z.input<typeof ConcurrencyLimitV2Update>;

/** Which limits a slot operation addresses: by name (unknown names are ignored) or by id. */
export type ConcurrencyLimitTarget = { readonly names: readonly string[] } | { readonly ids: readonly string[] };

/**
 * Prefect's server settings that bound how long a refused caller is told to wait, which also clamp
 * how fast denied slots decay on concurrency (non-decaying) limits.
 */
export const SlotWaitSettings = z.strictObject({
  /** `server.tasks.tag_concurrency_slot_wait_seconds`, for limits named `tag:...` (Prefect's default 10). */
  tag_slot_wait_seconds: z.number().min(0).default(10),
  /** `server.concurrency.maximum_concurrency_slot_wait_seconds`, for other limits (Prefect's default 30). */
  maximum_slot_wait_seconds: z.number().min(0).default(30),
});
export type SlotWaitSettings = z.input<typeof SlotWaitSettings>;

export const SlotIncrementOptions = SlotWaitSettings.extend({
  /** `rate_limit` refuses limits without slot decay. */
  mode: z.enum(["concurrency", "rate_limit"]).default("concurrency"),
});
export type SlotIncrementOptions = z.input<typeof SlotIncrementOptions>;

export const SlotDecrementOptions = SlotWaitSettings.extend({
  /** How long the slots were held, feeding the limit's average occupancy. */
  occupancy_seconds: z.number().min(0).nullish(),
});
export type SlotDecrementOptions = z.input<typeof SlotDecrementOptions>;

/** What a refused caller needs to build Prefect's `Retry-After` (before its Poisson jitter). */
export interface RetryHint {
  /** The limit that blocks most (Prefect's choice: most denied slots per slot of limit, or per decay). */
  readonly blocking_limit: ConcurrencyLimitV2;
  /** Prefect's average retry interval in seconds: occupancy-based (capped) or decay-based. */
  readonly average_interval_seconds: number;
}

export type SlotAcquisition =
  | {
      readonly acquired: true;
      /** Every limit found for the target (active or not), as read when the call began. */
      readonly limits: ConcurrencyLimitV2[];
    }
  | {
      readonly acquired: false;
      readonly limits: ConcurrencyLimitV2[];
      readonly retry: RetryHint;
    };

/** A tag-based (v1) limit, as Prefect's v1 API shows it. */
export interface TagConcurrencyLimit {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  tag: string;
  concurrency_limit: number;
  /**
   * Task runs holding a slot. Only legacy v1 rows store them; for limits kept as `tag:` v2 limits the
   * holders live with the leases, outside the database, and this is empty.
   */
  active_slots: string[];
  active: boolean;
  /** `v2`: a `tag:<tag>` global limit (every limit created now); `v1`: a legacy row of a pre-2025 database. */
  source: "v2" | "v1";
}

export const TagConcurrencyLimitCreate = z.strictObject({
  tag: z.string().regex(/^[^/%&><]*$/, { message: "Tag must not contain any of the characters / % & > <" }),
  concurrency_limit: Count,
});
export type TagConcurrencyLimitCreate = z.input<typeof TagConcurrencyLimitCreate>;

/** The leases a task run holds, as the lease storage knows them: the limits of each, and its slots. */
export const HeldLease = z.strictObject({
  resource_ids: z.array(Uuid),
  slots: Count,
});
export type HeldLease = z.input<typeof HeldLease>;

export type TagSlotAcquisition =
  | {
      readonly status: "acquired";
      /** The `tag:` v2 limits that gave a slot: the lease to record covers these. */
      readonly limits: ConcurrencyLimitV2[];
      /** Legacy v1 rows that now list the task run. */
      readonly legacy: TagConcurrencyLimit[];
    }
  | {
      /** A limit of 0 on `tag`: running would deadlock (Prefect aborts). Nothing was taken. */
      readonly status: "zero_limit";
      readonly tag: string;
    }
  | {
      /** The limit on `tag` is full. Nothing was taken. */
      readonly status: "limit_reached";
      readonly tag: string;
      /** The active v2 limits the call tried to take, as read when it began. */
      readonly limits: ConcurrencyLimitV2[];
    };

export interface TagSlotRelease {
  /** The `tag:` v2 limits of the tags. */
  readonly limits: ConcurrencyLimitV2[];
  /** Legacy v1 rows the task run was removed from. */
  readonly legacy: TagConcurrencyLimit[];
}
