/**
 * Events: receive (`POST /events`, websocket `/events/in`), read (`/events/filter` with paging through
 * `/events/filter/next`), count (`/events/count-by/{countable}`) and stream (websocket `/events/out`),
 * as Prefect's `api/events.py`. Received events get their `received` time and go on the context's
 * EventBus, where the event persister stores them; `/events/out` streams the events stored by any
 * process from the context's feed (the reader of the events table), after its backfill.
 */
import type { WebSocket } from "@fastify/websocket";
import { addSeconds, now } from "@prefect/db";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import {
  acceptPrefectSocket,
  CLOSE_INVALID_PAYLOAD,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_UNSUPPORTED_DATA,
  closeSocket,
  legacyClientGuard,
  nextObject,
  SocketMessages,
} from "../../http/websocket.js";
import type { Routes } from "../../http/zod.js";
import { forbidden } from "../../prefect/errors.js";
import { eventMatches, resolveEventFilter, toWireEvent, type WireEvent } from "./filter.js";
import { IncomingEvent } from "./schemas.js";
import { type Countable, countEvents, fromPageToken, readEventPage, readEvents, receiveEvents } from "./service.js";

/** Prefect's INTERACTIVE_PAGE_SIZE: the default and largest page of `/events/filter`. */
const PAGE_SIZE = 50;
/** PREFECT_SERVER_EVENTS_MAXIMUM_WEBSOCKET_BACKFILL (15 minutes) and ..._WEBSOCKET_BACKFILL_PAGE_SIZE. */
const MAX_BACKFILL_SECONDS = 15 * 60;
const BACKFILL_PAGE_SIZE = 250;
/** Prefect's SUBSCRIPTION_BACKLOG: events waiting for one slow subscriber beyond this are dropped. */
const SUBSCRIPTION_BACKLOG = 256;
/** How long shutdown waits for websocket clients to finish their close handshake. */
const CLOSE_GRACE_MS = 5_000;

function summary(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.map(String).join(".")}: ${i.message}` : i.message)).join("; ");
}

// ---------------------------------------------------------------------------------------------- routes

function nextPageLink(request: FastifyRequest, token: string | null): string | null {
  if (!token) return null;
  const outer = Buffer.from(token).toString("base64");
  return `${request.protocol}://${request.host}/api/events/filter/next?page-token=${encodeURIComponent(outer)}`;
}

export function eventRoutes(context: AppContext): Routes {
  const { db, feed, settings } = context;
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
    let closing = false;
    app.addHook("onClose", async () => {
      closing = true;
      const open = [...sockets];
      for (const socket of open) {
        // A socket paused for a backlog is read to its close: what it sent is taken, backlog or not.
        socket.resume();
        closeSocket(socket, 1001, "Server shutting down");
      }
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

    const page = async (request: FastifyRequest, ...args: Parameters<typeof readEventPage>) => {
      const { events, total, token } = await readEventPage(...args);
      return { events, total, next_page: nextPageLink(request, token) };
    };

    app.post("/events", { schema: { body: z.array(IncomingEvent) } }, async (request, reply) => {
      await context.events.ready();
      receiveEvents(context, request.body);
      return reply.code(204).send();
    });

    app.post("/events/filter", { schema: { body: api.Body_read_events_events_filter_post } }, async (request) => {
      const filter = resolveEventFilter(request.body.filter);
      return page(request, db, filter, request.body.limit ?? PAGE_SIZE, 0);
    });

    app.get("/events/filter/next", { schema: { querystring: z.object({ "page-token": z.string() }) } }, async (request) => {
      const token = fromPageToken(request.query["page-token"]);
      if (!token) throw forbidden("Forbidden");
      return page(request, db, token.filter, token.pageSize, token.offset, token.count);
    });

    app.post(
      "/events/count-by/:countable",
      {
        schema: {
          params: z.strictObject({ countable: z.enum(["day", "time", "event", "resource"]) }),
          body: api.Body_count_account_events_events_count_by__countable__post,
        },
      },
      async (request) => countEvents(db, request.params.countable satisfies Countable, request.body),
    );

    app.get("/events/in", { websocket: true, onRequest: legacyClientGuard(settings.authString) }, async (socket, request) => {
      track(socket);
      const messages = new SocketMessages(socket);
      if (!(await acceptPrefectSocket(socket, request, messages, settings.authString))) return;
      let stopped = false;
      // Each event is published as its frame arrives, synchronously: by the time the client's next
      // ping is answered, everything it sent before is on the bus. A backlog of events waiting to be
      // stored pauses the socket.
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
        receiveEvents(context, [parsed.data]);
        // Too many events wait to be stored: read no more of this socket until they are (its pings,
        // the client's checkpoints, are answered once read).
        const ready = closing || socket.isPaused ? undefined : context.events.ready();
        if (ready) {
          socket.pause();
          void ready.then(() => {
            if (!closing) socket.resume();
          });
        }
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
      const unsubscribe = feed.subscribe((stored) => {
        for (const event of stored) {
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
            const rows = await readEvents(db, filter, BACKFILL_PAGE_SIZE, offset);
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
