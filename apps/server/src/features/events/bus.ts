/**
 * In-process event bus: events received by the API (websocket `/api/events/in`, `POST /api/events`) and
 * emitted by the server itself (state changes) are published here; the event persister stores them in
 * batches, the task-run recorder turns task-run events into rows, and `/api/events/out` streams them to
 * subscribers.
 */
import type { EventCreate } from "@prefect/db";

/** An event as received, with the time the server received it. */
export type ReceivedEvent = EventCreate & { received: string };

export type EventListener = (events: readonly ReceivedEvent[]) => void;

export class EventBus {
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
