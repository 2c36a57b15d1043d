import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Dialect } from "../dialect.js";
import { page, where } from "../filters.js";
import { InvalidError } from "../errors.js";
import { checkId, uuid7 } from "../ids.js";
import type { Page } from "../schemas/common.js";
import { EventCreate, type EventFilter, EventFilter as EventFilterSchema, type ResourceSpecification, type StoredEvent } from "../schemas/events.js";
import { eventsHead } from "../event-log.js";
import { type Sql, sql } from "../sql.js";
import { rowDecoder, selectList, tables } from "../tables.js";
import { now, type Timestamp, toMicros } from "../timestamps.js";
import { textSearchSql } from "../text-search.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface EventReadOptions extends Page {
  readonly filter?: EventFilter | null | undefined;
}

/** A stored event with its position in the events table (increasing in the order events were stored). */
export interface PositionedEvent extends StoredEvent {
  position: number;
}

export interface EventReadAfterOptions {
  readonly limit: number;
  readonly filter?: EventFilter | null | undefined;
  /** The last position read (a group's window, `claimGroup`). */
  readonly through?: number;
}

/** The events a consumer group has claimed: those after `cursor`, up to and including `through`. */
export interface GroupWindow {
  /** The group's cursor: the last position it handled. */
  readonly cursor: number;
  /** The last position of the window (`cursor` when nothing new was stored). */
  readonly through: number;
  /** Events in the window. */
  readonly count: number;
}

export interface EventRepository {
  /**
   * Stores a batch of events with one row per resource in event_resources, atomically. Events whose
   * id is already stored are skipped (clients resend after reconnecting); returns those stored now,
   * in position order, as `readAfter` reads them.
   */
  createMany(events: readonly EventCreate[]): Promise<PositionedEvent[]>;
  /**
   * The position of the newest stored event (0 when there is none). Positions become visible in
   * increasing order: once a reader sees position n, no event with a lower position appears later.
   */
  head(): Promise<number>;
  /** Up to `limit` events after `position` (that the filter selects), in position order. */
  readAfter(position: number, options: EventReadAfterOptions): Promise<PositionedEvent[]>;
  /**
   * Consumer groups: each event handled once by a group, whichever process reads it. Inside
   * `db.transaction`, locks the group's cursor until the transaction ends (a group seen for the first
   * time starts at the head) and returns up to `limit` events after it, in position order. Save
   * progress with `advanceGroup` in the same transaction as the handler's own writes.
   */
  claimGroupBatch(group: string, limit: number): Promise<PositionedEvent[]>;
  /**
   * As `claimGroupBatch`, without reading the events: locks the group's cursor and measures the
   * window of up to `limit` events after it. The group reads those it needs (`readAfter` with the
   * window's `cursor` and `through`, and a filter) and moves its cursor to `through`: a group that
   * takes few of the events stored reads only those, and one that takes none reads none.
   */
  claimGroup(group: string, limit: number): Promise<GroupWindow>;
  /** Moves the group's cursor forward to `position` (never back), inside the transaction of `claimGroupBatch`. */
  advanceGroup(group: string, position: number): Promise<void>;
  get(id: string): Promise<StoredEvent | null>;
  read(options?: EventReadOptions): Promise<StoredEvent[]>;
  count(filter?: EventFilter | null): Promise<number>;
  /** Number of matching events per event name or per primary resource id. */
  countBy(filter: EventFilter | null | undefined, countable: "event" | "resource"): Promise<{ value: string; count: number }[]>;
  /**
   * Matching events grouped as Prefect's `count-by` counts them: by event name (labelled with it), by
   * primary resource id (labelled with the newest event's `prefect.resource.name`, else `prefect.name`,
   * else the id), or by time bucket (`value` = the bucket's index, counting `intervalSeconds` wide
   * buckets from `origin`, which must not be later than the filter's `occurred.since`). Each group has
   * its count and the oldest and newest `occurred`. Unordered.
   */
  countGroups(filter: EventFilter | null | undefined, group: EventGrouping): Promise<EventGroupCount[]>;
}

export type EventGrouping = { readonly by: "event" | "resource" } | { readonly by: "time"; readonly origin: Timestamp; readonly intervalSeconds: number };

export interface EventGroupCount {
  value: string;
  label: string;
  count: number;
  start_time: Timestamp;
  end_time: Timestamp;
}

const EventBatch = z.array(EventCreate);

/** Whether a string in `value` (keys included) holds a NUL character. */
function hasNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\u0000");
  if (Array.isArray(value)) return value.some(hasNul);
  if (value !== null && typeof value === "object") return Object.entries(value).some(([key, v]) => key.includes("\u0000") || hasNul(v));
  return false;
}

/**
 * `value` with the NUL characters of its strings (keys included) removed: PostgreSQL stores none in
 * text or jsonb, SQLite does; both drop them, so that an event is stored alike on both (as logs are).
 */
