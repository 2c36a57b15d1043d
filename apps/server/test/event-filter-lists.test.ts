/**
 * Event filters as Prefect reads them: an empty list means "no filter" (`event.name: []` matches every
 * event, it does not match none). One table of cases checks the stored-event query (`/events/filter`,
 * `/events/count-by/event`) and the in-memory matcher (`/events/out`) alike.
 */
import { expect, it } from "vitest";
import { eventMatches, resolveEventFilter, toWireEvent } from "../src/features/events/filter.js";
import { type EventShape, makeEvent, waitFor } from "./support/events.js";
import { describeApi } from "./support/server.js";

const a = makeEvent({
  event: "test.a",
  resource: { "prefect.resource.id": "prefect.flow-run.a" },
  related: [{ "prefect.resource.id": "prefect.flow.x", "prefect.resource.role": "flow" }],
  seconds: -2,
});
const b = makeEvent({ event: "test.b", resource: { "prefect.resource.id": "prefect.flow-run.b" }, seconds: -1 });

/** A filter and the events it selects (by name). */
const CASES: [string, Record<string, unknown>, string[]][] = [
  ["event.name: []", { event: { name: [] } }, ["test.a", "test.b"]],
  ["event.name given", { event: { name: ["test.b"] } }, ["test.b"]],
  ["event.prefix: [], exclude_name: []", { event: { prefix: [], exclude_prefix: [], exclude_name: [] } }, ["test.a", "test.b"]],
  ["resource.id: []", { resource: { id: [], id_prefix: [] } }, ["test.a", "test.b"]],
  ["resource.id given", { resource: { id: ["prefect.flow-run.a"] } }, ["test.a"]],
  ["related.id: []", { related: { id: [] } }, ["test.a", "test.b"]],
  ["related.role: []", { related: { role: [] } }, ["test.a", "test.b"]],
  ["related.id: [], role: [] in a list", { related: [{ id: [], role: [] }] }, ["test.a", "test.b"]],
  ["related.role given", { related: { role: ["flow"] } }, ["test.a"]],
  ["any_resource.id: []", { any_resource: { id: [] } }, ["test.a", "test.b"]],
  ["any_resource.id given", { any_resource: { id: ["prefect.flow.x"] } }, ["test.a"]],
  ["id.id: []", { id: { id: [] } }, ["test.a", "test.b"]],
  ["id.id given", { id: { id: [b.id] } }, ["test.b"]],
];

describeApi("event filters with empty lists", (t) => {
  const store = async (events: EventShape[]) => {
    expect((await t.server.request("POST", "/events", events)).status).toBe(204);
    await waitFor(async () => (await t.server.db.events.count({ id: { id: events.map((e) => e.id) } })) === events.length, "stored events");
  };

  it("the stored query and the matcher agree on every case", async () => {
    await store([a, b]);
    const stored = await t.server.db.events.read({});
    for (const [title, filter, expected] of CASES) {
      const page = await t.server.request("POST", "/events/filter", { filter: { ...filter, order: "ASC" } });
      expect(page.status, title).toBe(200);
      expect(page.body.events.map((e: EventShape) => e.event), title).toEqual(expected);

      const counts = await t.server.request("POST", "/events/count-by/event", { filter });
      expect(counts.status, title).toBe(200);
      expect(counts.body.map((c: { value: string }) => c.value).sort(), title).toEqual(expected);

      const resolved = resolveEventFilter(filter);
      const matched = stored.filter((e) => eventMatches(resolved, toWireEvent(e))).map((e) => e.event);
      expect(matched.sort(), title).toEqual(expected);
    }
  });
});
