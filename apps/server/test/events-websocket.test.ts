import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import { type EventShape, makeEvent, openEventsIn, TestSocket, UpgradeRefused, waitFor, wsUrl } from "./support/events.js";
import { describeApi, type ServerContext } from "./support/server.js";

const AUTH = "admin:s3cret";
const basic = (auth: string) => ({ authorization: `Basic ${Buffer.from(auth).toString("base64")}` });

function helpers(t: ServerContext) {
  /** Waits until every one of `ids` is stored. */
  const stored = (ids: string[]) =>
    waitFor(async () => (await t.server.db.events.count({ id: { id: ids } })) === ids.length, `${ids.length} stored events`);
  const open = (path: string, protocols: string[] = ["prefect"], headers: Record<string, string> = {}) =>
    TestSocket.open(wsUrl(t.server.url, path), { protocols, headers });
  /** An `/events/out` subscriber, as Prefect's PrefectEventSubscriber connects (filter until a year ahead). */
  const subscribe = async (filter: Record<string, unknown>, extra: Record<string, unknown> = {}, token: string | null = null) => {
    const socket = await open("/events/out");
    expect(await socket.authenticate(token)).toEqual({ type: "auth_success" });
    const occurred = { since: addSeconds(now(), -3600), until: addSeconds(now(), 365 * 86_400) };
    socket.send({ type: "filter", filter: { occurred, ...filter }, ...extra });
    return socket;
  };
  return { stored, open, subscribe };
}

describeApi("events websockets", (t) => {
  const { stored, open, subscribe } = helpers(t);

  it("accepts Prefect's handshake with any token when no auth string is set", async () => {
    for (const token of ["anything", null]) {
      const socket = await open("/events/in");
      expect(socket.protocol).toBe("prefect");
      expect(await socket.authenticate(token)).toEqual({ type: "auth_success" });
      await socket.close();
    }
  });

  it("closes a socket whose first message is not the auth message (1008)", async () => {
    for (const first of [{ type: "event" }, "not json"]) {
      const socket = await open("/events/in");
      socket.send(first);
      expect(await socket.closed).toEqual({ code: 1008, reason: "Expected 'auth' message" });
    }
  });

  it("stores events sent over /events/in, readable through /events/filter", async () => {
    const socket = await openEventsIn(t.server.url);
    const events = [makeEvent({ event: "ws.one", seconds: -3 }), makeEvent({ event: "ws.two", seconds: -2 }), makeEvent({ event: "ws.three", seconds: -1 })];
    for (const event of events) socket.send(event);
    await socket.ping();
    await stored(events.map((e) => e.id));
    const page = await t.server.request("POST", "/events/filter", { filter: { event: { prefix: ["ws."] }, order: "ASC" } });
    expect(page.body.events.map((e: EventShape) => e.id)).toEqual(events.map((e) => e.id));
    expect(page.body.events[0]).toEqual({ ...events[0], follows: null, received: expect.any(String) });
    await socket.close();
  });

  it("stores each event once when a reconnecting client resends what was not confirmed", async () => {
    const first = await openEventsIn(t.server.url);
    const sent = [makeEvent({ event: "resend.a" }), makeEvent({ event: "resend.b" })];
    for (const event of sent) first.send(event);
    await first.close();
    const again = await openEventsIn(t.server.url);
    const next = makeEvent({ event: "resend.c" });
    for (const event of [...sent, next]) again.send(event);
    await again.ping();
    await stored([...sent, next].map((e) => e.id));
    // Another write after the resend, to be sure the duplicates went through the persister too.
    const marker = makeEvent({ event: "resend.marker" });
    again.send(marker);
    await stored([marker.id]);
    expect((await t.server.request("POST", "/events/filter", { filter: { event: { prefix: ["resend."] } } })).body.total).toBe(4);
    await again.close();
  });

  it("accepts legacy clients (no subprotocol) without a handshake", async () => {
    const socket = await open("/events/in", []);
    expect(socket.protocol).toBe("");
    const event = makeEvent({ event: "legacy.event" });
    socket.send(event);
    await stored([event.id]);
    await socket.close();
  });

  it("closes the connection on an invalid event (1007), keeping the events before it", async () => {
    const socket = await openEventsIn(t.server.url);
    const good = makeEvent({ event: "before.invalid" });
    socket.send(good);
    socket.send({ ...makeEvent(), resource: { "prefect.resource.name": "no id" } });
    const closed = await socket.closed;
    expect(closed.code).toBe(1007);
    expect(closed.reason).toMatch(/^Invalid event: resource: Resources must include the prefect\.resource\.id label/);
    await stored([good.id]);

    const other = await openEventsIn(t.server.url);
    other.send("{not json");
    expect((await other.closed).code).toBe(1007);
    const binary = await openEventsIn(t.server.url);
    binary.ws.send(Buffer.from(JSON.stringify(makeEvent())));
    expect((await binary.closed).code).toBe(1003);
  });

  it("closes the connection on an event whose resource id is too long to index; the next connection's events are stored", async () => {
    const socket = await openEventsIn(t.server.url);
    socket.send(makeEvent({ resource: { "prefect.resource.id": "x".repeat(1025) } }));
    const closed = await socket.closed;
    expect(closed.code).toBe(1007);
    expect(closed.reason).toMatch(/^Invalid event: resource\.prefect\.resource\.id: String should have at most 1024 bytes/);
    const again = await openEventsIn(t.server.url);
    const next = makeEvent({ event: "after.too-long" });
    again.send(next);
    await stored([next.id]);
    await again.close();
  });

  it("streams matching events on /events/out after backfilling recent stored ones", async () => {
    const old = makeEvent({ event: "match.old", seconds: -20 * 60 }); // older than the 15-minute backfill limit
    const recent = makeEvent({ event: "match.recent", seconds: -60 });
    const other = makeEvent({ event: "other.recent", seconds: -30 });
    expect((await t.server.request("POST", "/events", [old, recent, other])).status).toBe(204);
    await stored([old.id, recent.id, other.id]);

    const socket = await subscribe({ event: { prefix: ["match."] } });
    const backfilled = await socket.next();
    expect(backfilled).toEqual({ type: "event", event: { ...recent, follows: null, received: expect.any(String) } });

    const live = [makeEvent({ event: "other.live" }), makeEvent({ event: "match.live.1" }), makeEvent({ event: "match.live.2" })];
    expect((await t.server.request("POST", "/events", live)).status).toBe(204);
    expect(((await socket.next()).event as EventShape).id).toBe(live[1]!.id);
    expect(((await socket.next()).event as EventShape).id).toBe(live[2]!.id);
    await socket.close();
  });

  it("streams events sent on /events/in to an /events/out subscriber without backfill when asked", async () => {
    const earlier = makeEvent({ event: "stream.earlier", seconds: -5 });
    expect((await t.server.request("POST", "/events", [earlier])).status).toBe(204);
    await stored([earlier.id]);
    const subscriber = await subscribe({ resource: { id_prefix: ["prefect.task-run."] } }, { backfill: false });
    // The filter message has no answer: make sure it was processed before publishing (a ping is
    // answered after the frames sent before it were read).
    await subscriber.ping();
    const publisher = await openEventsIn(t.server.url);
    const mine = makeEvent({ event: "stream.mine", resource: { "prefect.resource.id": "prefect.task-run.1" } });
    publisher.send(makeEvent({ event: "stream.not-mine" }));
    publisher.send(mine);
    const message = await subscriber.next();
    expect(message.type).toBe("event");
    expect((message.event as EventShape).id).toBe(mine.id);
    await publisher.close();
    await subscriber.close();
  });

  it("closes /events/out when the second message is not a valid filter (1002)", async () => {
    const notFilter = await open("/events/out");
    await notFilter.authenticate(null);
    notFilter.send({ type: "subscribe" });
    expect(await notFilter.closed).toEqual({ code: 1002, reason: "Expected 'filter' message" });

    const badFilter = await open("/events/out");
    await badFilter.authenticate(null);
    badFilter.send({ type: "filter", filter: { event: { prefix: "not-a-list" } } });
    const closed = await badFilter.closed;
    expect(closed.code).toBe(1002);
    expect(closed.reason).toMatch(/^Invalid filter: /);
  });
});

