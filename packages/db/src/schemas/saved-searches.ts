/**
 * Saved searches: named filter sets the Prefect UI keeps.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";

/** One filter of a saved search (Prefect's SavedSearchFilter); `value` is any JSON, and required. */
export const SavedSearchFilter = z.object({
  object: z.string(),
  property: z.string(),
  type: z.string(),
  operation: z.string(),
  value: z.unknown(),
});
export type SavedSearchFilter = z.output<typeof SavedSearchFilter>;

export interface SavedSearch {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  filters: SavedSearchFilter[];
}

export const SavedSearchCreate = z.strictObject({
  name: z.string(),
  filters: z.array(SavedSearchFilter).default([]),
});
export type SavedSearchCreate = z.input<typeof SavedSearchCreate>;
