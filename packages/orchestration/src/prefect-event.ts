/**
 * The shape of a Prefect event (its `Event` / `ReceivedEvent`), shared by everything that emits
 * events: orchestration's state-change events, the server's lifecycle and status events, the
 * worker's events. `events.createMany` of @prefect/db stores them as they are.
 */
import { now, type Timestamp } from "@prefect/db";
import { uuid7 } from "./util.js";

export type ResourceLabels = Record<string, string>;

/** Times are ISO 8601 text (Prefect's wire form); a `Timestamp` is one. */
export interface PrefectEvent {
  id: string;
  occurred: string;
  event: string;
  resource: ResourceLabels;
  related: ResourceLabels[];
  payload: Record<string, unknown>;
  /** The event this one follows, when known. */
  follows?: string | null;
}

/** An event as the server received (or emitted) it: with the time it did. */
export interface ReceivedEvent extends PrefectEvent {
  received: string;
}

/** What an event is made of; the rest has Prefect's defaults (a fresh uuid7, now, nothing related). */
export interface EventParts {
  readonly event: string;
  readonly resource: ResourceLabels;
  readonly related?: ResourceLabels[] | undefined;
  readonly payload?: Record<string, unknown> | undefined;
  readonly id?: string | undefined;
  readonly occurred?: string | undefined;
  readonly follows?: string | null | undefined;
}

export function prefectEvent(parts: EventParts): PrefectEvent {
  return {
    id: parts.id ?? uuid7(),
    occurred: parts.occurred ?? now(),
    event: parts.event,
    resource: parts.resource,
    related: parts.related ?? [],
    payload: parts.payload ?? {},
    follows: parts.follows ?? null,
  };
}

/** The events stamped as received at `at` (default: now). */
export function receivedAt(events: readonly PrefectEvent[], at: Timestamp = now()): ReceivedEvent[] {
  return events.map((event) => ({ ...event, received: at }));
}
