import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import { checkResponse } from "./support/contract.js";
import { type EventShape, makeEvent, waitFor } from "./support/events.js";
import { describeApi } from "./support/server.js";

type Page = { events: (EventShape & { received: string })[]; total: number; next_page: string | null };

describeApi("events API", (t) => {
  /** Posts events and waits until the persister has stored them all. */
  const store = async (events: EventShape[]) => {
    expect((await t.server.request("POST", "/events", events)).status).toBe(204);
    const ids = events.map((e) => e.id);
    await waitFor(async () => (await t.server.db.events.count({ id: { id: ids } })) === ids.length, `${ids.length} stored events`);
  };

  const filter = async (body: unknown) => {
    const response = await t.server.request<Page>("POST", "/events/filter", body);
    expect(response.status).toBe(200);
    return response.body;
  };

  /** Follows a next_page link as a client would (and checks the answer against Prefect's schema). */
  const follow = async (link: string) => {
    const url = new URL(link);
    expect(`${url.protocol}//${url.host}`).toBe(t.server.url);
    expect(url.pathname).toBe("/api/events/filter/next");
    const response = await fetch(link);
    const body = (await response.json()) as Page;
    checkResponse("GET", "/events/filter/next", response.status, body);
    return { status: response.status, body };
  };

  it("receives a batch (204), sets `received`, and stores it for /events/filter", async () => {
    const sent = makeEvent({
      event: "prefect.flow-run.Completed",
      related: [{ "prefect.resource.id": "prefect.flow.1", "prefect.resource.role": "flow", "prefect.resource.name": "etl" }],
      payload: { intended: { from: "RUNNING", to: "COMPLETED" } },
      follows: "00000000-0000-4000-8000-000000000001",
    });
    const before = now();
    // A client's `received` (or any unknown field) is ignored: the server sets it.
    await store([{ ...sent, received: "2000-01-01T00:00:00Z", extra: 1 } as EventShape]);
    const page = await filter({});
    expect(page.total).toBe(1);
    expect(page.next_page).toBeNull();
    const [event] = page.events;
    expect(event).toEqual({ ...sent, received: expect.any(String) });
    expect(event!.received >= before).toBe(true);
    expect(Object.keys(event!).sort()).toEqual(["event", "follows", "id", "occurred", "payload", "received", "related", "resource"]);
  });

  it("refuses invalid events with 422 and publishes none of the batch", async () => {
    const good = makeEvent();
    const cases: [unknown, (string | number)[]][] = [
      [{ ...makeEvent(), resource: { name: "x" } }, ["body", 1, "resource"]],
      [{ ...makeEvent(), related: [{ "prefect.resource.id": "prefect.flow.1" }] }, ["body", 1, "related", 0]],
      [{ ...makeEvent(), id: "not-a-uuid" }, ["body", 1, "id"]],
      [{ ...makeEvent(), occurred: "yesterday" }, ["body", 1, "occurred"]],
      [{ ...makeEvent(), event: "x".repeat(1025) }, ["body", 1, "event"]],
      // Under the limit in characters, over it in bytes: the events table could not index it.
      [{ ...makeEvent(), event: "é".repeat(600) }, ["body", 1, "event"]],
      [{ ...makeEvent(), resource: { "prefect.resource.id": "x".repeat(1025) } }, ["body", 1, "resource", "prefect.resource.id"]],
      [
        { ...makeEvent(), related: [{ "prefect.resource.id": `prefect.flow.${"x".repeat(1020)}`, "prefect.resource.role": "flow" }] },
        ["body", 1, "related", 0, "prefect.resource.id"],
      ],
    ];
    for (const [bad, loc] of cases) {
      const response = await t.server.request("POST", "/events", [good, bad]);
      expect(response.status).toBe(422);
      expect(response.body.detail.map((d: { loc: unknown[] }) => d.loc)).toContainEqual(loc);
    }
    expect((await t.server.request("POST", "/events", { not: "a list" })).status).toBe(422);
    // Nothing was published: a later batch is all that gets stored.
    const marker = makeEvent({ event: "marker" });
    await store([marker]);
    expect((await filter({})).events.map((e) => e.id)).toEqual([marker.id]);
  });

  it("filters as Prefect does: newest first, last 180 days by default, by name, resource, related, text", async () => {
    const old = makeEvent({ event: "old.one", seconds: -200 * 86_400 });
    const a = makeEvent({ event: "prefect.flow-run.Running", seconds: -30, resource: { "prefect.resource.id": "prefect.flow-run.a", "prefect.resource.name": "alpha" } });
    const b = makeEvent({
      event: "prefect.flow-run.Completed",
      seconds: -20,
      resource: { "prefect.resource.id": "prefect.flow-run.b" },
      related: [{ "prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag" }],
      payload: { message: "Finished in style" },
    });
    const c = makeEvent({ event: "prefect.task-run.Completed", seconds: -10, resource: { "prefect.resource.id": "prefect.task-run.c" } });
    await store([old, a, b, c]);

    const all = await filter(null);
    expect(all.events.map((e) => e.event)).toEqual([c.event, b.event, a.event]);
    expect(all.total).toBe(3);
    const since = addSeconds(now(), -365 * 86_400);
    expect((await filter({ filter: { occurred: { since }, order: "ASC" } })).events.map((e) => e.id)).toEqual([old.id, a.id, b.id, c.id]);
    expect((await filter({ filter: { event: { prefix: ["prefect.flow-run."] } } })).events.map((e) => e.id)).toEqual([b.id, a.id]);
    expect((await filter({ filter: { resource: { id: ["prefect.flow-run.a"] } } })).events.map((e) => e.id)).toEqual([a.id]);
    expect((await filter({ filter: { related: { role: ["tag"] } } })).events.map((e) => e.id)).toEqual([b.id]);
    expect((await filter({ filter: { text: { query: "style" } } })).events.map((e) => e.id)).toEqual([b.id]);
    expect((await filter({ filter: { id: { id: [c.id, a.id] } } })).total).toBe(2);

    expect((await t.server.request("POST", "/events/filter", { limit: 51 })).status).toBe(422);
    expect((await t.server.request("POST", "/events/filter", { filter: { unknown: 1 } })).status).toBe(422);
  });

  it("pages through a query with next_page links that continue the same query", async () => {
    const events = Array.from({ length: 7 }, (_, i) => makeEvent({ event: `paged.${i}`, seconds: -100 + i }));
    await store(events);
    const first = await filter({ filter: { event: { prefix: ["paged."] }, order: "ASC" }, limit: 3 });
    expect(first.total).toBe(7);
    expect(first.events.map((e) => e.event)).toEqual(["paged.0", "paged.1", "paged.2"]);
    expect(first.next_page).toMatch(/\/api\/events\/filter\/next\?page-token=/);

    // Events arriving later (or outside the query) do not disturb the pages: the token carries the
    // query with its time window.
    await store([makeEvent({ event: "paged.late", seconds: 5 })]);
    const second = await follow(first.next_page!);
    expect(second.status).toBe(200);
    expect(second.body.total).toBe(7);
    expect(second.body.events.map((e) => e.event)).toEqual(["paged.3", "paged.4", "paged.5"]);
    const third = await follow(second.body.next_page!);
    expect(third.body.events.map((e) => e.event)).toEqual(["paged.6"]);
    expect(third.body.next_page).toBeNull();

    // The same route through the test client (Prefect's schema for the path and query).
    const token = new URL(first.next_page!).searchParams.get("page-token")!;
    const again = await t.server.request<Page>("GET", `/events/filter/next?page-token=${encodeURIComponent(token)}`);
    expect(again.body.events.map((e) => e.event)).toEqual(["paged.3", "paged.4", "paged.5"]);
  });

  it("answers a tampered or missing page token with 403 / 422", async () => {
    for (const token of ["not base64!", Buffer.from("not json").toString("base64"), Buffer.from(Buffer.from('{"filter": 1}').toString("base64")).toString("base64"), ""]) {
      const response = await fetch(`${t.server.url}/api/events/filter/next?page-token=${encodeURIComponent(token)}`);
      expect(response.status).toBe(403);
      expect(await response.json()).toEqual({ detail: "Forbidden" });
    }
    expect((await t.server.request("GET", "/events/filter/next")).status).toBe(422);
  });

  it("counts by event and by resource, largest first, labelled with the newest resource name", async () => {
    const base = now();
    const ago = (seconds: number) => addSeconds(base, -seconds);
    await store([
      makeEvent({ event: "x.started", occurred: ago(50), resource: { "prefect.resource.id": "r.1", "prefect.resource.name": "old-name" } }),
      makeEvent({ event: "x.finished", occurred: ago(40), resource: { "prefect.resource.id": "r.1", "prefect.resource.name": "new-name" } }),
      makeEvent({ event: "x.started", occurred: ago(30), resource: { "prefect.resource.id": "r.2" } }),
      makeEvent({ event: "x.started", occurred: ago(20), resource: { "prefect.resource.id": "r.3", "prefect.name": "legacy" } }),
    ]);
    const byEvent = await t.server.request("POST", "/events/count-by/event", { filter: {} });
    expect(byEvent.status).toBe(200);
    expect(byEvent.body.map((c: { value: string; label: string; count: number }) => [c.value, c.label, c.count])).toEqual([
      ["x.started", "x.started", 3],
      ["x.finished", "x.finished", 1],
    ]);
    const started = byEvent.body[0];
    expect([started.start_time, started.end_time]).toEqual([ago(50), ago(20)]);

    const byResource = await t.server.request("POST", "/events/count-by/resource", { filter: { event: { prefix: ["x."] } } });
    expect(byResource.body.map((c: { value: string; label: string; count: number }) => [c.value, c.label, c.count])).toEqual([
      ["r.1", "new-name", 2],
      ["r.3", "legacy", 1],
      ["r.2", "r.2", 1],
    ]);
  });

  it("counts by time in every span of the window, empty ones included", async () => {
    const day = "2026-01-10";
    const at = (time: string) => `${day}T${time}.000000Z`;
    await store([
      makeEvent({ occurred: at("00:10:00") }),
      makeEvent({ occurred: at("00:50:00") }),
      makeEvent({ occurred: at("02:30:00") }),
      makeEvent({ occurred: `2026-01-11T01:00:00.000000Z` }),
    ]);
    const window = { occurred: { since: at("00:00:00"), until: "2026-01-10T05:59:59.999999Z" } };
    const hourly = await t.server.request("POST", "/events/count-by/time", { filter: window, time_unit: "hour", time_interval: 1 });
    expect(hourly.status).toBe(200);
    expect(hourly.body).toEqual([
      { value: "0", label: "2026-01-10T00:00:00+00:00", count: 2, start_time: at("00:00:00"), end_time: "2026-01-10T00:59:59.999999Z" },
      { value: "1", label: "2026-01-10T01:00:00+00:00", count: 0, start_time: at("01:00:00"), end_time: "2026-01-10T01:59:59.999999Z" },
      { value: "2", label: "2026-01-10T02:00:00+00:00", count: 1, start_time: at("02:00:00"), end_time: "2026-01-10T02:59:59.999999Z" },
      { value: "3", label: "2026-01-10T03:00:00+00:00", count: 0, start_time: at("03:00:00"), end_time: "2026-01-10T03:59:59.999999Z" },
      { value: "4", label: "2026-01-10T04:00:00+00:00", count: 0, start_time: at("04:00:00"), end_time: "2026-01-10T04:59:59.999999Z" },
      { value: "5", label: "2026-01-10T05:00:00+00:00", count: 0, start_time: at("05:00:00"), end_time: "2026-01-10T05:59:59.999999Z" },
    ]);
    const halfHours = await t.server.request("POST", "/events/count-by/time", { filter: window, time_unit: "minute", time_interval: 30 });
    expect(halfHours.body.slice(0, 3).map((c: { count: number }) => c.count)).toEqual([1, 1, 0]);
    expect(halfHours.body).toHaveLength(12);

    const daily = await t.server.request("POST", "/events/count-by/day", {
      filter: { occurred: { since: "2026-01-09T12:00:00Z", until: "2026-01-11T23:59:59.999999Z" } },
    });
    expect(daily.body.map((c: { label: string; count: number }) => [c.label, c.count])).toEqual([
      ["2026-01-09T00:00:00+00:00", 0],
      ["2026-01-10T00:00:00+00:00", 3],
      ["2026-01-11T00:00:00+00:00", 1],
    ]);
  });

  it("refuses count-by requests that would make too many buckets, or count nothing countable", async () => {
    const tooMany = await fetch(`${t.server.url}/api/events/count-by/time`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ filter: {}, time_unit: "second", time_interval: 1 }),
    });
    expect(tooMany.status).toBe(422);
    expect(((await tooMany.json()) as { detail: string }).detail).toMatch(/^The given interval would create \d+ buckets, which is too many/);
    expect((await t.server.request("POST", "/events/count-by/color", { filter: {} })).status).toBe(422);
    expect((await t.server.request("POST", "/events/count-by/day", {})).status).toBe(422);
    expect((await t.server.request("POST", "/events/count-by/time", { filter: {}, time_interval: 0.001 })).status).toBe(422);
  });
});
