/**
 * What happens when a trigger fires (Prefect's `fire`, `evaluate_composite_trigger` and `act` in
 * `server/events/triggers.py`): a child of a composite trigger records its firing until the composite
 * has the firings it needs; the top trigger's firing emits `prefect.automation.triggered` (or
 * `.resolved`) and queues one TriggeredAction per action in the actions queue, in the same transaction
 * as the bucket change that fired, so each firing is acted on exactly once.
 */
import type { Automation, Repositories } from "@prefect/db";
import { now, toMicros } from "@prefect/db";
import { type ReceivedEvent, receivedAt, uuid7 } from "@prefect/orchestration";
import { automationResponse } from "../automations/responses.js";
import { type CompositeTrigger, firingsNeeded, parentOf, type Trigger } from "./model.js";

type Json = Record<string, unknown>;

export type TriggerState = "Triggered" | "Resolved";

/** Prefect's Firing. */
export interface Firing {
  readonly id: string;
  readonly trigger: Trigger;
  readonly trigger_states: TriggerState[];
  readonly triggered: string;
  readonly triggering_labels: Record<string, string>;
  readonly triggering_firings: Firing[];
  readonly triggering_event: ReceivedEvent | null;
  readonly triggering_value: unknown;
}

export function newFiring(parts: Pick<Firing, "trigger" | "triggering_event"> & Partial<Firing>): Firing {
  return {
    id: uuid7(),
    trigger_states: ["Triggered"],
    triggered: now(),
    triggering_labels: {},
    triggering_firings: [],
    triggering_value: null,
    ...parts,
  };
}

/** Where a firing is handled: inside the transaction of the change that fired, with the events to publish once it commits. */
export interface FiringScope {
  readonly tx: Repositories;
  readonly automation: Automation;
  /** Events to publish after the commit. */
  readonly emitted: ReceivedEvent[];
}

/** Passes the firing to the trigger's parent: the composite trigger above it, or the automation. */
export async function fire(scope: FiringScope, firing: Firing): Promise<void> {
  const parent = parentOf(scope.automation.trigger as unknown as Trigger, firing.trigger.id);
  if (parent) await evaluateComposite(scope, parent, firing);
  else await act(scope, firing);
}

/** A sequence fires once its children fired in the declared order, each once. */
function inSequence(trigger: CompositeTrigger, firings: readonly Firing[]): boolean {
  const order = [...firings].sort((a, b) => toMicros(a.triggered) - toMicros(b.triggered)).map((f) => f.trigger.id);
  const declared = trigger.triggers.map((t) => t.id);
  return order.length === declared.length && order.every((id, i) => id === declared[i]);
}

async function evaluateComposite(scope: FiringScope, trigger: CompositeTrigger, firing: Firing): Promise<void> {
  const composite = (triggeringFirings: Firing[]) =>
    newFiring({ trigger, triggering_firings: triggeringFirings, triggering_event: firing.triggering_event });
  if (firingsNeeded(trigger) === 1) {
    await fire(scope, composite([firing]));
    return;
  }
  const { tx, automation } = scope;
  // The automation's row is locked by the caller, so evaluations of this composite take turns.
  if (trigger.within !== null) {
    await tx.automations.clearOldChildFirings(automation.id, trigger.id, new Date(Date.parse(firing.triggered) - trigger.within * 1000).toISOString());
  }
  await tx.automations.upsertChildFiring({
    automation_id: automation.id,
    parent_trigger_id: trigger.id,
    child_trigger_id: firing.trigger.id,
    child_firing_id: firing.id,
    child_fired_at: firing.triggered,
    child_firing: firing as unknown as Json,
  });
  const firings = (await tx.automations.readChildFirings(automation.id, trigger.id)).map((f) => f.child_firing as unknown as Firing);
  const ids = firings.map((f) => f.id);
  if (!ids.includes(firing.id)) return;
  const ready = trigger.type === "sequence" ? inSequence(trigger, firings) : firings.length >= firingsNeeded(trigger);
  if (!ready) return;
  const cleared = await tx.automations.clearChildFirings(automation.id, trigger.id, ids);
  if (cleared.length !== ids.length) return;
  await fire(scope, composite(firings));
}

/** Prefect's `create_automation_state_change_event`. */
function stateChangeEvent(automation: Automation, firing: Firing, state: TriggerState): ReceivedEvent {
  const resource: Record<string, string> = { "prefect.resource.id": `prefect.automation.${automation.id}`, "prefect.resource.name": automation.name };
  if (firing.trigger.type === "event") resource["prefect.posture"] = firing.trigger.posture;
  const event = firing.triggering_event;
  const [received] = receivedAt([
    {
      id: uuid7(),
      occurred: firing.triggered,
      event: `prefect.automation.${state.toLowerCase()}`,
      resource,
      related: event ? [{ "prefect.resource.id": `prefect.event.${event.id}`, "prefect.resource.role": "triggering-event" }] : [],
      payload: { triggering_labels: firing.triggering_labels, triggering_event: event ?? null },
      follows: null,
    },
  ]);
  return received!;
}

/** Prefect's TriggeredAction, as queued for the actions service. */
export interface TriggeredAction {
  readonly id: string;
  readonly automation: Json;
  readonly firing: Firing;
  readonly triggered: string;
  readonly triggering_labels: Record<string, string>;
  readonly triggering_event: ReceivedEvent | null;
  readonly action: Json;
  readonly action_index: number;
  readonly automation_triggered_event_id: string | null;
}

/**
 * The automation fired: its state-change events are emitted and its actions queued (`actions`
 * always, `actions_on_trigger` when triggered, `actions_on_resolve` when resolved; the index counts
 * across the three lists).
 */
async function act(scope: FiringScope, firing: Firing): Promise<void> {
  const { automation } = scope;
  const order: TriggerState[] = ["Triggered", "Resolved"];
  const states = order.filter((s) => firing.trigger_states.includes(s));
  const changes = new Map(states.map((s) => [s, stateChangeEvent(automation, firing, s)]));
  scope.emitted.push(...changes.values());
  const primary = changes.get("Triggered") ?? changes.get("Resolved") ?? null;
  const sources: [ReceivedEvent | null, Json, string | null][] = automation.actions.map((a) => [firing.triggering_event, a, primary?.id ?? null]);
  const triggered = changes.get("Triggered");
  if (triggered) sources.push(...automation.actions_on_trigger.map((a): [ReceivedEvent, Json, string] => [triggered, a, triggered.id]));
  const resolved = changes.get("Resolved");
  if (resolved) sources.push(...automation.actions_on_resolve.map((a): [ReceivedEvent, Json, string] => [resolved, a, resolved.id]));
  const snapshot = automationResponse(automation) as unknown as Json;
  await scope.tx.automations.enqueueActions(
    sources.map(([event, action, stateEventId], index) => {
      const triggeredAction: TriggeredAction = {
        id: uuid7(),
        automation: snapshot,
        firing,
        triggered: firing.triggered,
        triggering_labels: firing.triggering_labels,
        triggering_event: event,
        action,
        action_index: index,
        automation_triggered_event_id: stateEventId,
      };
      return { automation_id: automation.id, action_index: index, triggered_action: JSON.parse(JSON.stringify(triggeredAction)) };
    }),
  );
}
