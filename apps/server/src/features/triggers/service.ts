/**
 * The triggers service (Prefect's `server/events/triggers.py`): events counted into buckets of the
 * event triggers that cover them (reactive evaluation), buckets of proactive triggers checked as time
 * passes (proactive evaluation), firings passed up to composite triggers and the automation.
 *
 * Bucket and firing state live in the database (`db.automations`): each trigger's evaluation of an
 * event, and each proactive pass over a trigger, runs in one transaction holding the automation's row
 * lock, and a firing queues its actions in that same transaction; so whichever process evaluates,
 * a trigger fires once and each firing is acted on once.
 *
 * Beyond Prefect's open-source server: a proactive trigger that fired and then sees its expected event
 * resolves (`prefect.automation.resolved`, then `actions` and `actions_on_resolve`), as Prefect Cloud
 * does; the bucket's `triggered_at` remembers the unresolved firing.
 */
import { type Automation, type AutomationBucket, addSeconds, now, type Repositories, type Timestamp, toMicros } from "@prefect/db";
import type { ReceivedEvent } from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import { readEnabledAutomations } from "../automations/service.js";
import { type Firing, type FiringScope, fire, newFiring } from "./firing.js";
import {
  bucketingKey,
  covers,
  type EventTrigger,
  eventTriggersOf,
  expects,
  isImmediate,
  meetsThreshold,
  startsAfter,
  type Trigger,
  triggeringLabels,
} from "./model.js";

/** Where triggers are evaluated: the database, or the transaction the caller evaluates them in. */
type Context = { readonly db: Repositories; readonly events: AppContext["events"] };
type Json = Record<string, unknown>;

/** Prefect's PRECEDING_EVENT_LOOKBACK: a first bucket starts this long before its event, and a follower waits at most this long for its leader. */
export const PRECEDING_EVENT_LOOKBACK_SECONDS = 15 * 60;
/** Prefect's `expired_bucket_buffer`: buckets are swept this long after their window ended. */
export const EXPIRED_BUCKET_BUFFER_SECONDS = 60;
/** The causal-ordering scope of the triggers service. */
const SCOPE = "triggers";
/** Prefect's MAX_DEPTH_OF_PRECEDING_EVENT. */
const MAX_FOLLOWER_DEPTH = 20;

const micros = (ts: string) => toMicros(ts);

/** One trigger of one automation, evaluated inside a transaction. */
interface Evaluation extends FiringScope {
  readonly trigger: EventTrigger;
}

const keyOf = (e: Evaluation, bucketing_key: readonly string[]) => ({ automation_id: e.automation.id, trigger_id: e.trigger.id, bucketing_key: [...bucketing_key] });

/** Fires a firing of `e.trigger` for `bucket`. */
async function fireBucket(e: Evaluation, bucket: AutomationBucket, state: "Triggered" | "Resolved", event: ReceivedEvent | null): Promise<Firing> {
  const firing = newFiring({
    trigger: e.trigger,
    trigger_states: [state],
    triggering_labels: triggeringLabels(e.trigger, bucket.bucketing_key),
    triggering_event: event ?? (bucket.last_event as unknown as ReceivedEvent | null),
  });
  await fire(e, firing);
  return firing;
}

/**
 * Prefect's `evaluate`: counts the event into the bucket when it falls in its window, fires when the
 * count meets the threshold (reactive: at once; proactive: once the window ended), and starts the
 * next window.
 */
