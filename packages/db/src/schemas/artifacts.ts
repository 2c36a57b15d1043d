/**
 * Artifacts (Prefect's `artifact` table) and artifact collections (`artifact_collection`: for each key,
 * a copy of the newest artifact with that key, pointed at by `latest_id`).
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { Uuid } from "./common.js";

export interface Artifact {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  key: string | null;
  type: string | null;
  description: string | null;
  /** Any JSON, with the key order it was written with. */
  data: unknown;
  metadata_: Record<string, string> | null;
  flow_run_id: string | null;
  task_run_id: string | null;
}

export interface ArtifactCollection {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  key: string;
  /** The newest artifact with this key (by created time); the fields below are copied from it. */
  latest_id: string;
  type: string | null;
  description: string | null;
  data: unknown;
  metadata_: Record<string, string> | null;
  flow_run_id: string | null;
  task_run_id: string | null;
}

/** Prefect's ArtifactKey: lowercase letters, numbers and dashes only. */
export const ArtifactKey = z.string().regex(/^[a-z0-9-]*$/, { message: "Artifact key must only contain lowercase letters, numbers, and dashes." });

const METADATA_VALUE_MAX = 500;

/** Any JSON value (refusing what JSON cannot hold: NaN, dates, functions...); null and left out are kept apart. */
const ArtifactData = z.unknown().pipe(z.json().nullish()).optional();

/** String to string; values longer than 500 characters are cut to 500 and marked with "...", as Prefect does. */
export const ArtifactMetadata = z.record(z.string(), z.string()).transform((metadata) => {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    const chars = [...value];
    out[key] = chars.length > METADATA_VALUE_MAX ? `${chars.slice(0, METADATA_VALUE_MAX).join("")}...` : value;
  }
  return out;
});

export const ArtifactCreate = z.object({
  id: Uuid.optional(),
  key: ArtifactKey.nullish(),
  type: z.string().nullish(),
  description: z.string().nullish(),
  data: ArtifactData,
  metadata_: ArtifactMetadata.nullish(),
  flow_run_id: Uuid.nullish(),
  task_run_id: Uuid.nullish(),
});
export type ArtifactCreate = z.input<typeof ArtifactCreate>;

/** Fields left out are kept; fields given (null included) are written. */
export const ArtifactUpdate = z.object({
  data: ArtifactData,
  description: z.string().nullish(),
  metadata_: ArtifactMetadata.nullish(),
});
export type ArtifactUpdate = z.input<typeof ArtifactUpdate>;
