/**
 * What the triggers service stores between events, as Prefect's `triggers.py`,
 * `models/composite_trigger_child_firing.py` and `ordering/db.py` do: buckets counting events per
 * trigger and bucketing key, the child firings of composite triggers, and events that arrived before
 * the event they follow. Every upsert is one `INSERT ... ON CONFLICT ... DO UPDATE` on Prefect's
 * unique key, returning the row as it now is. And the actions service's queue: the actions of each
 * firing, written in the transaction that fired, each taken by one process at a time.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { page } from "../filters.js";
import { checkId } from "../ids.js";
import {
  type AutomationActionQueueEntry,
  ActionQueueEntryCreate,
  type AutomationBucket,
  type AutomationEventFollower,
  BucketEnsure,
  BucketIncrement,
  BucketKey,
  BucketStart,
  ChildFiringUpsert,
  type CompositeTriggerChildFiring,
  FollowerCreate,
} from "../schemas/automations.js";
import { Limit, Offset, TimestampSchema, Uuid } from "../schemas/common.js";
import { type Sql, sql } from "../sql.js";
import { insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { addSeconds, now, type Timestamp, toMicros } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { orderBy } from "./run-states.js";

export interface AutomationStateRepository {
  /** The bucket of (automation, trigger, bucketing key), or null. */
  readBucket(key: BucketKey): Promise<AutomationBucket | null>;
  /** The trigger's buckets by start time, a page at a time. */
  readBuckets(automationId: string, triggerId: string, page?: { limit?: number; offset?: number }): Promise<AutomationBucket[]>;
  /** Starts the bucket unless there is one (then only `last_event`, when given, changes); returns the bucket. */
  ensureBucket(input: BucketEnsure): Promise<AutomationBucket>;
  /** Starts the bucket afresh with the given window and count, replacing any bucket with the same key. */
  startNewBucket(input: BucketStart): Promise<AutomationBucket>;
  /** Adds `count` to the bucket (inserting it with that count and window when missing); `last_event` replaces the last one when given. */
  incrementBucket(input: BucketIncrement): Promise<AutomationBucket>;
  /** False when there was no such bucket. */
  removeBucket(key: BucketKey): Promise<boolean>;
  /** Removes the trigger's buckets whose count reached `threshold`; returns how many. */
  removeBucketsExceedingThreshold(automationId: string, triggerId: string, threshold: number): Promise<number>;
  /** Removes every bucket of the automation; returns how many. */
  removeBuckets(automationId: string): Promise<number>;
  /** Removes buckets (of any automation) whose window ended at or before `endedBy`; returns how many. */
  sweepClosedBuckets(endedBy: Timestamp | string): Promise<number>;

  /**
   * Inside a transaction: holds the automation's row lock until the transaction ends, so concurrent
   * evaluations of its composite triggers take turns (PostgreSQL; SQLite's write transactions are
   * exclusive already). False when there is no such automation.
   */
  lockAutomation(automationId: string): Promise<boolean>;
  /** Records the latest firing of a child trigger of a composite trigger (one per child). */
  upsertChildFiring(input: ChildFiringUpsert): Promise<CompositeTriggerChildFiring>;
  /** The recorded child firings of a composite trigger, optionally only of the given children, oldest first. */
  readChildFirings(automationId: string, parentTriggerId: string, childTriggerIds?: readonly string[]): Promise<CompositeTriggerChildFiring[]>;
  /** Deletes the given child firings (by firing id); returns the firing ids it deleted, so a racing caller can tell. */
  clearChildFirings(automationId: string, parentTriggerId: string, firingIds: readonly string[]): Promise<string[]>;
  /** Deletes the composite trigger's child firings that fired before `firedBefore`; returns how many. */
  clearOldChildFirings(automationId: string, parentTriggerId: string, firedBefore: Timestamp | string): Promise<number>;

  /** Records an event waiting for its leader in a scope (again: replaces the earlier record). */
  addFollower(input: FollowerCreate): Promise<AutomationEventFollower>;
  /** The events of a scope waiting for `leaderEventId`, in the order they occurred. */
  readFollowers(scope: string, leaderEventId: string): Promise<AutomationEventFollower[]>;
  /** Forgets one waiting event; false when it was not recorded. */
  removeFollower(scope: string, followerEventId: string): Promise<boolean>;
  /** Removes and returns the events of a scope received before `receivedBefore` (their leader never came), in the order they occurred. */
  takeLostFollowers(scope: string, receivedBefore: Timestamp | string): Promise<AutomationEventFollower[]>;

  /** Queues actions of a firing, available now. */
  enqueueActions(entries: readonly ActionQueueEntryCreate[]): Promise<AutomationActionQueueEntry[]>;
  /**
   * Takes up to `limit` available actions, oldest first, holding each for `holdSeconds` (then it is
   * available again, for when its taker died) and counting the attempt. Concurrent takers never take
   * the same action (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one statement, one writer).
   */
  claimActions(limit: number, holdSeconds: number): Promise<AutomationActionQueueEntry[]>;
  /** Removes an action that was acted on; false when it was not queued (any more). */
  finishAction(id: string): Promise<boolean>;
  /** Makes a taken action available again at `availableAt` (a retry); false when it was not queued. */
  releaseAction(id: string, availableAt: Timestamp | string): Promise<boolean>;
  /** The queued actions (taken or not), oldest first. */
  readQueuedActions(): Promise<AutomationActionQueueEntry[]>;
}

