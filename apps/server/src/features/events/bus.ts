/**
 * The in-process event stream: events received by the API (websocket `/api/events/in`, `POST
 * /api/events`) and emitted by the server itself (state changes, lifecycle events) are published
 * here on their way to the events table, where the event persister stores them in batches. Nothing
 * reads events from here but the persister: every consumer reads the table (see
 * loops/event-reader.ts and loops/consume-events.ts), so that it sees every process's events.
 */
import type { Timestamp } from "@prefect/db";
import { type PrefectEvent, type ReceivedEvent, receivedAt } from "@prefect/orchestration";
import type { EventBacklog, EventListener, EventStream } from "../../context.js";

export class EventBus implements EventStream {
  readonly #listeners = new Set<EventListener>();
  readonly #backlogs = new Set<EventBacklog>();

  ready(): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const backlog of this.#backlogs) {
      const wait = backlog.ready();
      if (wait) waits.push(wait);
    }
    if (waits.length === 0) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  hold(backlog: EventBacklog): () => void {
    this.#backlogs.add(backlog);
    return () => this.#backlogs.delete(backlog);
  }

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
