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
import { insertMany } from "./batch.js";
import type { Queryable } from "./driver/types.js";
import { sql } from "./sql.js";
import { checkIndexedText, tables } from "./tables.js";

/** Rows of a batch of events (every column but `position`) and of their resources. */
export interface EventAppend {
  /** In the order their positions follow. */
  readonly events: readonly Record<string, unknown>[];
  /** `event_id` says whose; those of events stored already are not written. */
  readonly resources: readonly Record<string, unknown>[];
}

export interface EventLog {
  /**
   * Inside the appending transaction: stores the events not stored yet, numbered from the head in
   * the order given, with their resources, so that readers see positions in increasing order, and
   * wakes readers in other processes once the transaction commits. Returns the events it stored,
   * with their positions, in position order.
   */
  append(tx: Queryable, batch: EventAppend): Promise<AppendedEvent[]>;
}

export interface AppendedEvent {
  readonly id: string;
  readonly position: number;
}

export const EVENT_COLUMNS = Object.keys(tables.events.columns).filter((c) => c !== "position");
export const RESOURCE_COLUMNS = Object.keys(tables.event_resources.columns);

/** Refuses indexed text over the limit in any row, before anything is written. */
export function checkAppend(batch: EventAppend): void {
  for (const row of batch.events) for (const column of EVENT_COLUMNS) checkIndexedText(tables.events, column, row[column]);
  for (const row of batch.resources) for (const column of RESOURCE_COLUMNS) checkIndexedText(tables.event_resources, column, row[column]);
}

/** The highest stored position (0 for none). */
export async function eventsHead(q: Queryable): Promise<number> {
  const rows = await q.query<{ head: unknown }>(sql`SELECT COALESCE(MAX(position), 0) AS head FROM events`);
  return Number(rows[0]?.head ?? 0);
}

/**
 * An append as separate statements, for a transaction that already excludes other appends: skip
 * the events stored already, number the rest from the head, insert them and their resources.
 */
export async function appendStatements(tx: Queryable, batch: EventAppend): Promise<AppendedEvent[]> {
  const ids = batch.events.map((e) => e.id as string);
  const known = new Set((await tx.query<{ id: string }>(sql`SELECT id FROM events WHERE ${tx.dialect.inList(sql.raw("id"), ids)}`)).map((r) => r.id));
  const fresh = batch.events.filter((e) => !known.has(e.id as string));
  if (fresh.length === 0) return [];
  let position = await eventsHead(tx);
  const numbered = fresh.map((e) => ({ ...e, position: ++position }));
  const stored = await insertMany(tx, tables.events, [...EVENT_COLUMNS, "position"], numbered, { conflict: "ON CONFLICT (id) DO NOTHING", returnIds: true });
  const storedIds = new Set(stored);
  await insertMany(
    tx,
    tables.event_resources,
    RESOURCE_COLUMNS,
    batch.resources.filter((r) => storedIds.has(r.event_id as string)),
  );
  return fresh.map((e, i) => ({ id: e.id as string, position: numbered[i]!.position })).filter((e) => storedIds.has(e.id));
}
