import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { z } from "zod";
import { addSeconds, type EventCreate, EventFilter, InvalidError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const T0 = "2026-03-01T12:00:00.000000Z";
const at = (seconds: number) => addSeconds(T0, seconds);

const flowRun = (n: number, labels: Record<string, string> = {}) => ({ "prefect.resource.id": `prefect.flow-run.${n}`, ...labels });
const related = (id: string, role: string, labels: Record<string, string> = {}) => ({ "prefect.resource.id": id, "prefect.resource.role": role, ...labels });

const event = (overrides: Partial<EventCreate> = {}): EventCreate => ({
  id: randomUUID(),
  occurred: T0,
  event: "prefect.flow-run.Completed",
  resource: flowRun(1),
  ...overrides,
});
/** Events one second apart, in the order given, named e0, e1, ... unless `event` is given. */
const series = (...items: Partial<EventCreate>[]): EventCreate[] => items.map((overrides, i) => event({ occurred: at(i), event: `e${i}`, ...overrides }));

type Filter = z.input<typeof EventFilter>;

describeEachBackend("events", (t) => {
  /** Event names matching `filter`, oldest first (parsed as the API receives it). */
  const names = async (filter: Filter, page: { limit?: number; offset?: number } = {}) =>
    (await t.db.events.read({ ...page, filter: EventFilter.parse({ order: "ASC", ...filter }) })).map((e) => e.event);

  it("stores a batch and returns the stored events", async () => {
    const e = event({
      related: [related("prefect.flow.1", "flow")],
      payload: { intended: { from: "RUNNING", to: "COMPLETED" }, n: 3 },
      follows: randomUUID(),
    });
    const [stored] = await t.db.events.createMany([e]);
    expect(stored).toMatchObject({ id: e.id, occurred: T0, event: e.event, resource: e.resource, related: e.related, payload: e.payload, follows: e.follows });
    expect(stored!.received).toBe(stored!.recorded);
    const { position, ...unpositioned } = stored!;
    expect(await t.db.events.get(e.id)).toEqual(unpositioned);
    expect(await t.db.events.readAfter(position - 1, { limit: 1 })).toEqual([stored]);
  });

  it("returns the stored events in position order exactly as readAfter reads them back", async () => {
    const head = await t.db.events.head();
    const odd = event({
      occurred: "2026-03-01T12:00:00.123456789Z",
      resource: flowRun(2, { "prefect.resource.name": "naïve ☃ \u00e9 \"quoted\"", b: "1", a: "2" }),
      related: [related("prefect.flow.1", "flow", { z: "last", a: "first" })],
      payload: { z: [1, 2.5, 1e21, null, true], a: { nested: { deep: "x\u0000y" } }, big: 9007199254740991, empty: {} },
    });
    const batch = [event({ occurred: at(2) }), odd, event({ occurred: at(1), received: at(9) })];
    const stored = await t.db.events.createMany(batch);
    expect(stored.map((e) => e.position)).toEqual([head + 1, head + 2, head + 3]);
    expect(stored.map((e) => e.id)).toEqual([batch[1]!.id, batch[2]!.id, batch[0]!.id]);
    expect(await t.db.events.readAfter(head, { limit: 10 })).toEqual(stored);
    // Stored already: nothing is stored again, nothing returned.
    expect(await t.db.events.createMany([batch[0]!])).toEqual([]);
  });

  it("defaults related to [] and payload to {}, and keeps a given received time", async () => {
    const e = event({ received: at(5) });
    await t.db.events.createMany([e]);
    expect(await t.db.events.get(e.id)).toMatchObject({ related: [], payload: {}, received: at(5), follows: null });
  });

  it("stores the resources of each event, primary and related, for filtering", async () => {
    const e = event({ related: [related("prefect.flow.7", "flow"), related("prefect.tag.etl", "tag")] });
    await t.db.events.createMany([e]);
    for (const id of ["prefect.flow-run.1", "prefect.flow.7", "prefect.tag.etl"]) {
      expect(await t.db.events.count(EventFilter.parse({ any_resource: { id: [id] } }))).toBe(1);
    }
  });

  it("strips NUL characters from the name, labels and payload (PostgreSQL stores none)", async () => {
    const e = event({
      event: "nul.in\u0000name",
      resource: flowRun(1, { "prefect.resource.name": "a\u0000b" }),
      related: [related("prefect.flow.1", "flow", { "x\u0000": "y" })],
      payload: { text: "he\u0000llo", list: ["\u0000"], nested: { "k\u0000": 1 } },
    });
    await t.db.events.createMany([e]);
    expect(await t.db.events.get(e.id)).toMatchObject({
      event: "nul.inname",
      resource: flowRun(1, { "prefect.resource.name": "ab" }),
      related: [related("prefect.flow.1", "flow", { x: "y" })],
      payload: { text: "hello", list: [""], nested: { k: 1 } },
    });
  });

  it("accepts an empty batch", async () => {
    expect(await t.db.events.createMany([])).toEqual([]);
    expect(await t.db.events.count()).toBe(0);
  });

  it("stores a batch larger than one INSERT chunk completely", async () => {
    const batch = Array.from({ length: 1500 }, (_, i) =>
      event({ occurred: addSeconds(T0, i / 1000), resource: flowRun(i), related: [related(`prefect.flow.${i % 3}`, "flow")] }),
    );
    expect(await t.db.events.createMany(batch)).toHaveLength(1500);
    expect(await t.db.events.count()).toBe(1500);
    expect(await t.db.events.count(EventFilter.parse({ related: { id: ["prefect.flow.2"] } }))).toBe(500);
    expect(await t.db.events.count(EventFilter.parse({ any_resource: { id: ["prefect.flow-run.1499"] } }))).toBe(1);
  });

  it("stores resent events once and returns only the new ones", async () => {
    const [a, b, c] = series({}, {}, {});
    await t.db.events.createMany([a!, b!]);
    const stored = await t.db.events.createMany([b!, c!, c!]);
    expect(stored.map((e) => e.id)).toEqual([c!.id]);
    expect(await t.db.events.count()).toBe(3);
    expect(await t.db.events.countBy(null, "resource")).toEqual([{ value: "prefect.flow-run.1", count: 3 }]);
  });

  it("refuses a resource without prefect.resource.id and writes nothing", async () => {
    const batch = [event(), event({ resource: { "prefect.resource.name": "x" } })];
    await expect(t.db.events.createMany(batch)).rejects.toBeInstanceOf(InvalidError);
    expect(await t.db.events.count()).toBe(0);
  });

  it("refuses a related resource without prefect.resource.role and writes nothing", async () => {
    const batch = [event(), event({ related: [{ "prefect.resource.id": "prefect.flow.1" }] })];
    await expect(t.db.events.createMany(batch)).rejects.toBeInstanceOf(InvalidError);
    expect(await t.db.events.count()).toBe(0);
  });

  it("gets an event by id, or null", async () => {
    const e = event();
    await t.db.events.createMany([e]);
    expect((await t.db.events.get(e.id))?.id).toBe(e.id);
    expect(await t.db.events.get(randomUUID())).toBeNull();
    await expect(t.db.events.get("nope")).rejects.toBeInstanceOf(InvalidError);
  });

  it("gets an event by an upper-case id", async () => {
    const e = event();
    await t.db.events.createMany([e]);
    expect((await t.db.events.get(e.id.toUpperCase()))?.id).toBe(e.id);
  });

  it("round-trips microsecond timestamps exactly", async () => {
    const e = event({ occurred: "2026-03-01T12:00:00.000001Z", received: "2026-03-01T13:00:00.123456+01:00" });
    const [stored] = await t.db.events.createMany([e]);
    const read = await t.db.events.get(e.id);
    expect(read!.occurred).toBe("2026-03-01T12:00:00.000001Z");
    expect(read!.received).toBe("2026-03-01T12:00:00.123456Z");
    expect(read!.recorded).toBe(stored!.recorded);
    expect(read!.recorded).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
  });

  it("tells events a microsecond apart apart in occurred filters", async () => {
    await t.db.events.createMany([event({ event: "a", occurred: "2026-03-01T12:00:00.000001Z" }), event({ event: "b", occurred: "2026-03-01T12:00:00.000002Z" })]);
    expect(await names({ occurred: { since: "2026-03-01T12:00:00.000002Z" } })).toEqual(["b"]);
    expect(await names({ occurred: { until: "2026-03-01T12:00:00.000001Z" } })).toEqual(["a"]);
  });

  it("filters by occurred since and until, both inclusive", async () => {
    await t.db.events.createMany(series({}, {}, {}, {}));
    expect(await names({ occurred: { since: at(1) } })).toEqual(["e1", "e2", "e3"]);
    expect(await names({ occurred: { until: at(2) } })).toEqual(["e0", "e1", "e2"]);
    expect(await names({ occurred: { since: at(1), until: at(2) } })).toEqual(["e1", "e2"]);
  });

  it("filters by event name prefix and exclude_prefix", async () => {
    await t.db.events.createMany(series({ event: "prefect.flow-run.Running" }, { event: "prefect.task-run.Running" }, { event: "custom.thing" }));
    expect(await names({ event: { prefix: ["prefect.flow-run.", "custom."] } })).toEqual(["prefect.flow-run.Running", "custom.thing"]);
    expect(await names({ event: { exclude_prefix: ["prefect.flow-run.", "custom."] } })).toEqual(["prefect.task-run.Running"]);
  });

  it("filters by exact event name and exclude_name", async () => {
    await t.db.events.createMany(series({ event: "prefect.flow-run.Running" }, { event: "prefect.flow-run.Running.x" }, { event: "other" }));
    expect(await names({ event: { name: ["prefect.flow-run.Running", "other"] } })).toEqual(["prefect.flow-run.Running", "other"]);
    expect(await names({ event: { exclude_name: ["prefect.flow-run.Running"] } })).toEqual(["prefect.flow-run.Running.x", "other"]);
  });

  it("filters by resource id and id_prefix", async () => {
    await t.db.events.createMany(series({ resource: flowRun(1) }, { resource: flowRun(22) }, { resource: { "prefect.resource.id": "prefect.task-run.1" } }));
    expect(await names({ resource: { id: ["prefect.flow-run.1", "prefect.task-run.1"] } })).toEqual(["e0", "e2"]);
    expect(await names({ resource: { id_prefix: ["prefect.flow-run."] } })).toEqual(["e0", "e1"]);
    expect(await names({ resource: { id_prefix: ["prefect.flow-run.2"] } })).toEqual(["e1"]);
  });

  it("filters by resource labels: exact, prefix*, * and !value", async () => {
    await t.db.events.createMany(
      series({ resource: flowRun(1, { env: "prod" }) }, { resource: flowRun(2, { env: "production-eu" }) }, { resource: flowRun(3, { env: "dev" }) }, { resource: flowRun(4) }),
    );
    expect(await names({ resource: { labels: { env: "prod" } } })).toEqual(["e0"]);
    expect(await names({ resource: { labels: { env: ["prod", "dev"] } } })).toEqual(["e0", "e2"]);
    expect(await names({ resource: { labels: { env: "prod*" } } })).toEqual(["e0", "e1"]);
    expect(await names({ resource: { labels: { env: "*" } } })).toEqual(["e0", "e1", "e2"]);
    expect(await names({ resource: { labels: { env: ["*", "!prod"] } } })).toEqual(["e1", "e2"]);
    expect(await names({ resource: { labels: { env: ["*", "!prod*"] } } })).toEqual(["e2"]);
    expect(await names({ resource: { labels: { env: "prod", "prefect.resource.id": "prefect.flow-run.2" } } })).toEqual([]);
  });

  it("filters by related resource id and role, ignoring the primary resource", async () => {
    await t.db.events.createMany(
      series({ related: [related("prefect.flow.1", "flow")] }, { related: [related("prefect.flow.2", "flow"), related("prefect.tag.a", "tag")] }, { resource: { "prefect.resource.id": "prefect.flow.1" } }),
    );
    expect(await names({ related: { id: ["prefect.flow.1"] } })).toEqual(["e0"]);
    expect(await names({ related: { role: ["tag"] } })).toEqual(["e1"]);
    expect(await names({ related: { id: ["prefect.flow.2"], role: ["tag"] } })).toEqual([]);
  });

  it("filters by related resources_in_roles", async () => {
    await t.db.events.createMany(series({ related: [related("prefect.flow.1", "flow")] }, { related: [related("prefect.flow.1", "parent")] }));
    expect(await names({ related: { resources_in_roles: [["prefect.flow.1", "flow"]] } })).toEqual(["e0"]);
    expect(await names({ related: { resources_in_roles: [["prefect.flow.1", "child"]] } })).toEqual([]);
  });

  it("filters by related resource labels", async () => {
    await t.db.events.createMany(
      series({ related: [related("prefect.flow.1", "flow", { "prefect.resource.name": "etl" })] }, { related: [related("prefect.flow.2", "flow", { "prefect.resource.name": "report" })] }, { resource: flowRun(9, { "prefect.resource.name": "etl" }) }),
    );
    expect(await names({ related: { labels: { "prefect.resource.name": "etl" } } })).toEqual(["e0"]);
    expect(await names({ related: { labels: { "prefect.resource.name": "re*" } } })).toEqual(["e1"]);
  });

  it("ANDs a list of related filters", async () => {
    await t.db.events.createMany(
      series({ related: [related("prefect.flow.1", "flow"), related("prefect.tag.a", "tag")] }, { related: [related("prefect.flow.1", "flow")] }),
    );
    expect(await names({ related: [{ id: ["prefect.flow.1"] }, { role: ["tag"] }] })).toEqual(["e0"]);
  });

  it("filters by any_resource id, id_prefix and labels, matching the primary or a related resource", async () => {
    await t.db.events.createMany(
      series({ resource: flowRun(1) }, { related: [related("prefect.flow.1", "flow", { team: "data" })] }, { resource: { "prefect.resource.id": "prefect.flow.2", team: "web" } }),
    );
    expect(await names({ any_resource: { id: ["prefect.flow.1", "prefect.flow.2"] } })).toEqual(["e1", "e2"]);
    expect(await names({ any_resource: { id_prefix: ["prefect.flow."] } })).toEqual(["e1", "e2"]);
    expect(await names({ any_resource: { labels: { team: "data" } } })).toEqual(["e1"]);
    expect(await names({ any_resource: { labels: { team: "*" } } })).toEqual(["e1", "e2"]);
  });

  it("requires id and labels of an any_resource filter on the same resource", async () => {
    await t.db.events.createMany(series({ resource: flowRun(1, { team: "data" }), related: [related("prefect.flow.1", "flow")] }));
    expect(await names({ any_resource: { id: ["prefect.flow.1"], labels: { team: "data" } } })).toEqual([]);
    expect(await names({ any_resource: { id: ["prefect.flow-run.1"], labels: { team: "data" } } })).toEqual(["e0"]);
  });

  it("filters by event id", async () => {
    const batch = series({}, {}, {});
    await t.db.events.createMany(batch);
    expect(await names({ id: { id: [batch[0]!.id, batch[2]!.id] } })).toEqual(["e0", "e2"]);
  });

  it("searches text in the event name and resource id, case-insensitively, with -exclusions", async () => {
    await t.db.events.createMany(
      series({ event: "prefect.flow-run.Failed" }, { event: "prefect.flow-run.Completed" }, { event: "custom", resource: { "prefect.resource.id": "my.FAILED.thing" } }),
    );
    expect(await names({ text: { query: "failed" } })).toEqual(["prefect.flow-run.Failed", "custom"]);
    expect(await names({ text: { query: "flow-run -completed" } })).toEqual(["prefect.flow-run.Failed"]);
  });

  it("orders by occurred, newest first by default, or oldest first", async () => {
    await t.db.events.createMany(series({ occurred: at(1) }, { occurred: at(0) }, { occurred: at(2) }));
    expect((await t.db.events.read()).map((e) => e.event)).toEqual(["e2", "e0", "e1"]);
    expect((await t.db.events.read({ filter: EventFilter.parse({ order: "DESC" }) })).map((e) => e.event)).toEqual(["e2", "e0", "e1"]);
    expect(await names({ order: "ASC" })).toEqual(["e1", "e0", "e2"]);
  });

  it("pages with limit and offset", async () => {
    await t.db.events.createMany(series({}, {}, {}, {}, {}));
    expect(await names({}, { limit: 2 })).toEqual(["e0", "e1"]);
    expect(await names({}, { limit: 2, offset: 2 })).toEqual(["e2", "e3"]);
    expect(await names({}, { offset: 3 })).toEqual(["e3", "e4"]);
  });

  it("counts all events or those matching a filter", async () => {
    await t.db.events.createMany(series({ event: "a.x" }, { event: "a.y" }, { event: "b" }));
    expect(await t.db.events.count()).toBe(3);
    expect(await t.db.events.count(EventFilter.parse({ event: { prefix: ["a."] } }))).toBe(2);
  });

  it("counts by event name", async () => {
    await t.db.events.createMany(series({ event: "b" }, { event: "a" }, { event: "b" }, { event: "c" }));
    expect(await t.db.events.countBy(null, "event")).toEqual([
      { value: "a", count: 1 },
      { value: "b", count: 2 },
      { value: "c", count: 1 },
    ]);
    expect(await t.db.events.countBy(EventFilter.parse({ event: { exclude_name: ["b"] } }), "event")).toEqual([
      { value: "a", count: 1 },
      { value: "c", count: 1 },
    ]);
  });

  it("counts by primary resource", async () => {
    await t.db.events.createMany(series({ resource: flowRun(2) }, { resource: flowRun(1), related: [related("prefect.flow-run.2", "parent")] }, { resource: flowRun(2) }));
    expect(await t.db.events.countBy(undefined, "resource")).toEqual([
      { value: "prefect.flow-run.1", count: 1 },
      { value: "prefect.flow-run.2", count: 2 },
    ]);
  });
});