async function evaluate(e: Evaluation, start: AutomationBucket, at: Timestamp, event: ReceivedEvent | null): Promise<AutomationBucket | null> {
  const { tx, trigger } = e;
  let bucket = start;
  let count = event ? 1 : 0;
  const nowMicros = micros(at);
  if (nowMicros < micros(bucket.start)) return bucket;
  if (event && (isImmediate(trigger) || (micros(bucket.start) <= nowMicros && nowMicros < micros(bucket.end)))) {
    bucket = await tx.automations.incrementBucket({ ...keyOf(e, bucket.bucketing_key), start: bucket.start, end: bucket.end, count, last_event: event as unknown as Json });
    count = 0;
    if (trigger.posture === "Proactive" && bucket.triggered_at && !meetsThreshold(trigger, bucket.count)) {
      await fireBucket(e, bucket, "Resolved", event);
      bucket = await tx.automations.startNewBucket({ ...keyOf(e, bucket.bucketing_key), start: bucket.start, end: bucket.end, count: bucket.count, last_event: bucket.last_event });
    }
  }
  const readyToFire = trigger.posture === "Reactive" || micros(bucket.end) <= nowMicros;
  const met = meetsThreshold(trigger, bucket.count);
  let firedAt: string | null = null;
  if (readyToFire && met) {
    firedAt = (await fireBucket(e, bucket, "Triggered", event)).triggered;
    await tx.automations.removeBucket(keyOf(e, bucket.bucketing_key));
  } else if (nowMicros < micros(bucket.end)) {
    if (event && trigger.posture === "Proactive" && !met && startsAfter(trigger, event.event) && expects(trigger, event.event)) {
      await tx.automations.removeBucket(keyOf(e, bucket.bucketing_key));
      return tx.automations.startNewBucket({
        ...keyOf(e, bucket.bucketing_key),
        start: event.occurred,
        end: addSeconds(event.occurred, trigger.within),
        count: 0,
        last_event: event as unknown as Json,
      });
    }
    return bucket;
  }
  // The window is over, or the trigger fired: the next window (unless an `after` event must arm it again).
  if (trigger.after.length > 0) {
    await tx.automations.removeBucket(keyOf(e, bucket.bucketing_key));
    return null;
  }
  if (trigger.within === 0) return null;
  const nextStart = micros(bucket.end) > nowMicros ? bucket.end : at;
  const next = {
    ...keyOf(e, bucket.bucketing_key),
    start: nextStart,
    end: addSeconds(nextStart, trigger.within),
    triggered_at: trigger.posture === "Proactive" ? (firedAt ?? bucket.triggered_at) : null,
  };
  if (trigger.posture === "Reactive" && count > 0) {
    return evaluate(e, await tx.automations.startNewBucket({ ...next, count: 0 }), at, event);
  }
  return tx.automations.startNewBucket({ ...next, count });
}

/** Runs `fn` for one trigger of an automation in its own transaction, holding the automation's lock; publishes what it emitted once committed. */
async function inTransaction(context: Context, automation: Automation, trigger: EventTrigger, fn: (e: Evaluation) => Promise<void>): Promise<void> {
  const emitted: ReceivedEvent[] = [];
  await context.db.transaction(async (tx: Repositories) => {
    if (!(await tx.automations.lockAutomation(automation.id))) return;
    await fn({ tx, automation, trigger, emitted });
  });
  context.events.publish(emitted);
}

/** Prefect's reactive evaluation of one event by one trigger that covers it. */
async function evaluateEvent(context: Context, automation: Automation, trigger: EventTrigger, event: ReceivedEvent): Promise<void> {
  await inTransaction(context, automation, trigger, async (e) => {
    const { tx } = e;
    const key = keyOf(e, bucketingKey(trigger, event));
    const counted = expects(trigger, event.event);
    let bucket: AutomationBucket | null = null;
    if (trigger.after.length > 0 && startsAfter(trigger, event.event)) {
      bucket = await tx.automations.ensureBucket({
        ...key,
        start: event.occurred,
        end: addSeconds(event.occurred, trigger.within),
        last_event: event as unknown as Json,
        initial_count: counted ? -1 : 0,
      });
    } else if (trigger.after.length === 0 && counted) {
      bucket = await tx.automations.ensureBucket({
        ...key,
        start: addSeconds(event.occurred, -PRECEDING_EVENT_LOOKBACK_SECONDS),
        end: addSeconds(event.occurred, trigger.within),
        last_event: event as unknown as Json,
      });
    }
    if (!counted) return;
    bucket ??= await tx.automations.readBucket(key);
    if (!bucket) return;
    await evaluate(e, bucket, event.occurred as Timestamp, event);
  });
}

/** The event triggers of the enabled automations, with their automation. */
export interface TriggerIndex {
  readonly triggers: readonly { readonly automation: Automation; readonly trigger: EventTrigger }[];
}

export async function loadTriggers(db: Repositories): Promise<TriggerIndex> {
  const automations = await readEnabledAutomations(db);
  return { triggers: automations.flatMap((automation) => eventTriggersOf(automation.trigger as unknown as Trigger).map((trigger) => ({ automation, trigger }))) };
}

/**
 * Causal ordering (Prefect's `ordering/db.py`): an event that follows one not evaluated yet waits in
 * the follower table until its leader is evaluated (or for at most 15 minutes).
 * The ids of evaluated events are kept for 30 minutes, so that a redelivered event is skipped.
 */
export class EventOrdering {
  readonly #seen = new Map<string, number>();
  static readonly SEEN_TTL_MS = 30 * 60 * 1000;
  static readonly MAX_SEEN = 10_000;

  seen(id: string): boolean {
    const until = this.#seen.get(id);
    return until !== undefined && until > Date.now();
  }

