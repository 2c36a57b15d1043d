/**
 * The triggers and actions services (Prefect's `ReactiveTriggers`, its proactive evaluation and its
 * `Actions` consumer):
 *  - reactive: every event on the event stream is evaluated against the enabled automations' event
 *    triggers as it arrives, in order (features/triggers/service.ts);
 *  - proactive: every PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY seconds the proactive triggers are
 *    checked, events whose leader never came are evaluated and expired buckets swept;
 *  - actions: queued actions of firings are taken and performed (features/actions/service.ts).
 * State lives in the database, so several servers may run these services side by side.
 */
import type { AppContext, Logger } from "../context.js";
import { runQueuedActions } from "../features/actions/service.js";
import { EventOrdering, evaluateEvents, evaluateProactiveTriggers, triggersHousekeeping } from "../features/triggers/service.js";
import { EventBatcher } from "./event-batcher.js";
import { LoopService, type Service } from "./loop.js";

const MAX_BATCH = 100;

export function triggerServices(context: AppContext, log: Logger): Service[] {
  const ordering = new EventOrdering();
  const reactive = new EventBatcher({
    name: "ReactiveTriggers",
    bus: context.events,
    log,
    batchSize: 1,
    flushIntervalMs: 1000,
    maxBatch: MAX_BATCH,
    write: (batch) => evaluateEvents(context, batch, ordering),
  });
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
