/**
 * Events: received (stamped and put on the event stream, where the event persister stores them),
 * read a page at a time (Prefect's page tokens), counted by day, time, event or resource as Prefect's
 * `count-by` does.
 */
import { type EventGroupCount, fromMicros, now, type PositionedEvent, type Repositories, type Timestamp, toMicros } from "@prefect/db";
import { isoformat, type ReceivedEvent } from "@prefect/orchestration";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { unprocessableDetail } from "../../prefect/errors.js";
import { type EventFilterInput, type ResolvedEventFilter, resolveEventFilter, toWireEvent } from "./filter.js";
import type { IncomingEvent } from "./schemas.js";

/** Stores events (those stored already, resent after a reconnect, are skipped). */
export async function storeEvents(db: Repositories, events: readonly ReceivedEvent[]): Promise<PositionedEvent[]> {
  return db.events.createMany(events);
}

/** Puts events received from clients on the event stream, stamped as received now. */
export function receiveEvents(context: Pick<AppContext, "events">, events: readonly IncomingEvent[]): void {
  const received = now();
  context.events.publish(events.map((event) => ({ ...event, received })));
}

// ---------------------------------------------------------------------------------------------- paging

const PageToken = z.object({
  filter: api.EventFilter,
  count: z.number().int().min(0),
  page_size: z.number().int().min(0),
  offset: z.number().int().min(0),
});

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Prefect's `to_page_token`: null when this page reaches the end. */
function toPageToken(filter: ResolvedEventFilter, count: number, pageSize: number, offset: number): string | null {
  if (offset + pageSize >= count) return null;
  return Buffer.from(JSON.stringify({ filter, count, page_size: pageSize, offset: offset + pageSize })).toString("base64");
}

/** `page-token` as the link carries it (base64 once more, as Prefect's link does); undefined if it is not one of ours. */
export function fromPageToken(raw: string): { filter: ResolvedEventFilter; count: number; pageSize: number; offset: number } | undefined {
  // A client that did not URL-encode the link has had its '+' turned into spaces.
  const outer = raw.replace(/ /g, "+");
  if (!outer || !BASE64.test(outer)) return undefined;
  const inner = Buffer.from(outer, "base64").toString("utf8");
  if (!inner || !BASE64.test(inner)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(inner, "base64").toString("utf8"));
  } catch {
    return undefined;
  }
  const token = PageToken.safeParse(parsed);
  if (!token.success) return undefined;
  return { filter: resolveEventFilter(token.data.filter), count: token.data.count, pageSize: token.data.page_size, offset: token.data.offset };
}


/** Prefect's `logical_limit`: asking for given ids, there can be no more rows than ids. */
function logicalLimit(filter: EventFilterInput, limit: number): number {
  const ids = filter.id?.id;
  return ids && ids.length > 0 ? Math.min(limit, ids.length) : limit;
}

/** A page of events, the total, and the token of the next page (null at the end). */
export async function readEventPage(db: Repositories, filter: ResolvedEventFilter, pageSize: number, offset: number, knownCount?: number) {
  const total = knownCount ?? (await db.events.count(filter));
  const events = await db.events.read({ filter, limit: logicalLimit(filter, pageSize), offset });
  return { events: events.map(toWireEvent), total, token: toPageToken(filter, total, pageSize, offset) };
}

/** Up to `limit` stored events the (resolved) filter selects, from `offset`. */
export const readEvents = (db: Repositories, filter: ResolvedEventFilter, limit: number, offset: number) => db.events.read({ filter, limit, offset });

// ---------------------------------------------------------------------------------------------- counting

type TimeUnit = z.output<typeof api.TimeUnit>;
const UNIT_SECONDS: Record<TimeUnit, number> = { week: 7 * 86_400, day: 86_400, hour: 3_600, minute: 60, second: 1 };
/** Prefect's PIVOT_DATETIME: time buckets are counted from here. */
const PIVOT = toMicros("2024-04-01T00:00:00.000000Z");
const MAX_BUCKETS = 1000;

const deltaMicros = (unit: TimeUnit, interval: number) => Math.round(UNIT_SECONDS[unit] * interval * 1e6);