function withoutNul<T>(value: T): T {
  if (typeof value === "string") return value.replaceAll("\u0000", "") as T;
  if (Array.isArray(value)) return value.map(withoutNul) as T;
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, v]) => [key.replaceAll("\u0000", ""), withoutNul(v)])) as T;
  return value;
}
const eventSpec = tables.events;

/** Conditions on one resource's labels (a JSON object in `column`), Prefect's ResourceSpecification. */
function labelConditions(d: Dialect, column: Sql, labels: ResourceSpecification): Sql {
  return sql.and(
    Object.entries(labels).map(([label, value]) => {
      const values = Array.isArray(value) ? value : [value];
      const text = d.jsonText(column, label);
      const match = (pattern: string): Sql => {
        if (pattern === "*") return sql`${text} IS NOT NULL`;
        if (pattern.endsWith("*")) return d.startsWith(text, pattern.slice(0, -1));
        return sql`${text} = ${pattern}`;
      };
      const positive = values.filter((v) => !v.startsWith("!"));
      const negative = values.filter((v) => v.startsWith("!")).map((v) => v.slice(1));
      return sql.and([
        positive.length ? sql.or(positive.map(match)) : sql.empty,
        ...negative.map((v) => sql`${text} IS NOT NULL AND NOT (${match(v)})`),
      ]);
    }),
  );
}

/** A list condition applies only when the list has entries: an empty list means "no filter", as in Prefect. */
const given = <T>(list: readonly T[] | null | undefined): list is readonly T[] => Array.isArray(list) && list.length > 0;
const givenLabels = (labels: ResourceSpecification | null | undefined): labels is ResourceSpecification => !!labels && Object.keys(labels).length > 0;

function idConditions(d: Dialect, column: Sql, ids?: readonly string[] | null, prefixes?: readonly string[] | null): Sql[] {
  return [given(ids) ? d.inList(column, ids) : sql.empty, given(prefixes) ? sql.or(prefixes.map((p) => d.startsWith(column, p))) : sql.empty];
}

const asList = <T>(value: T | T[] | null | undefined): T[] => (value === null || value === undefined ? [] : Array.isArray(value) ? value : [value]);

export function eventFilterSql(d: Dialect, input: EventFilter | null | undefined, a: string): Sql {
  if (input === null || input === undefined) return sql.empty;
  const f = parseInput(EventFilterSchema, input, "event filter");
  const col = (c: string) => sql.raw(`${a}."${c}"`);
  const conditions: Sql[] = [];
  if (f.occurred?.since) conditions.push(sql`${col("occurred")} >= ${f.occurred.since}`);
  if (f.occurred?.until) conditions.push(sql`${col("occurred")} <= ${f.occurred.until}`);
  if (f.event) {
    if (given(f.event.prefix)) conditions.push(sql.or(f.event.prefix.map((p) => d.startsWith(col("event"), p))));
    if (given(f.event.exclude_prefix)) conditions.push(...f.event.exclude_prefix.map((p) => sql`NOT (${d.startsWith(col("event"), p)})`));
    if (given(f.event.name)) conditions.push(d.inList(col("event"), f.event.name));
    if (given(f.event.exclude_name)) conditions.push(d.notInList(col("event"), f.event.exclude_name));
  }
  if (f.resource) {
    conditions.push(...idConditions(d, col("resource_id"), f.resource.id, f.resource.id_prefix));
    if (givenLabels(f.resource.labels)) conditions.push(labelConditions(d, col("resource"), f.resource.labels));
  }
  for (const related of asList(f.related)) {
    const er = sql.raw("rer");
    const rowConditions = sql.and([
      sql`rer.resource_role <> ''`,
      given(related.id) ? d.inList(sql`${er}.resource_id`, related.id) : sql.empty,
      given(related.role) ? d.inList(sql`${er}.resource_role`, related.role) : sql.empty,
      givenLabels(related.labels) ? labelConditions(d, sql`${er}.resource`, related.labels) : sql.empty,
    ]);
    if (given(related.id) || given(related.role) || givenLabels(related.labels)) {
      conditions.push(sql`EXISTS (SELECT 1 FROM event_resources rer WHERE rer.event_id = ${col("id")} AND ${rowConditions})`);
    }
    const pairs = related.resources_in_roles;
    if (given(pairs)) {
      conditions.push(
        sql`EXISTS (SELECT 1 FROM event_resources rir WHERE rir.event_id = ${col("id")} AND ${sql.or(
          pairs.map(([id, role]) => sql`rir.resource_id = ${id} AND rir.resource_role = ${role}`),
        )})`,
      );
    }
  }
  for (const any of asList(f.any_resource)) {
    const rowConditions = sql.and([
      ...idConditions(d, sql.raw("aer.resource_id"), any.id, any.id_prefix),
      givenLabels(any.labels) ? labelConditions(d, sql.raw("aer.resource"), any.labels) : sql.empty,
    ]);
    conditions.push(sql`EXISTS (SELECT 1 FROM event_resources aer WHERE aer.event_id = ${col("id")} AND ${rowConditions})`);
  }
  if (given(f.id?.id)) conditions.push(d.inList(col("id"), f.id.id));
  if (f.text?.query.trim()) {
    conditions.push(
      textSearchSql(d, f.text.query, [col("event"), d.asText(col("resource")), d.asText(col("related")), d.asText(col("payload"))]),
    );
  }
  return sql.and(conditions);
}

