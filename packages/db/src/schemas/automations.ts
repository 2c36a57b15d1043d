/**
 * Automations (Prefect's `automation` table), the resources they are related to, and the state the
 * triggers service keeps for them: buckets of counted events, child firings of composite triggers, and
 * events waiting for the event they follow. Trigger and action definitions are stored as given (JSON);
 * their detailed validation belongs to the API layer.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { TimestampSchema, Uuid } from "./common.js";

/** A JSON object (a trigger, an action, an event). */
export const JsonDocument = z.record(z.string(), z.unknown()).pipe(z.record(z.string(), z.json()));
export type JsonDocument = Record<string, unknown>;

export interface Automation {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  description: string;
  enabled: boolean;
  tags: string[];
  trigger: JsonDocument;
  actions: JsonDocument[];
  actions_on_trigger: JsonDocument[];
  actions_on_resolve: JsonDocument[];
}

const actionList = z.array(JsonDocument);

export const AutomationCreate = z.object({
  id: Uuid.optional(),
  name: z.string(),
  description: z.string().default(""),
  enabled: z.boolean().default(true),
  tags: z.array(z.string()).default([]),
  trigger: JsonDocument,
  actions: actionList,
  actions_on_trigger: actionList.default([]),
  actions_on_resolve: actionList.default([]),
  /** The resource this automation belongs to (`prefect.resource.id`), related to it as owned. */
  owner_resource: z.string().nullish(),
});
export type AutomationCreate = z.input<typeof AutomationCreate>;

/**
 * Prefect's PUT: name, trigger and actions are required and replaced; the other fields are replaced
 * when given and kept when left out.
 */
export const AutomationUpdate = z.object({
  name: z.string(),
  description: z.string().optional(),
  enabled: z.boolean().optional(),
  tags: z.array(z.string()).optional(),
  trigger: JsonDocument,
  actions: actionList,
  actions_on_trigger: actionList.optional(),
  actions_on_resolve: actionList.optional(),
});
export type AutomationUpdate = z.input<typeof AutomationUpdate>;

/** Prefect's PATCH (AutomationPartialUpdate): only `enabled`, true when left out. */
export const AutomationPartialUpdate = z.object({ enabled: z.boolean().default(true) });
export type AutomationPartialUpdate = z.input<typeof AutomationPartialUpdate>;

export interface AutomationRelatedResource {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  automation_id: string;
  /** Nullable in Prefect's table; the repositories always write one. */
  resource_id: string | null;
  automation_owned_by_resource: boolean;
}

/** The latest change to any automation and how many there are (the triggers service reloads when it moves). */
export interface AutomationStateSnapshot {
  latest_updated: Timestamp | null;
  count: number;
}

export interface AutomationBucket {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  automation_id: string;
  trigger_id: string;
  bucketing_key: string[];
  /** The last event counted into the bucket (a ReceivedEvent). */
  last_event: JsonDocument | null;
  start: Timestamp;
  end: Timestamp;
  count: number;
  last_operation: string | null;
  triggered_at: Timestamp | null;
}

/** Identifies one bucket: Prefect's unique (automation_id, trigger_id, bucketing_key). */
export const BucketKey = z.object({
  automation_id: Uuid,
  trigger_id: Uuid,
  bucketing_key: z.array(z.string()),
});
export type BucketKey = z.input<typeof BucketKey>;

const count = z.number().int();

/** Starts the bucket unless it exists (then only `last_event`, when given, is replaced). */
export const BucketEnsure = BucketKey.extend({
  start: TimestampSchema,
  end: TimestampSchema,
  last_event: JsonDocument.nullish(),
  initial_count: count.default(0),
});
export type BucketEnsure = z.input<typeof BucketEnsure>;

/** Starts the bucket afresh, replacing any bucket with the same key. */
export const BucketStart = BucketKey.extend({
  start: TimestampSchema,
  end: TimestampSchema,
  count,
  triggered_at: TimestampSchema.nullish(),
  last_event: JsonDocument.nullish(),
});
export type BucketStart = z.input<typeof BucketStart>;

/** Adds `count` to the bucket (starting it with `start`/`end` and that count if it is missing). */
export const BucketIncrement = BucketKey.extend({
  start: TimestampSchema,
  end: TimestampSchema,
  count,
  last_event: JsonDocument.nullish(),
});
export type BucketIncrement = z.input<typeof BucketIncrement>;

export interface CompositeTriggerChildFiring {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  automation_id: string;
  parent_trigger_id: string;
  child_trigger_id: string;
  child_firing_id: string;
  child_fired_at: Timestamp | null;
  /** The child trigger's Firing. */
  child_firing: JsonDocument;
}

export const ChildFiringUpsert = z.object({
  automation_id: Uuid,
  parent_trigger_id: Uuid,
  child_trigger_id: Uuid,
  child_firing_id: Uuid,
  child_fired_at: TimestampSchema.nullish(),
  child_firing: JsonDocument,
});
export type ChildFiringUpsert = z.input<typeof ChildFiringUpsert>;

export interface AutomationEventFollower {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  scope: string;
  leader_event_id: string;
  follower_event_id: string;
  received: Timestamp;
  /** The follower event (a ReceivedEvent). */
  follower: JsonDocument;
}

export const FollowerCreate = z.object({
  scope: z.string().default(""),
  leader_event_id: Uuid,
  follower_event_id: Uuid,
  received: TimestampSchema,
  follower: JsonDocument,
});
export type FollowerCreate = z.input<typeof FollowerCreate>;

/** One action of a firing waiting in the actions service's queue (its TriggeredAction as JSON). */
export interface AutomationActionQueueEntry {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  automation_id: string;
  action_index: number;
  triggered_action: JsonDocument;
  /** When the action may be taken (again): a claim holds it until then. */
  available_at: Timestamp;
  /** How many times it has been taken. */
  attempts: number;
}

export const ActionQueueEntryCreate = z.object({
  automation_id: Uuid,
  action_index: z.number().int().min(0),
  triggered_action: JsonDocument,
});
export type ActionQueueEntryCreate = z.input<typeof ActionQueueEntryCreate>;
