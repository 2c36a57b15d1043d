/**
 * What every part of the server is given: the database (concurrency leases included), the settings
 * and the event stream. Types only, importing nothing of the server but its settings' type, so that
 * anything may depend on it without depending on the HTTP application.
 */
import type { Database } from "@prefect/db";
import type { ReceivedEvent } from "@prefect/orchestration";
import type { ServerSettings } from "./settings.js";

export type EventListener = (events: readonly ReceivedEvent[]) => void;

/** Events received and emitted by the server, for the loops and `/api/events/out`. */
export interface EventStream {
  publish(events: readonly ReceivedEvent[]): void;
  subscribe(listener: EventListener): () => void;
}

export interface AppContext {
  readonly db: Database;
  readonly settings: ServerSettings;
  readonly events: EventStream;
}

/** The structured logger the server's parts write to (the HTTP application's, a pino logger). */
export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}