  markSeen(id: string): void {
    this.#seen.set(id, Date.now() + EventOrdering.SEEN_TTL_MS);
    if (this.#seen.size > EventOrdering.MAX_SEEN) {
      for (const [key, until] of this.#seen) if (until <= Date.now() || this.#seen.size > EventOrdering.MAX_SEEN) this.#seen.delete(key);
    }
  }

  /**
   * The event must wait for the event it follows: one neither evaluated here nor stored yet (stored
   * events are evaluated in the order they were stored, by whichever process reads them).
   */
  async mustWait(db: Repositories, event: ReceivedEvent): Promise<boolean> {
    const leader = event.follows;
    if (!leader || leader === event.id || this.seen(leader)) return false;
    if (Date.now() - Date.parse(event.received) >= PRECEDING_EVENT_LOOKBACK_SECONDS * 1000) return false;
    return (await db.events.get(leader)) === null;
  }
}

/** Evaluates one event against every trigger that covers it, then the events that were waiting for it. */
async function evaluateInOrder(context: Context, index: TriggerIndex, ordering: EventOrdering, event: ReceivedEvent, depth: number): Promise<void> {
  if (event.event === "prefect.log.write" || ordering.seen(event.id)) return;
  if (depth === 0 && (await ordering.mustWait(context.db, event))) {
    await context.db.automations.addFollower({
      scope: SCOPE,
      leader_event_id: event.follows!,
      follower_event_id: event.id,
      received: event.received,
      follower: event as unknown as Json,
    });
    return;
  }
  for (const { automation, trigger } of index.triggers) {
    if (covers(trigger, event)) await evaluateEvent(context, automation, trigger, event);
  }
  ordering.markSeen(event.id);
  if (depth >= MAX_FOLLOWER_DEPTH) return;
  for (const follower of await context.db.automations.readFollowers(SCOPE, event.id)) {
    if (!(await context.db.automations.removeFollower(SCOPE, follower.follower_event_id))) continue;
    await evaluateInOrder(context, index, ordering, follower.follower as unknown as ReceivedEvent, depth + 1);
  }
}

/** Prefect's reactive evaluation of a batch of events, in order. */
export async function evaluateEvents(context: Context, events: readonly ReceivedEvent[], ordering = new EventOrdering(), index?: TriggerIndex): Promise<void> {
  const triggers = index ?? (await loadTriggers(context.db));
  // No trigger to evaluate: the events' order does not matter either (nothing to hold back).
  if (triggers.triggers.length === 0) return;
  for (const event of events) await evaluateInOrder(context, triggers, ordering, event, 0);
}

/**
 * Prefect's proactive evaluation at `asOf`: every proactive trigger's buckets are checked (with a
 * bucket for the trigger as a whole when it has no `for_each`), firing those whose window ended
 * without enough events.
 */
export async function evaluateProactiveTriggers(context: Context, asOf: Timestamp = now(), index?: TriggerIndex): Promise<void> {
  const { triggers } = index ?? (await loadTriggers(context.db));
  for (const { automation, trigger } of triggers) {
    if (trigger.posture !== "Proactive") continue;
    await inTransaction(context, automation, trigger, async (e) => {
      const { tx } = e;
      if (trigger.for_each.length === 0) {
        await tx.automations.ensureBucket({ ...keyOf(e, []), start: asOf, end: addSeconds(asOf, trigger.within), last_event: null });
      }
      await tx.automations.removeBucketsExceedingThreshold(automation.id, trigger.id, trigger.threshold);
      for (let offset = 0; ; offset += 500) {
        const buckets = await tx.automations.readBuckets(automation.id, trigger.id, { limit: 500, offset });
        for (const bucket of buckets) await evaluate(e, bucket, asOf, null);
        if (buckets.length < 500) break;
      }
    });
  }
}

/**
 * Prefect's periodic housekeeping: events whose leader never came are evaluated (in the order they
 * occurred), and buckets whose window ended over a minute ago are removed.
 */
export async function triggersHousekeeping(context: Context, ordering: EventOrdering, at: Timestamp = now()): Promise<void> {
  const lost = await context.db.automations.takeLostFollowers(SCOPE, addSeconds(at, -PRECEDING_EVENT_LOOKBACK_SECONDS));
  if (lost.length > 0) {
    const index = await loadTriggers(context.db);
    for (const follower of lost) await evaluateInOrder(context, index, ordering, follower.follower as unknown as ReceivedEvent, 1);
  }
  await context.db.automations.sweepClosedBuckets(addSeconds(at, -EXPIRED_BUCKET_BUFFER_SECONDS));
}
