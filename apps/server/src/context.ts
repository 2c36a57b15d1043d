/**
 * What every part of the server is given: the database, the settings, the event stream, and the feed of
 * stored events. Types only, importing nothing of the server but its settings' type, so that
 * anything may depend on it without depending on the HTTP application.
 */
import type { Database, PositionedEvent } from "@prefect/db";
import type { ReceivedEvent } from "@prefect/orchestration";
import type { ServerSettings } from "./settings.js";

export type EventListener = (events: readonly ReceivedEvent[]) => void;

/** Events held in memory on their way to the table (the persister's queue). */
export interface EventBacklog {
  /** Undefined while more events may be published; otherwise resolves once they may. */
  ready(): Promise<void> | undefined;
}

/** Events received and emitted by the server, for the loops and `/api/events/out`. */
export interface EventStream {
  publish(events: readonly ReceivedEvent[]): void;
  subscribe(listener: EventListener): () => void;
  /**
   * Backpressure for events received from clients: undefined while they may be published at once,
   * otherwise a promise that resolves once a backlog holding them back (the persister's, too long
   * for memory) has gone down. The server's own events never wait.
   */
  ready(): Promise<void> | undefined;
  /** Registers a backlog that `ready` waits for; returns its removal. */
  hold(backlog: EventBacklog): () => void;
}

export type StoredEventListener = (events: readonly PositionedEvent[]) => void;

/**
 * Events as stored in the events table by any process (API, server, worker), in position order: this
 * process's reader of the table. The in-process EventStream only carries what this process received
 * or emitted on its way to being stored.
 */
export interface EventFeed {
  subscribe(listener: StoredEventListener): () => void;
  /**
   * Reads the table now: something was just stored (up to position `head`, when known: a reader that
   * has read that far has nothing to read for it).
   */
  wake(head?: number): void;
  /**
   * Events this process has just stored (as `db.events.createMany` returns them): delivered as they
   * are when they are the next positions after what was delivered, else read from the table.
   */
  stored(events: readonly PositionedEvent[]): void;
}

export interface AppContext {
  readonly db: Database;
  readonly settings: ServerSettings;
  readonly events: EventStream;
  /** Every stored event, from every process, in position order. */
  readonly feed: EventFeed;
}

/** The structured logger the server's parts write to (the HTTP application's, a pino logger). */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}
