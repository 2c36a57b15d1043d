/**
 * The triggers and actions services (Prefect's `ReactiveTriggers`, its proactive evaluation and its
 * `Actions` consumer):
 *  - reactive: stored events are read in the order they were stored through the consumer group
 *    `reactive-triggers` and evaluated against the enabled automations' event triggers
 *    (features/triggers/service.ts); the group's cursor moves in the transaction of the evaluation,
 *    so each event is evaluated once across every server, and a server that dies mid-batch leaves the
 *    batch to the next reader;
 *  - proactive: every PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY seconds the proactive triggers are
 *    checked, events whose leader never came are evaluated and expired buckets swept;
 *  - actions: queued actions of firings are taken and performed (features/actions/service.ts).
 * State lives in the database, so several servers may run these services side by side.
 */
import type { ReceivedEvent } from "@prefect/orchestration";
import type { AppContext, EventStream, Logger } from "../context.js";
import { runQueuedActions } from "../features/actions/service.js";
import { EventOrdering, evaluateEvents, evaluateProactiveTriggers, loadTriggers, triggersHousekeeping } from "../features/triggers/service.js";
import { LoopService, type Service } from "./loop.js";

/** Prefect's consumer group of the reactive triggers service. */
export const REACTIVE_TRIGGERS_GROUP = "reactive-triggers";
/** Events evaluated per transaction. */
const BATCH = 50;
/** Events passed over per transaction while no automation has an event trigger. */
const WINDOW = 1000;
/** How often the group looks for new events when it has caught up. */
const POLL_SECONDS = 0.25;

/**
 * Evaluates the group's next batch of stored events in one transaction with the cursor's move; what
 * the evaluation emits is published once that commits. Returns how many events it evaluated.
 */
export async function evaluateNextEvents(context: AppContext, ordering: EventOrdering): Promise<number> {
  const emitted: ReceivedEvent[] = [];
  const held: EventStream = {
    publish: (events) => emitted.push(...events),
    subscribe: (listener) => context.events.subscribe(listener),
    ready: () => context.events.ready(),
    hold: (backlog) => context.events.hold(backlog),
  };
  const count = await context.db.transaction(async (tx) => {
    const window = await tx.events.claimGroup(REACTIVE_TRIGGERS_GROUP, WINDOW);
    if (window.count === 0) return 0;
    // Read after the window was: every automation stored before the window's events is in it.
    const index = await loadTriggers(tx);
    if (index.triggers.length === 0) {
      // Nothing to evaluate: the events are passed over unread.
      await tx.events.advanceGroup(REACTIVE_TRIGGERS_GROUP, window.through);
      return window.count;
    }
    const batch = await tx.events.readAfter(window.cursor, { limit: BATCH, through: window.through });
    await evaluateEvents({ db: tx, events: held }, batch, ordering, index);
    // (None when retention removed the window's events meanwhile.)
    const last = batch.at(-1)?.position ?? window.through;
    await tx.events.advanceGroup(REACTIVE_TRIGGERS_GROUP, last);
    return batch.length > 0 ? batch.length : window.count;
  });
  context.events.publish(emitted);
  return count;
}

export function triggerServices(context: AppContext, log: Logger): Service[] {
  const ordering = new EventOrdering();
  // The newest stored event this process has seen handled: while it stays the newest, there is nothing to read.
  let handledHead = -1;
  const reactive = new LoopService(
    "ReactiveTriggers",
    POLL_SECONDS,
    async (signal) => {
      const head = await context.db.events.head();
      if (head === handledHead) return;
      for (let count = 1; count > 0 && !signal.aborted; ) count = await evaluateNextEvents(context, ordering);
      if (!signal.aborted) handledHead = head;
    },
    (error) => log.error({ err: error, service: "ReactiveTriggers" }, "evaluating events failed; trying again on the next loop"),
  );
  const proactive = new LoopService(
    "ProactiveTriggers",
    context.settings.services.triggers.loopSeconds,
    async () => {
      await evaluateProactiveTriggers(context);
      await triggersHousekeeping(context, ordering);
    },
    (error) => log.error({ err: error, service: "ProactiveTriggers" }, "evaluating proactive triggers failed; trying again on the next loop"),
  );
  return [reactive, proactive];
}

export function actionsService(context: AppContext, log: Logger): Service {
  return new LoopService(
    "Actions",
    context.settings.services.actions.loopSeconds,
    async (signal) => {
      // Keep going while actions are queued.
      for (let done = 1; done > 0 && !signal.aborted; ) done = await runQueuedActions(context, { log });
    },
    (error) => log.error({ err: error, service: "Actions" }, "running queued actions failed; trying again on the next loop"),
  );
}
