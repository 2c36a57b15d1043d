/**
 * The actions service (Prefect's `server/events/actions.py` consumer): takes queued actions of
 * firings (each by one process at a time), performs them and emits Prefect's
 * `prefect.automation.action.triggered` with `.executed` or `.failed`. An action that fails for a
 * reason it reports (ActionFailed) is not retried; any other error is retried a few times, later,
 * then reported failed. A queued action whose taker died is taken again once its hold ends
 * (PREFECT_SERVER_SERVICES_ACTIONS_HOLD_SECONDS); the run-deployment action's idempotency key keeps
 * that from starting a second run.
 */
import { type Automation, addSeconds, type AutomationActionQueueEntry, now } from "@prefect/db";
import { type PrefectEvent, prefectEvent, uuid7 } from "@prefect/orchestration";
import type { AppContext, Logger } from "../../context.js";
import { publishEvents } from "../events/bus.js";
import type { TriggeredAction } from "../triggers/firing.js";
import { ActionFailed, type ActionOutcome, performAction } from "./perform.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;
type Json = Record<string, unknown>;
type Labels = Record<string, string>;

/** How many times an action that throws is tried before it is reported failed (Prefect's broker: 3). */
export const MAX_ATTEMPTS = 3;
/** Seconds before an action that threw is tried again, per attempt so far. */
const RETRY_BACKOFF_SECONDS = 1;
/** Prefect links `.action.triggered` to the triggering event when it occurred this recently. */
const FOLLOWS_WITHIN_MS = 5 * 60 * 1000;

/** The automation resource of the action events. */
function automationResource(automation: Automation): Labels {
  const trigger = automation.trigger as Json;
  const labels: Labels = {
    "prefect.resource.id": `prefect.automation.${automation.id}`,
    "prefect.resource.name": automation.name,
    "prefect.trigger-type": String(trigger.type),
  };
  if (trigger.type === "event") labels["prefect.posture"] = String(trigger.posture);
  return labels;
}

/** Prefect's `Action.succeed` / `Action.fail`: the `.triggered` event and the outcome event that follows it. */
function actionEvents(ta: TriggeredAction, automation: Automation, resources: Labels[], outcome: { kind: "executed" | "failed"; details: Json }): PrefectEvent[] {
  const related: Labels[] = [...resources];
  if (ta.automation_triggered_event_id) {
    related.push({ "prefect.resource.id": `prefect.event.${ta.automation_triggered_event_id}`, "prefect.resource.role": "automation-triggered-event" });
  }
  const event = ta.triggering_event;
  if (event) related.push({ "prefect.resource.id": `prefect.event.${event.id}`, "prefect.resource.role": "triggering-event" });
  const resource = automationResource(automation);
  const payload = { action_index: ta.action_index, action_type: ta.action.type, invocation: ta.id };
  const closeEnough = event && Math.abs(Date.parse(ta.triggered) - Date.parse(event.occurred)) <= FOLLOWS_WITHIN_MS;
  const triggered = prefectEvent({
    id: uuid7(),
    occurred: ta.triggered,
    event: "prefect.automation.action.triggered",
    resource,
    related,
    payload,
    follows: closeEnough ? event.id : null,
  });
  const finished = prefectEvent({
    event: `prefect.automation.action.${outcome.kind}`,
    resource,
    related,
    payload: { ...payload, ...outcome.details },
    follows: triggered.id,
  });
  return [triggered, finished];
}

/** Performs one queued action and reports it; true when it is done with (acted on, or failed for good). */
async function runQueuedAction(context: Context, entry: AutomationActionQueueEntry, log?: Logger): Promise<boolean> {
  const ta = entry.triggered_action as unknown as TriggeredAction;
  const automation = ta.automation as unknown as Automation;
  let outcome: ActionOutcome;
  try {
    outcome = await performAction(context, ta, automation);
  } catch (error) {
    if (!(error instanceof ActionFailed) && entry.attempts < MAX_ATTEMPTS) {
      log?.warn({ err: error, service: "Actions", action: ta.id, attempt: entry.attempts }, "an action failed; it will be tried again");
      await context.db.automations.releaseAction(entry.id, addSeconds(now(), RETRY_BACKOFF_SECONDS * entry.attempts));
      return false;
    }
    const failure = error instanceof ActionFailed ? error : new ActionFailed(`The action failed ${entry.attempts} times: ${(error as Error).message}`);
    publishEvents(context.events, actionEvents(ta, automation, [], { kind: "failed", details: { ...failure.details, reason: failure.reason } }));
    await context.db.automations.finishAction(entry.id);
    return true;
  }
  publishEvents(context.events, actionEvents(ta, automation, outcome.resources, { kind: "executed", details: outcome.details }));
  await context.db.automations.finishAction(entry.id);
  return true;
}

/** Takes up to `limit` queued actions and performs them, one after the other; returns how many were done with. */
export async function runQueuedActions(context: Context, options: { readonly limit?: number; readonly log?: Logger | undefined } = {}): Promise<number> {
  const taken = await context.db.transaction((tx) => tx.automations.claimActions(options.limit ?? 20, context.settings.services.actions.holdSeconds));
  let done = 0;
  for (const entry of taken) {
    try {
      if (await runQueuedAction(context, entry, options.log)) done++;
    } catch (error) {
      // Reporting failed (the database went away): the hold ends and the action is taken again.
      options.log?.error({ err: error, service: "Actions", action: entry.id }, "an action could not be reported");
    }
  }
  return done;
}
