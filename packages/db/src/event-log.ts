/**
 * How appends to the events table are made visible in position order, per backend
 * (backends/sqlite/event-log.ts, backends/postgres/event-log.ts).
 *
 * A reader keeps the highest position it has seen and asks for the events after it, so positions must
 * become visible in increasing order: an event committed later with a lower position than one already
 * read would be skipped. PostgreSQL runs transactions side by side, so appends there take a
 * transaction-level lock before they read the head and number their events, and hold it until they
 * commit; SQLite has one writer at a time already.
 */
import type { Queryable } from "./driver/types.js";

export interface EventLog {
  /** Taken in the appending transaction just before positions are assigned; held until it ends. */
  lockAppends(tx: Queryable): Promise<void>;
  /** Wakes readers in other processes once the appending transaction commits (nothing where they poll). */
  announceAppends(tx: Queryable): Promise<void>;
}
