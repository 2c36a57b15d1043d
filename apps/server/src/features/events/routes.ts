/**
 * Events: receive (`POST /events`, websocket `/events/in`), read (`/events/filter` with paging through
 * `/events/filter/next`), count (`/events/count-by/{countable}`) and stream (websocket `/events/out`),
 * as Prefect's `api/events.py`. Received events get their `received` time and go on the context's
 * EventBus; the event persister stores them and the task-run recorder turns task-run events into rows.
 */
import type { WebSocket } from "@fastify/websocket";
import { addSeconds, type EventGroupCount, fromMicros, now, type Timestamp, TimestampSchema, toMicros, Uuid } from "@prefect/db";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../app.js";
import type { ReceivedEvent } from "../events/bus.js";
import { type EventFilterInput, eventMatches, type ResolvedEventFilter, resolveEventFilter, toWireEvent, type WireEvent } from "../events/filter.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import {
  acceptPrefectSocket,
  CLOSE_INVALID_PAYLOAD,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_UNSUPPORTED_DATA,
  closeSocket,
  legacyClientGuard,
  nextObject,
  SocketMessages,
} from "../http/prefect-socket.js";
import type { Routes } from "../http/zod.js";

/** Prefect's INTERACTIVE_PAGE_SIZE: the default and largest page of `/events/filter`. */
const PAGE_SIZE = 50;
/** PREFECT_SERVER_EVENTS_MAXIMUM_WEBSOCKET_BACKFILL (15 minutes) and ..._WEBSOCKET_BACKFILL_PAGE_SIZE. */
const MAX_BACKFILL_SECONDS = 15 * 60;
const BACKFILL_PAGE_SIZE = 250;
/** Prefect's SUBSCRIPTION_BACKLOG: events waiting for one slow subscriber beyond this are dropped. */
const SUBSCRIPTION_BACKLOG = 256;
/** PREFECT_SERVER_EVENTS_MAXIMUM_LABELS_PER_RESOURCE, ..._MAXIMUM_RELATED_RESOURCES, ..._MAXIMUM_EVENT_NAME_LENGTH. */
const MAX_LABELS_PER_RESOURCE = 500;
const MAX_RELATED_RESOURCES = 100;
const MAX_EVENT_NAME_LENGTH = 1024;
/** How long shutdown waits for websocket clients to finish their close handshake. */
const CLOSE_GRACE_MS = 5_000;

function resourceSchema(kind: "Resources" | "Related Resources") {
  return z.record(z.string(), z.string()).superRefine((labels, ctx) => {
    if (Object.keys(labels).length > MAX_LABELS_PER_RESOURCE) {
      ctx.addIssue({ code: "custom", message: `The maximum number of labels per resource is ${MAX_LABELS_PER_RESOURCE}` });
    }
    if (!("prefect.resource.id" in labels)) ctx.addIssue({ code: "custom", message: `${kind} must include the prefect.resource.id label` });
    else if (!labels["prefect.resource.id"]) ctx.addIssue({ code: "custom", message: "The prefect.resource.id label must be non-empty" });
    if (kind === "Related Resources") {
      if (!("prefect.resource.role" in labels)) ctx.addIssue({ code: "custom", message: "Related Resources must include the prefect.resource.role label" });
      else if (!labels["prefect.resource.role"]) ctx.addIssue({ code: "custom", message: "The prefect.resource.role label must be non-empty" });
    }
  });
}

/**
 * Prefect's Event (client side): unknown fields are ignored, and so is a `received` the client sends
 * (the server sets it). Event names must not be empty here (the events table refuses them).
 */
export const IncomingEvent = z.object({
  occurred: TimestampSchema,
  event: z
    .string()
    .min(1, { message: "Event name must not be empty" })
    .max(MAX_EVENT_NAME_LENGTH, { message: `Event name must be at most ${MAX_EVENT_NAME_LENGTH} characters` }),
  resource: resourceSchema("Resources"),
  related: z
    .array(resourceSchema("Related Resources"))
    .max(MAX_RELATED_RESOURCES, { message: `The maximum number of related resources is ${MAX_RELATED_RESOURCES}` })
    .default([]),
  payload: z.record(z.string(), z.unknown()).default({}),
  id: Uuid,
  follows: Uuid.nullish().transform((v) => v ?? null),
});
export type IncomingEvent = z.output<typeof IncomingEvent>;

const receive = (event: IncomingEvent): ReceivedEvent => ({ ...event, received: now() });

