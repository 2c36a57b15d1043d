/**
 * Prefect's triggers as the triggers service reads them (`server/events/schemas/automations.py`):
 * event triggers (reactive or proactive) and the composite triggers (compound, sequence) that combine
 * the firings of their children. Which events a trigger covers (event names, `match`, `match_related`),
 * which bucket an event counts in (`for_each`), and when a bucket's count meets the threshold.
 *
 * Stored automations were validated and normalized by the automations feature (schemas.ts), so the
 * shapes here are read as they are stored.
 */
import type { ReceivedEvent } from "@prefect/orchestration";
import { fnmatchcase } from "../events/filter.js";

type Labels = Record<string, string>;
export type ResourceSpec = Record<string, string | string[]>;

export interface EventTrigger {
  readonly type: "event";
  readonly id: string;
  readonly match: ResourceSpec;
  readonly match_related: ResourceSpec | ResourceSpec[];
  readonly after: string[];
  readonly expect: string[];
  readonly for_each: string[];
  readonly posture: "Reactive" | "Proactive";
  readonly threshold: number;
  /** Seconds. */
  readonly within: number;
}

export interface CompositeTrigger {
  readonly type: "compound" | "sequence";
  readonly id: string;
  readonly triggers: Trigger[];
  /** Seconds, or null for no limit. */
  readonly within: number | null;
  /** Compound triggers only. */
  readonly require?: number | "any" | "all";
}

export type Trigger = EventTrigger | CompositeTrigger;

/** Every event trigger of the tree, depth first. */
export function eventTriggersOf(trigger: Trigger): EventTrigger[] {
  return trigger.type === "event" ? [trigger] : trigger.triggers.flatMap(eventTriggersOf);
}

/** The composite trigger whose child `id` is, or null when `id` is the root (its parent is the automation). */
export function parentOf(root: Trigger, id: string): CompositeTrigger | null {
  if (root.type === "event") return null;
  for (const child of root.triggers) {
    if (child.id === id) return root;
    const found = parentOf(child, id);
    if (found) return found;
  }
  return null;
}

/** How many child firings a composite trigger needs. */
export function firingsNeeded(trigger: CompositeTrigger): number {
  if (trigger.type === "sequence") return trigger.triggers.length;
  if (trigger.require === "any") return 1;
  if (trigger.require === "all" || trigger.require === undefined) return trigger.triggers.length;
  return trigger.require;
}

// ---- Matching -----------------------------------------------------------------------------------

/** Prefect's `matches`: a glob, negated by a leading `!`; a label the resource lacks never matches. */
function labelMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const negated = pattern.startsWith("!");
  const matched = fnmatchcase(value, negated ? pattern.slice(1) : pattern);
  return negated ? !matched : matched;
}

/** Every label of the spec matches one same resource (an empty spec matches everything). */
export function specIncludes(spec: ResourceSpec, resources: readonly Labels[]): boolean {
  const entries = Object.entries(spec);
  if (entries.length === 0) return true;
  return resources.some((resource) =>
    entries.every(([label, expected]) => (Array.isArray(expected) ? expected : [expected]).some((pattern) => labelMatches(pattern, resource[label]))),
  );
}

const patternCache = new WeakMap<EventTrigger, RegExp>();

/** Prefect's `event_pattern`: `expect ∪ after`, `*` standing for one or more characters, anchored at the start only. */
function eventPattern(trigger: EventTrigger): RegExp {
  let pattern = patternCache.get(trigger);
  if (!pattern) {
    const names = [...trigger.expect, ...trigger.after];
    const escaped = names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&").replace(/\\\*/g, ".+"));
    pattern = trigger.expect.length === 0 ? /^.+/ : new RegExp(`^(?:${escaped.join("|")})`);
    patternCache.set(trigger, pattern);
  }
  return pattern;
}

/** Whether the trigger is interested in the event at all (its name, its resource, its related resources). */
export function covers(trigger: EventTrigger, event: ReceivedEvent): boolean {
  if (!eventPattern(trigger).test(event.event)) return false;
  if (!specIncludes(trigger.match, [event.resource])) return false;
  const related = Array.isArray(trigger.match_related) ? trigger.match_related : [trigger.match_related];
  return related.every((spec) => specIncludes(spec, event.related));
}

/** The event counts (an empty `expect` counts every event). */
export const expects = (trigger: EventTrigger, name: string): boolean => trigger.expect.length === 0 || trigger.expect.some((p) => labelMatches(p, name));

/** The event arms the trigger. */
export const startsAfter = (trigger: EventTrigger, name: string): boolean => trigger.after.some((p) => labelMatches(p, name));

/** Reactive with no window: every event is evaluated on its own. */
export const isImmediate = (trigger: EventTrigger): boolean => trigger.posture === "Reactive" && trigger.within === 0;

export const meetsThreshold = (trigger: EventTrigger, count: number): boolean =>
  trigger.posture === "Reactive" ? count >= trigger.threshold : count < trigger.threshold;

/** Prefect's `find_resource_label`: `related:<role>:<label>` reads the first related resource in that role. */
function findResourceLabel(event: ReceivedEvent, label: string): string | undefined {
  const at = label.lastIndexOf(":");
  if (at > 0) {
    const directive = label.slice(0, at);
    const relatedLabel = label.slice(at + 1);
    const colon = directive.indexOf(":");
    if ((colon === -1 ? directive : directive.slice(0, colon)) === "related") {
      const role = colon === -1 ? "" : directive.slice(colon + 1);
      const related = event.related.find((r) => r["prefect.resource.role"] === role);
      if (related) return related[relatedLabel];
    }
  }
  return event.resource[label];
}

/** The values of the `for_each` labels (sorted by label) that partition the trigger's buckets. */
export const bucketingKey = (trigger: EventTrigger, event: ReceivedEvent): string[] =>
  [...trigger.for_each].sort().map((label) => findResourceLabel(event, label) || "");

/** `for_each` label -> value for a bucket's key. */
export function triggeringLabels(trigger: EventTrigger, key: readonly string[]): Labels {
  const labels: Labels = {};
  [...trigger.for_each].sort().forEach((label, i) => {
    labels[label] = key[i] ?? "";
  });
  return labels;
}