/** Prefect's TimeUnit.validate_buckets. */
function validateBuckets(since: Timestamp, until: Timestamp, unit: TimeUnit, interval: number): void {
  if (interval < 0.01) throw unprocessableDetail("The minimum interval is 0.01");
  const buckets = Math.ceil((toMicros(until) - toMicros(since)) / deltaMicros(unit, interval));
  if (buckets > MAX_BUCKETS) {
    throw unprocessableDetail(
      `The given interval would create ${buckets} buckets, which is too many. Please increase the interval or reduce the time range to produce ${MAX_BUCKETS} buckets or fewer.`,
    );
  }
}

/** The last microsecond of the unit `at` is in (weeks end on Sunday). */
function endOfPeriod(at: Timestamp, unit: TimeUnit): number {
  const micros = toMicros(at);
  const floorTo = (size: number) => micros - (((micros % size) + size) % size);
  switch (unit) {
    case "second":
      return floorTo(1e6) + 999_999;
    case "minute":
      return floorTo(60e6) + 60e6 - 1;
    case "hour":
      return floorTo(3600e6) + 3600e6 - 1;
    case "day":
      return floorTo(86_400e6) + 86_400e6 - 1;
    case "week": {
      const weekday = new Date(micros / 1000).getUTCDay() || 7; // Monday 1 .. Sunday 7
      return floorTo(86_400e6) + (7 - weekday) * 86_400e6 + 86_400e6 - 1;
    }
  }
}


/** Prefect's TimeUnit.get_interval_spans: the index of the first span since the pivot, and the spans. */
function intervalSpans(since: Timestamp, until: Timestamp, unit: TimeUnit, interval: number, at: Timestamp) {
  const delta = deltaMicros(unit, interval);
  let end = toMicros(until);
  if (end > toMicros(at)) end = endOfPeriod(at, unit);
  const first = Math.floor((toMicros(since) - PIVOT) / delta);
  const spans: [number, number][] = [];
  for (let start = PIVOT + delta * first; start < end; start += delta) spans.push([start, start + delta - 1]);
  return { first, spans };
}

export type Countable = "day" | "time" | "event" | "resource";

/**
 * Prefect's `count-by`: per event name or resource (most first), or per time span of the unit and
 * interval asked for (every span listed, with 0 when empty).
 */
export async function countEvents(db: Repositories, countable: Countable, body: { filter?: EventFilterInput | null | undefined; time_unit?: TimeUnit | null | undefined; time_interval?: number | null | undefined }) {
  const at = now();
  const filter = resolveEventFilter(body.filter, at);
  const unit = body.time_unit ?? "day";
  const interval = body.time_interval ?? 1;
  validateBuckets(filter.occurred.since, filter.occurred.until, unit, interval);

  if (countable === "event" || countable === "resource") {
    const groups = await db.events.countGroups(filter, { by: countable });
    groups.sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    return groups.map((g) => ({ value: g.value, label: g.label, count: g.count, start_time: g.start_time, end_time: g.end_time }));
  }

  // Time buckets: `day` is `time` with one-day buckets in the database, and both are laid out on
  // the spans of the requested unit and interval, every span listed (with 0 when empty).
  const { first, spans } = intervalSpans(filter.occurred.since, filter.occurred.until, unit, interval, at);
  const bucketMicros = countable === "day" ? deltaMicros("day", 1) : deltaMicros(unit, interval);
  const originIndex = Math.floor((toMicros(filter.occurred.since) - PIVOT) / bucketMicros);
  const origin = fromMicros(PIVOT + originIndex * bucketMicros);
  const counts = spans.map(([start, end], i) => ({ value: String(i), label: isoformat(fromMicros(start)), count: 0, start_time: fromMicros(start), end_time: fromMicros(end) }));
  const groups: EventGroupCount[] = await db.events.countGroups(filter, { by: "time", origin, intervalSeconds: bucketMicros / 1e6 });
  for (const group of groups) {
    const span = counts[originIndex + Number(group.value) - first];
    if (span) span.count = group.count;
  }
  return counts;
}