describeApi(
  "events websockets with an auth string",
  (t) => {
    const { stored, open, subscribe } = helpers(t);

    it("accepts only the configured token", async () => {
      const good = await open("/events/in");
      expect(await good.authenticate(AUTH)).toEqual({ type: "auth_success" });
      await good.close();

      const wrong = await open("/events/in");
      wrong.send({ type: "auth", token: "admin:wrong" });
      expect(await wrong.closed).toEqual({ code: 1008, reason: "Invalid token" });

      const missing = await open("/events/out");
      missing.send({ type: "auth", token: null });
      expect(await missing.closed).toEqual({ code: 1008, reason: "Auth required but no token provided" });
    });

    it("refuses legacy clients (no subprotocol) with 403 at the upgrade", async () => {
      const attempt = open("/events/in", [], basic(AUTH));
      await expect(attempt).rejects.toBeInstanceOf(UpgradeRefused);
      await expect(attempt).rejects.toMatchObject({ status: 403 });
    });

    it("takes events from an authenticated client (with or without the basic auth header) and streams them", async () => {
      const subscriber = await subscribe({ event: { prefix: ["authed."] } }, { backfill: false }, AUTH);
      await subscriber.ping();
      // Prefect's client also sends the credentials as a header; the UI cannot, and needs none.
      const withHeader = await open("/events/in", ["prefect"], basic(AUTH));
      expect(await withHeader.authenticate(AUTH)).toEqual({ type: "auth_success" });
      const event = makeEvent({ event: "authed.event" });
      withHeader.send(event);
      await stored([event.id]);
      expect(((await subscriber.next()).event as EventShape).id).toBe(event.id);
      await withHeader.close();
      await subscriber.close();
    });

    it("keeps HTTP basic auth on the HTTP routes", async () => {
      const anonymous = await fetch(`${t.server.url}/api/events/filter`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(anonymous.status).toBe(401);
      const authed = await t.server.request("POST", "/events/filter", {}, { headers: basic(AUTH) });
      expect(authed.status).toBe(200);
    });
  },
  { PREFECT_SERVER_API_AUTH_STRING: AUTH },
);
