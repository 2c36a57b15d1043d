/**
 * The in-process event stream: events received by the API (websocket `/api/events/in`, `POST
 * /api/events`) and emitted by the server itself (state changes, lifecycle events) are published
 * here; the event persister stores them in batches, the task-run recorder turns task-run events into
 * rows, and `/api/events/out` streams them to subscribers.
 */
import type { Timestamp } from "@prefect/db";
import { type PrefectEvent, type ReceivedEvent, receivedAt } from "@prefect/orchestration";
import type { EventListener, EventStream } from "../../context.js";

export class EventBus implements EventStream {
  readonly #listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  publish(events: readonly ReceivedEvent[]): void {
    if (events.length === 0) return;
    for (const listener of this.#listeners) listener(events);
  }
}

/** Publishes events whose change has committed, stamped as received now (or at `at`). */
export function publishEvents(stream: EventStream, events: readonly PrefectEvent[], at?: Timestamp): void {
  if (events.length === 0) return;
  stream.publish(receivedAt(events, at));
}
