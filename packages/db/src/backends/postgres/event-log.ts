/**
 * PostgreSQL: appends to the events table take a transaction-level advisory lock, then read the head
 * and number their events in the next statement (whose snapshot sees every append committed before
 * the lock was granted), so that they commit one after the other in position order; and NOTIFY
 * `EVENTS_CHANNEL` (sent by PostgreSQL when, and only if, the transaction commits) with the position of
 * the newest event stored as its payload.
 *
 * After the lock, one statement does the rest: the batch arrives as two JSON parameters (events and
 * resources) turned into rows of the tables' own types by `jsonb_populate_recordset`; events stored
 * already are skipped (no position is spent on them), the rest numbered from the head in the order
 * given and inserted, then the resources of the inserted ones. The lock is held for two round trips
 * (this statement and COMMIT) instead of one per statement.
 */
import { type AppendedEvent, checkAppend, EVENT_COLUMNS, type EventLog, RESOURCE_COLUMNS } from "../../event-log.js";

/** Advisory lock key of event appends: any fixed 64-bit number unlikely to clash with others'. */
const EVENT_APPEND_LOCK_KEY = "72707369455179";
/** The channel readers LISTEN on to hear of new events. */
export const EVENTS_CHANNEL = "prefect_events";

const list = (columns: readonly string[], alias: string) => columns.map((c) => `${alias}."${c}"`).join(", ");
const names = (columns: readonly string[]) => columns.map((c) => `"${c}"`).join(", ");

export const APPEND_EVENTS = `WITH head AS (SELECT COALESCE(MAX(position), 0) AS h FROM events),
fresh AS (
  SELECT ${list(EVENT_COLUMNS, "x")}, row_number() OVER (ORDER BY x.ordinality) AS n
  FROM jsonb_populate_recordset(NULL::events, $1::jsonb) WITH ORDINALITY AS x
  WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.id)
),
ins AS (
  INSERT INTO events (${names(EVENT_COLUMNS)}, "position")
  SELECT ${list(EVENT_COLUMNS, "f")}, (SELECT h FROM head) + f.n FROM fresh f ORDER BY f.n
  ON CONFLICT (id) DO NOTHING RETURNING id, "position"
),
res AS (
  INSERT INTO event_resources (${names(RESOURCE_COLUMNS)})
  SELECT ${list(RESOURCE_COLUMNS, "r")} FROM jsonb_populate_recordset(NULL::event_resources, $2::jsonb) AS r
  WHERE r.event_id IN (SELECT id FROM ins)
)
SELECT ins.id, ins."position", (SELECT pg_notify('${EVENTS_CHANNEL}', (SELECT max("position") FROM ins)::text)) AS notified FROM ins`;

export const postgresEventLog: EventLog = {
  async append(tx, batch) {
    checkAppend(batch);
    await tx.queryText("SELECT pg_advisory_xact_lock($1)", [EVENT_APPEND_LOCK_KEY]);
    const rows = await tx.queryText<{ id: string; position: unknown }>(APPEND_EVENTS, [JSON.stringify(batch.events), JSON.stringify(batch.resources)]);
    return rows.map((r): AppendedEvent => ({ id: r.id, position: Number(r.position) })).sort((a, b) => a.position - b.position);
  },
};