/** Stored events in an order readers can follow: by occurred time (a batch's own order for equal times). */
const byOccurred = (a: { occurred: string }, b: { occurred: string }) => (a.occurred < b.occurred ? -1 : a.occurred > b.occurred ? 1 : 0);

function checkGroup(group: string): string {
  if (typeof group !== "string" || group.length === 0) throw new InvalidError("A consumer group needs a name.");
  return group;
}

function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidError(`Invalid limit: ${limit}`);
  return limit;
}

function checkPosition(position: number): number {
  if (!Number.isSafeInteger(position) || position < 0) throw new InvalidError(`Invalid event position: ${position}`);
  return position;
}

export function eventRepository({ q, backend }: RepositoryContext): EventRepository {
  const decodeRow = rowDecoder(q.dialect, eventSpec);
  const decodePositioned = (row: Record<string, unknown>): PositionedEvent => {
    const { created: _c, updated: _u, resource_id: _r, related_resource_ids: _ids, ...event } = decodeRow(row);
    return event as unknown as PositionedEvent;
  };
  const decode = (row: Record<string, unknown>): StoredEvent => {
    const { position: _p, ...event } = decodePositioned(row);
    return event;
  };
  const select = sql`SELECT ${selectList(eventSpec, "e")} FROM events e`;
  const headOf = eventsHead;
  const readAfter = async (position: number, options: EventReadAfterOptions) => {
    const through = options.through === undefined ? sql.empty : sql`e.position <= ${checkPosition(options.through)}`;
    const rows = await q.query(
      sql`${select}${where(sql.and([sql`e.position > ${checkPosition(position)}`, through, eventFilterSql(q.dialect, options.filter, "e")]))} ORDER BY e.position${page(q.dialect, options.limit, 0)}`,
    );
    return rows.map(decodePositioned);
  };
  const requireTransaction = (what: string) => {
    if (!q.inTransaction) throw new Error(`${what} runs inside db.transaction, which holds the group's cursor until the handler's writes commit.`);
  };
  /** Locks the group's cursor (a group seen for the first time joins at the head); its position. */
  const lockCursor = async (group: string): Promise<number> => {
    const name = checkGroup(group);
    const cursor = sql`SELECT g.position AS position FROM event_consumer_group g WHERE g.name = ${name}${q.dialect.forUpdate("g")}`;
    let rows = await q.query<{ position: unknown }>(cursor);
    if (rows.length === 0) {
      const at = now();
      await q.execute(
        sql`INSERT INTO event_consumer_group (id, created, updated, name, position) SELECT ${randomUUID()}, ${at}, ${at}, ${name}, COALESCE(MAX(position), 0) FROM events WHERE true ON CONFLICT (name) DO NOTHING`,
      );
      rows = await q.query<{ position: unknown }>(cursor);
    }
    return Number(rows[0]!.position);
  };

  return {
    async createMany(input) {
      const batch = parseInput(EventBatch, input, "events");
      if (batch.length === 0) return [];
      const recorded = now();
      const rows = new Map<string, StoredEvent & Record<string, unknown>>();
      for (const parsed of [...batch].sort(byOccurred)) {
        if (rows.has(parsed.id)) continue;
        const e = hasNul(parsed) ? withoutNul(parsed) : parsed;
        rows.set(e.id, {
          id: e.id,
          created: recorded,
          updated: recorded,
          occurred: e.occurred,
          event: e.event,
          resource_id: e.resource["prefect.resource.id"]!,
          resource: e.resource,
          related_resource_ids: e.related.map((r) => r["prefect.resource.id"]!),
          related: e.related,
          payload: e.payload,
          received: e.received ?? recorded,
          recorded,
          follows: e.follows ?? null,
        });
      }
      const events = [...rows.values()];
      const resources = events.flatMap((e) =>
        [{ ...e.resource, "prefect.resource.role": "" }, ...e.related].map((resource) => ({
          id: uuid7(),
          created: recorded,
          updated: recorded,
          occurred: e.occurred,
          resource_id: resource["prefect.resource.id"],
          resource_role: resource["prefect.resource.role"] ?? "",
          resource: (({ "prefect.resource.role": _role, ...rest }) => rest)(resource),
          event_id: e.id,
        })),
      );
      const write = async (tx: typeof q) => {
        const appended = await backend.eventLog.append(tx, { events, resources });
        return appended.map(({ id, position }) => {
          const { created: _c, updated: _u, resource_id: _r, related_resource_ids: _i, ...event } = rows.get(id)!;
          return { ...event, position } as PositionedEvent;
        });
      };
      return q.inTransaction ? write(q) : q.transaction(write);
    },

    head: () => headOf(q),

    readAfter,

    async claimGroupBatch(group, limit) {
      requireTransaction("claimGroupBatch");
      return readAfter(await lockCursor(group), { limit });
    },

    async claimGroup(group, limit) {
      requireTransaction("claimGroup");
      const cursor = await lockCursor(group);
      // Positions are read from their index alone.
      const [row] = await q.query<{ through: unknown; n: unknown }>(
        sql`SELECT MAX(w.position) AS through, COUNT(*) AS n FROM (SELECT e.position AS position FROM events e WHERE e.position > ${cursor} ORDER BY e.position${page(q.dialect, checkLimit(limit), 0)}) w`,
      );
      const count = Number(row?.n ?? 0);
      return { cursor, through: count > 0 ? Number(row!.through) : cursor, count };
    },

    async advanceGroup(group, position) {
      requireTransaction("advanceGroup");
      const name = checkGroup(group);
      await q.execute(
        sql`UPDATE event_consumer_group SET position = ${checkPosition(position)}, updated = ${now()} WHERE name = ${name} AND position < ${position}`,
      );
    },

    async get(id) {
      const rows = await q.query(sql`${select} WHERE e.id = ${checkId(id, "event id")}`);
      return rows[0] ? decode(rows[0]) : null;
    },

    async read(options = {}) {
      const direction = options.filter?.order === "ASC" ? "ASC" : "DESC";
      const rows = await q.query(
        sql`${select}${where(eventFilterSql(q.dialect, options.filter, "e"))} ORDER BY e.occurred ${sql.raw(direction)}, e.id ${sql.raw(direction)}${page(
          q.dialect,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(decode);
    },

    async count(filter) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM events e${where(eventFilterSql(q.dialect, filter, "e"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async countBy(filter, countable) {
      const column = sql.raw(countable === "event" ? `e."event"` : `e."resource_id"`);
      const rows = await q.query<{ value: string; n: number }>(
        sql`SELECT ${column} AS value, count(*) AS n FROM events e${where(eventFilterSql(q.dialect, filter, "e"))} GROUP BY ${column} ORDER BY ${column}`,
      );
      return rows.map((r) => ({ value: r.value, count: Number(r.n) }));
    },

    async countGroups(filter, group) {
      const d = q.dialect;
      let value: Sql;
      let label: Sql;
      if (group.by === "time") {
        if (!(group.intervalSeconds > 0)) throw new InvalidError("The interval must be greater than 0.");
        const origin = toMicros(group.origin) / 1e6;
        value = d.truncate(sql`(${d.epochSeconds(sql.raw(`e."occurred"`))} - ${origin}) / ${group.intervalSeconds}`);
        label = value;
      } else if (group.by === "event") {
        value = sql.raw(`e."event"`);
        label = value;
      } else {
        value = sql.raw(`e."resource_id"`);
        label = sql`COALESCE(${d.jsonText(sql.raw(`e."resource"`), "prefect.resource.name")}, ${d.jsonText(sql.raw(`e."resource"`), "prefect.name")}, e."resource_id")`;
      }
      // Counted per (value, label), then each value takes the label of its newest events and is summed
      // up again (a resource's name may have changed over time).
      const rows = await q.query<{ value: unknown; label: unknown; n: unknown; start_time: unknown; end_time: unknown }>(sql`
        SELECT w.value AS value, w.label AS label, SUM(w.n) AS n, MIN(w.oldest) AS start_time, MAX(w.latest) AS end_time
        FROM (
          SELECT f.value, FIRST_VALUE(f.label) OVER (PARTITION BY f.value ORDER BY f.latest DESC) AS label, f.n, f.oldest, f.latest
          FROM (
            SELECT ${value} AS value, ${label} AS label, MAX(e."occurred") AS latest, MIN(e."occurred") AS oldest, count(*) AS n
            FROM events e${where(eventFilterSql(d, filter, "e"))}
            GROUP BY 1, 2
          ) f
        ) w
        GROUP BY w.value, w.label`);
      return rows.map((r) => ({
        value: String(r.value),
        label: String(r.label),
        count: Number(r.n),
        start_time: d.decodeTimestamp(r.start_time),
        end_time: d.decodeTimestamp(r.end_time),
      }));
    },
  };
}

