/**
 * Flow run inputs: keyed values sent to a paused or suspended flow run (Prefect's FlowRunInput).
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { Uuid } from "./common.js";

/** Prefect validates input keys as lowercase letters, numbers and dashes only (URL-safe). */
export const FlowRunInputKey = z.string().regex(/^[a-z0-9-]*$/, { message: "key must only contain lowercase letters, numbers, and dashes." });

export interface FlowRunInput {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  flow_run_id: string;
  key: string;
  value: string;
  sender: string | null;
}

export const FlowRunInputCreate = z.strictObject({
  flow_run_id: Uuid,
  key: FlowRunInputKey,
  value: z.string(),
  sender: z.string().nullish(),
});
export type FlowRunInputCreate = z.input<typeof FlowRunInputCreate>;

/** Prefect's input filter: keys starting with `prefix`, without `exclude_keys`, oldest first, `limit` of them. */
export const FlowRunInputFilter = z.strictObject({
  prefix: z.string(),
  limit: z.number().int().min(0).default(1),
  exclude_keys: z.array(z.string()).default([]),
});
export type FlowRunInputFilter = z.input<typeof FlowRunInputFilter>;
