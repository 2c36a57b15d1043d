/**
 * PostgreSQL: appends to the events table take a transaction-level advisory lock before they read the
 * head, so that they commit one after the other in position order, and NOTIFY `EVENTS_CHANNEL` (sent
 * by PostgreSQL when, and only if, the transaction commits).
 */
import type { EventLog } from "../../event-log.js";

/** Advisory lock key of event appends: any fixed 64-bit number unlikely to clash with others'. */
const EVENT_APPEND_LOCK_KEY = "72707369455179";
/** The channel readers LISTEN on to hear of new events. */
export const EVENTS_CHANNEL = "prefect_events";

export const postgresEventLog: EventLog = {
  async lockAppends(tx) {
    await tx.queryText("SELECT pg_advisory_xact_lock($1)", [EVENT_APPEND_LOCK_KEY]);
  },
  async announceAppends(tx) {
    await tx.queryText(`SELECT pg_notify('${EVENTS_CHANNEL}', '')`, []);
  },
};