function summary(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message)).join("; ");
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
function fromPageToken(raw: string): { filter: ResolvedEventFilter; count: number; pageSize: number; offset: number } | undefined {
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

function nextPageLink(request: FastifyRequest, token: string | null): string | null {
  if (!token) return null;
  const outer = Buffer.from(token).toString("base64");
  return `${request.protocol}://${request.host}/api/events/filter/next?page-token=${encodeURIComponent(outer)}`;
}

/** Prefect's `logical_limit`: asking for given ids, there can be no more rows than ids. */
function logicalLimit(filter: EventFilterInput, limit: number): number {
  const ids = filter.id?.id;
  return ids && ids.length > 0 ? Math.min(limit, ids.length) : limit;
}

// ---------------------------------------------------------------------------------------------- counting

type TimeUnit = z.output<typeof api.TimeUnit>;
const UNIT_SECONDS: Record<TimeUnit, number> = { week: 7 * 86_400, day: 86_400, hour: 3_600, minute: 60, second: 1 };
/** Prefect's PIVOT_DATETIME: time buckets are counted from here. */
const PIVOT = toMicros("2024-04-01T00:00:00.000000Z");
const MAX_BUCKETS = 1000;

const deltaMicros = (unit: TimeUnit, interval: number) => Math.round(UNIT_SECONDS[unit] * interval * 1e6);

/** Prefect's TimeUnit.validate_buckets. */
function validateBuckets(since: Timestamp, until: Timestamp, unit: TimeUnit, interval: number): void {
  if (interval < 0.01) throw new HttpError(422, "The minimum interval is 0.01");
  const buckets = Math.ceil((toMicros(until) - toMicros(since)) / deltaMicros(unit, interval));
  if (buckets > MAX_BUCKETS) {
    throw new HttpError(
      422,
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

/** Python's `datetime.isoformat()` of a UTC datetime: `2026-03-01T00:00:00+00:00`, microseconds only when non-zero. */
function isoformat(micros: number): string {
  const ts = fromMicros(micros);
  const fraction = ts.slice(20, 26);
  return `${ts.slice(0, 19)}${fraction === "000000" ? "" : `.${fraction}`}+00:00`;
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

type Countable = "day" | "time" | "event" | "resource";

// ---------------------------------------------------------------------------------------------- routes

export function eventRoutes({ db, events: bus, settings }: AppContext): Routes {
  return async (app) => {
    const sockets = new Set<WebSocket>();
    const track = (socket: WebSocket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    };
    // On shutdown, websocket clients are asked to close (by @fastify/websocket, and here with 1001).
    // The services stop only after `app.close()`, which waits for these sockets to end, so everything
    // a client sent before its close handshake is on the bus by then; a client that never answers the
    // close is cut off after CLOSE_GRACE_MS rather than holding up the shutdown.
    app.addHook("onClose", async () => {
      const open = [...sockets];
      for (const socket of open) closeSocket(socket, 1001, "Server shutting down");
      await Promise.all(
        open.map(
          (socket) =>
            new Promise<void>((resolve) => {
              if (socket.readyState === socket.CLOSED) return resolve();
              const timer = setTimeout(() => {
                socket.terminate();
                resolve();
              }, CLOSE_GRACE_MS);
              socket.once("close", () => {
                clearTimeout(timer);
                resolve();
              });
            }),
        ),
      );
    });

    const page = async (request: FastifyRequest, filter: ResolvedEventFilter, pageSize: number, offset: number, knownCount?: number) => {
      const total = knownCount ?? (await db.events.count(filter));
      const events = await db.events.read({ filter, limit: logicalLimit(filter, pageSize), offset });
      return { events: events.map(toWireEvent), total, next_page: nextPageLink(request, toPageToken(filter, total, pageSize, offset)) };
    };

    app.post("/events", { schema: { body: z.array(IncomingEvent) } }, async (request, reply) => {
      bus.publish(request.body.map(receive));
      return reply.code(204).send();
    });

    app.post("/events/filter", { schema: { body: api.Body_read_events_events_filter_post } }, async (request) => {
      const filter = resolveEventFilter(request.body.filter);
      return page(request, filter, request.body.limit ?? PAGE_SIZE, 0);
    });

    app.get("/events/filter/next", { schema: { querystring: z.object({ "page-token": z.string() }) } }, async (request) => {
      const token = fromPageToken(request.query["page-token"]);
      if (!token) throw new HttpError(403, "Forbidden");
      return page(request, token.filter, token.pageSize, token.offset, token.count);
    });

    app.post(
      "/events/count-by/:countable",
      {
        schema: {
          params: z.strictObject({ countable: z.enum(["day", "time", "event", "resource"]) }),
          body: api.Body_count_account_events_events_count_by__countable__post,
        },
      },
      async (request) => {
        const countable: Countable = request.params.countable;
        const at = now();
        const filter = resolveEventFilter(request.body.filter, at);
        const unit = request.body.time_unit ?? "day";
        const interval = request.body.time_interval ?? 1;
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
        const counts = spans.map(([start, end], i) => ({ value: String(i), label: isoformat(start), count: 0, start_time: fromMicros(start), end_time: fromMicros(end) }));
        const groups: EventGroupCount[] = await db.events.countGroups(filter, { by: "time", origin, intervalSeconds: bucketMicros / 1e6 });
        for (const group of groups) {
          const span = counts[originIndex + Number(group.value) - first];
          if (span) span.count = group.count;
        }
        return counts;
      },
    );

    app.get("/events/in", { websocket: true, onRequest: legacyClientGuard(settings.authString) }, async (socket, request) => {
      track(socket);
      const messages = new SocketMessages(socket);
      if (!(await acceptPrefectSocket(socket, request, messages, settings.authString))) return;
      let stopped = false;
      // Each event is published as its frame arrives, synchronously: by the time the client's next
      // ping is answered, everything it sent before is on the bus.
      messages.drainTo((message) => {
        if (stopped) return;
        if (!("text" in message)) {
          stopped = true;
          return closeSocket(socket, CLOSE_UNSUPPORTED_DATA, "Expected text frames");
        }
        let json: unknown;
        try {
          json = JSON.parse(message.text);
        } catch {
          stopped = true;
          return closeSocket(socket, CLOSE_INVALID_PAYLOAD, "Invalid event: not JSON");
        }
        const parsed = IncomingEvent.safeParse(json);
        if (!parsed.success) {
          // Prefect's endpoint raises on an invalid event, which ends the connection; the client
          // reconnects and resends what was not confirmed.
          stopped = true;
          request.log.warn({ problems: summary(parsed.error) }, "invalid event on /api/events/in; closing the connection");
          return closeSocket(socket, CLOSE_INVALID_PAYLOAD, `Invalid event: ${summary(parsed.error)}`);
        }
        bus.publish([receive(parsed.data)]);
      });
    });

    app.get("/events/out", { websocket: true, onRequest: legacyClientGuard(settings.authString) }, async (socket, request) => {
      track(socket);
      const messages = new SocketMessages(socket);
      if (!(await acceptPrefectSocket(socket, request, messages, settings.authString))) return;
      const message = await nextObject(messages);
      if (message === null) return;
      if (message?.type !== "filter") return closeSocket(socket, CLOSE_PROTOCOL_ERROR, "Expected 'filter' message");
      const parsedFilter = api.EventFilter.safeParse(message.filter);
      if (!parsedFilter.success) return closeSocket(socket, CLOSE_PROTOCOL_ERROR, `Invalid filter: ${summary(parsedFilter.error)}`);
      // Whatever the client sends from now on is read and ignored.
      messages.drainTo(() => undefined);
      const wantsBackfill = message.backfill === undefined ? true : Boolean(message.backfill);

      const at = now();
      const filter = resolveEventFilter(parsedFilter.data, at);
      const earliest = addSeconds(at, -MAX_BACKFILL_SECONDS);
      if (filter.occurred.since < earliest) filter.occurred.since = earliest;
      filter.order = "ASC";

      const open = () => socket.readyState === socket.OPEN;
      const send = (event: WireEvent) =>
        new Promise<void>((resolve) => {
          if (!open()) return resolve();
          socket.send(JSON.stringify({ type: "event", event }), () => resolve());
        });

      // Subscribe first so that nothing is missed, then backfill from the database, then stream.
      const backlog: WireEvent[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = bus.subscribe((received) => {
        for (const event of received) {
          const wire = toWireEvent(event);
          if (!eventMatches(filter, wire)) continue;
          if (backlog.length >= SUBSCRIPTION_BACKLOG) continue;
          backlog.push(wire);
        }
        wake?.();
      });
      socket.on("close", () => {
        unsubscribe();
        wake?.();
      });

      const backfilled = new Set<string>();
      try {
        if (wantsBackfill) {
          for (let offset = 0; open(); offset += BACKFILL_PAGE_SIZE) {
            const rows = await db.events.read({ filter, limit: BACKFILL_PAGE_SIZE, offset });
            for (const row of rows) {
              backfilled.add(row.id);
              await send(toWireEvent(row));
            }
            if (rows.length < BACKFILL_PAGE_SIZE) break;
          }
        }
      } catch (error) {
        request.log.error({ err: error }, "could not backfill events for /api/events/out");
        unsubscribe();
        return closeSocket(socket, 1011, "Could not read events");
      }

      while (open()) {
        const event = backlog.shift();
        if (!event) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        if (backfilled.delete(event.id)) continue;
        await send(event);
      }
    });
  };
}