const B = tables.automation_bucket;
const F = tables.composite_trigger_child_firing;
const E = tables.automation_event_follower;
const A = tables.automation_action_queue;

const PageInput = z.object({ limit: Limit.nullish(), offset: Offset.nullish() });
const IdList = z.array(Uuid);

/** When the follower event occurred (from the event itself), falling back to when it was received. */
function occurredMicros(row: AutomationEventFollower): number {
  const occurred = row.follower.occurred;
  if (typeof occurred === "string") {
    try {
      return toMicros(occurred);
    } catch {
      // an unparseable time sorts by reception
    }
  }
  return toMicros(row.received);
}

const inOccurredOrder = (rows: AutomationEventFollower[]) => rows.sort((a, b) => occurredMicros(a) - occurredMicros(b));

export function automationStateRepository({ q }: RepositoryContext): AutomationStateRepository {
  const d = q.dialect;
  const decodeBucket = rowDecoder<AutomationBucket>(d, B);
  const decodeFiring = rowDecoder<CompositeTriggerChildFiring>(d, F);
  const decodeFollower = rowDecoder<AutomationEventFollower>(d, E);
  const decodeAction = rowDecoder<AutomationActionQueueEntry>(d, A);
  const bucketColumns = selectList(B, "automation_bucket");
  const byAge = (rows: AutomationActionQueueEntry[]) => rows.sort((a, b) => toMicros(a.created) - toMicros(b.created) || (a.id < b.id ? -1 : 1));

  const bucketWhere = (key: z.output<typeof BucketKey>, alias: string) =>
    sql`${sql.raw(alias)}.automation_id = ${key.automation_id} AND ${sql.raw(alias)}.trigger_id = ${key.trigger_id} AND ${sql.raw(alias)}.bucketing_key = ${sql.json(key.bucketing_key)}`;

  /** One upsert of a bucket: insert `values`, or apply `onConflict` to the existing row. */
  const upsertBucket = async (values: Record<string, unknown>, onConflict: Sql) => {
    const rows = await q.query(
      insertSql(B, values, sql` ON CONFLICT ("automation_id", "trigger_id", "bucketing_key") DO UPDATE SET ${onConflict} RETURNING ${bucketColumns}`),
    );
    return decodeBucket(rows[0]!);
  };

  const newBucket = (input: z.output<typeof BucketKey> & { start: Timestamp; end: Timestamp }, rest: Record<string, unknown>) => {
    const ts = now();
    return {
      id: randomUUID(),
      created: ts,
      updated: ts,
      automation_id: input.automation_id,
      trigger_id: input.trigger_id,
      bucketing_key: input.bucketing_key,
      start: input.start,
      end: input.end,
      ...rest,
    };
  };

  return {
    async readBucket(key) {
      const k = parseInput(BucketKey, key, "bucket key");
      const rows = await q.query(sql`SELECT ${selectList(B, "b")} FROM automation_bucket b WHERE ${bucketWhere(k, "b")}`);
      return rows[0] ? decodeBucket(rows[0]) : null;
    },

    async readBuckets(automationId, triggerId, options = {}) {
      const automation = checkId(automationId, "automation id");
      const trigger = checkId(triggerId, "trigger id");
      const { limit, offset } = parseInput(PageInput, options, "page");
      const rows = await q.query(
        sql`SELECT ${selectList(B, "b")} FROM automation_bucket b WHERE b.automation_id = ${automation} AND b.trigger_id = ${trigger}
            ORDER BY b."start", b.id${page(d, limit, offset)}`,
      );
      return rows.map(decodeBucket);
    },

    async ensureBucket(input) {
      const data = parseInput(BucketEnsure, input, "bucket");
      return upsertBucket(
        newBucket(data, { count: data.initial_count, last_event: data.last_event ?? null, last_operation: "ensure_bucket[insert]" }),
        sql`"last_event" = COALESCE(excluded."last_event", automation_bucket."last_event")`,
      );
    },

    async startNewBucket(input) {
      const data = parseInput(BucketStart, input, "bucket");
      return upsertBucket(
        newBucket(data, {
          count: data.count,
          triggered_at: data.triggered_at ?? null,
          last_event: data.last_event ?? null,
          last_operation: "start_new_bucket[insert]",
        }),
        sql`"start" = excluded."start", "end" = excluded."end", "count" = excluded."count", "triggered_at" = excluded."triggered_at",
            "last_event" = excluded."last_event", "last_operation" = ${"start_new_bucket[update]"}, "updated" = excluded."updated"`,
      );
    },

    async incrementBucket(input) {
      const data = parseInput(BucketIncrement, input, "bucket");
      return upsertBucket(
        newBucket(data, { count: data.count, last_event: data.last_event ?? null, last_operation: "increment_bucket[insert]" }),
        sql`"count" = automation_bucket."count" + excluded."count", "last_event" = COALESCE(excluded."last_event", automation_bucket."last_event"),
            "last_operation" = ${"increment_bucket[update]"}, "updated" = excluded."updated"`,
      );
    },

    async removeBucket(key) {
      const k = parseInput(BucketKey, key, "bucket key");
      return (await q.execute(sql`DELETE FROM automation_bucket WHERE ${bucketWhere(k, "automation_bucket")}`)) > 0;
    },

    async removeBucketsExceedingThreshold(automationId, triggerId, threshold) {
      const automation = checkId(automationId, "automation id");
      const trigger = checkId(triggerId, "trigger id");
      const limit = parseInput(z.number().int(), threshold, "threshold");
      return q.execute(sql`DELETE FROM automation_bucket WHERE automation_id = ${automation} AND trigger_id = ${trigger} AND "count" >= ${limit}`);
    },

    async removeBuckets(automationId) {
      return q.execute(sql`DELETE FROM automation_bucket WHERE automation_id = ${checkId(automationId, "automation id")}`);
    },

    async sweepClosedBuckets(endedBy) {
      const ts = parseInput(TimestampSchema, endedBy, "end time");
      return q.execute(sql`DELETE FROM automation_bucket WHERE "end" <= ${ts}`);
    },

    async lockAutomation(automationId) {
      const id = checkId(automationId, "automation id");
      const rows = await q.query(sql`SELECT a.id FROM automation a WHERE a.id = ${id}${d.forUpdate("a")}`);
      return rows.length > 0;
    },

    async upsertChildFiring(input) {
      const data = parseInput(ChildFiringUpsert, input, "child firing");
      const ts = now();
      const rows = await q.query(
        insertSql(
          F,
          { id: randomUUID(), created: ts, updated: ts, ...data, child_fired_at: data.child_fired_at ?? null },
          sql` ON CONFLICT ("automation_id", "parent_trigger_id", "child_trigger_id") DO UPDATE SET
            "child_firing_id" = excluded."child_firing_id", "child_fired_at" = excluded."child_fired_at",
            "child_firing" = excluded."child_firing", "updated" = excluded."updated"
            RETURNING ${selectList(F, "composite_trigger_child_firing")}`,
        ),
      );
      return decodeFiring(rows[0]!);
    },

    async readChildFirings(automationId, parentTriggerId, childTriggerIds) {
      const automation = checkId(automationId, "automation id");
      const parent = checkId(parentTriggerId, "parent trigger id");
      const children = childTriggerIds === undefined ? null : parseInput(IdList, childTriggerIds, "child trigger ids");
      const rows = await q.query(
        sql`SELECT ${selectList(F, "f")} FROM composite_trigger_child_firing f WHERE ${sql.and([
          sql`f.automation_id = ${automation}`,
          sql`f.parent_trigger_id = ${parent}`,
          children ? d.inList(sql.raw("f.child_trigger_id"), children) : sql.empty,
        ])} ORDER BY ${orderBy([["f.child_fired_at", "ASC"], ["f.id", "ASC"]])}`,
      );
      return rows.map(decodeFiring);
    },

    async clearChildFirings(automationId, parentTriggerId, firingIds) {
      const automation = checkId(automationId, "automation id");
      const parent = checkId(parentTriggerId, "parent trigger id");
      const ids = parseInput(IdList, firingIds, "child firing ids");
      if (ids.length === 0) return [];
      const rows = await q.query<{ child_firing_id: string }>(
        sql`DELETE FROM composite_trigger_child_firing WHERE automation_id = ${automation} AND parent_trigger_id = ${parent}
            AND ${d.inList(sql.raw("child_firing_id"), ids)} RETURNING child_firing_id`,
      );
      return rows.map((r) => r.child_firing_id).sort();
    },

    async clearOldChildFirings(automationId, parentTriggerId, firedBefore) {
      const automation = checkId(automationId, "automation id");
      const parent = checkId(parentTriggerId, "parent trigger id");
      const before = parseInput(TimestampSchema, firedBefore, "fired before");
      return q.execute(
        sql`DELETE FROM composite_trigger_child_firing WHERE automation_id = ${automation} AND parent_trigger_id = ${parent} AND child_fired_at < ${before}`,
      );
    },

    async addFollower(input) {
      const data = parseInput(FollowerCreate, input, "event follower");
      const ts = now();
      const rows = await q.query(
        insertSql(
          E,
          { id: randomUUID(), created: ts, updated: ts, ...data },
          sql` ON CONFLICT ("scope", "follower_event_id") DO UPDATE SET
            "leader_event_id" = excluded."leader_event_id", "received" = excluded."received",
            "follower" = excluded."follower", "updated" = excluded."updated"
            RETURNING ${selectList(E, "automation_event_follower")}`,
        ),
      );
      return decodeFollower(rows[0]!);
    },

    async readFollowers(scope, leaderEventId) {
      const leader = checkId(leaderEventId, "leader event id");
      const rows = await q.query(
        sql`SELECT ${selectList(E, "e")} FROM automation_event_follower e WHERE e.scope = ${scope} AND e.leader_event_id = ${leader} ORDER BY e.received, e.id`,
      );
      return inOccurredOrder(rows.map(decodeFollower));
    },

    async removeFollower(scope, followerEventId) {
      const follower = checkId(followerEventId, "follower event id");
      return (await q.execute(sql`DELETE FROM automation_event_follower WHERE scope = ${scope} AND follower_event_id = ${follower}`)) > 0;
    },

    async takeLostFollowers(scope, receivedBefore) {
      const before = parseInput(TimestampSchema, receivedBefore, "received before");
      const rows = await q.query(
        sql`DELETE FROM automation_event_follower WHERE scope = ${scope} AND received < ${before} RETURNING ${selectList(E, "automation_event_follower")}`,
      );
      return inOccurredOrder(rows.map(decodeFollower).sort((a, b) => (a.received < b.received ? -1 : a.received > b.received ? 1 : a.id < b.id ? -1 : 1)));
    },

    async enqueueActions(entries) {
      const data = entries.map((e) => parseInput(ActionQueueEntryCreate, e, "queued action"));
      const out: AutomationActionQueueEntry[] = [];
      for (const entry of data) {
        const ts = now();
        const rows = await q.query(
          insertSql(A, { id: randomUUID(), created: ts, updated: ts, ...entry, available_at: ts, attempts: 0 }, sql` RETURNING ${selectList(A, "automation_action_queue")}`),
        );
        out.push(decodeAction(rows[0]!));
      }
      return out;
    },

    async claimActions(limit, holdSeconds) {
      const n = parseInput(z.number().int().positive(), limit, "limit");
      const hold = parseInput(z.number().positive(), holdSeconds, "hold seconds");
      const ts = now();
      const rows = await q.query(
        sql`UPDATE automation_action_queue SET available_at = ${addSeconds(ts, hold)}, attempts = attempts + 1, updated = ${ts}
            WHERE id IN (SELECT a.id FROM automation_action_queue a WHERE a.available_at <= ${ts} ORDER BY a.available_at, a.created LIMIT ${n}${d.forUpdateSkipLocked("a")})
            RETURNING ${selectList(A, "automation_action_queue")}`,
      );
      return byAge(rows.map(decodeAction));
    },

    async finishAction(id) {
      return (await q.execute(sql`DELETE FROM automation_action_queue WHERE id = ${checkId(id, "queued action id")}`)) > 0;
    },

    async releaseAction(id, availableAt) {
      const at = parseInput(TimestampSchema, availableAt, "available at");
      return (await q.execute(sql`UPDATE automation_action_queue SET available_at = ${at}, updated = ${now()} WHERE id = ${checkId(id, "queued action id")}`)) > 0;
    },

    async readQueuedActions() {
      const rows = await q.query(sql`SELECT ${selectList(A, "a")} FROM automation_action_queue a`);
      return byAge(rows.map(decodeAction));
    },
  };
}
