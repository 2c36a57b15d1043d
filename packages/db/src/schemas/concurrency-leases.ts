/**
 * Concurrency leases (Prefect's `ConcurrencyLeaseStorage`): which holder (a task run, a flow run, a
 * deployment) occupies how many slots on which concurrency limits, until when. The slot counts
 * themselves live in `concurrency_limit_v2.active_slots`; the leases say who gives them back.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";

export const ConcurrencyLeaseHolder = z.strictObject({
  type: z.enum(["flow_run", "task_run", "deployment"]),
  id: z.guid(),
});
export type ConcurrencyLeaseHolder = z.output<typeof ConcurrencyLeaseHolder>;

export const ConcurrencyLeaseMetadata = z.strictObject({
  slots: z.number().int().nonnegative(),
  holder: ConcurrencyLeaseHolder.nullish(),
});
export type ConcurrencyLeaseMetadata = z.input<typeof ConcurrencyLeaseMetadata>;

export interface ConcurrencyLease {
  readonly id: string;
  readonly resource_ids: readonly string[];
  readonly expiration: Timestamp;
  readonly created_at: Timestamp;
  readonly metadata: { readonly slots: number; readonly holder?: ConcurrencyLeaseHolder | null } | null;
}

/** The lease's row, as the table holds it. */
export interface ConcurrencyLeaseRow {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  resource_ids: string[];
  expiration: Timestamp;
  slots: number | null;
  holder_type: string | null;
  holder_id: string | null;
}

/** Prefect's `V1_LEASE_TTL`: task runs hold tag slots for ~100 years (until they stop running). */
export const TASK_LEASE_TTL_SECONDS = 100 * 365 * 24 * 60 * 60;
