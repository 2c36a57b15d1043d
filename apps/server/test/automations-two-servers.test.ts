/**
 * Two servers on one database (PostgreSQL, or one SQLite file), each running the triggers and actions services: events
 * received by either server count in the same buckets, every firing is acted on exactly once, and a
 * server that goes away mid-window loses no firing (its bucket is in the database).
 */
import { selectedBackends } from "@prefect/db/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAutomation, Receiver, receivedEvent } from "./support/automations.js";
import { waitFor } from "./support/events.js";
import { startServer, type TestServer } from "./support/server.js";

const SERVICES_ON = {
  PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: "true",
  PREFECT_SERVER_SERVICES_ACTIONS_ENABLED: "true",
  PREFECT_SERVER_SERVICES_ACTIONS_LOOP_SECONDS: "0.2",
  PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY: "1",
};

const receiver = new Receiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`two servers on one database [${backend}]`, () => {
    let first: TestServer;
    let second: TestServer;
    let secondOpen = false;

    beforeEach(async () => {
      first = await startServer(backend, SERVICES_ON);
      second = await startServer(backend, SERVICES_ON, first.db.config);
      secondOpen = true;
      receiver.received.length = 0;
    });

    afterEach(async () => {
      if (secondOpen) await second.close();
      await first.close();
    });

    /** An automation calling a webhook on the receiver with the triggering event's id. */
    async function webhookAutomation(trigger: Record<string, unknown>) {
      await first.request("POST", "/block_types/install_system_block_types");
      const type = (await first.request("GET", "/block_types/slug/webhook")).body;
      const [schema] = (await first.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [type.id] } } })).body;
      const block = (await first.request("POST", "/block_documents/", { name: "hook", block_type_id: type.id, block_schema_id: schema.id, data: { url: `${receiver.url}/hook` } }))
        .body;
      return createAutomation(first, { trigger, actions: [{ type: "call-webhook", block_document_id: block.id, payload: "{{ event.id }}" }] });
    }

    const send = async (server: TestServer, event: ReturnType<typeof receivedEvent>) => {
      const { received: _received, ...sent } = event;
      expect((await server.request("POST", "/events", [sent])).status).toBe(204);
    };

    it("acts on every firing exactly once, whichever server received its event", async () => {
      await webhookAutomation({ type: "event", posture: "Reactive", expect: ["test.ping"] });
      const events = Array.from({ length: 12 }, () => receivedEvent("test.ping", { "prefect.resource.id": "test.thing" }));
      await Promise.all(events.map((event, i) => send(i % 2 === 0 ? first : second, event)));
      await waitFor(async () => receiver.received.length >= events.length && (await first.db.automations.readQueuedActions()).length === 0, "every action");
      expect(receiver.received.map((r) => r.body).sort()).toEqual(events.map((e) => e.id).sort());
    });

    it("a proactive trigger checked by both servers fires once per window", async () => {
      await webhookAutomation({ type: "event", posture: "Proactive", expect: ["test.heartbeat"], within: 10 });
      await waitFor(() => receiver.received.length > 0, "the proactive firing", 30_000);
      // Both servers check proactive triggers every second: give each a few more passes in the same window.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(receiver.received).toHaveLength(1);
      expect(receiver.received[0]!.body).toBe("");
    });

    it("a server that goes away mid-window loses no firing: the other one fires with the stored bucket", async () => {
      const automation = await webhookAutomation({ type: "event", posture: "Reactive", expect: ["test.crash"], threshold: 2, within: 600 });
      await send(second, receivedEvent("test.crash", { "prefect.resource.id": "test.thing" }));
      await waitFor(async () => (await first.db.automations.readBuckets(automation.id, automation.trigger.id)).some((b) => b.count === 1), "the first event counted");
      await second.close();
      secondOpen = false;
      const last = receivedEvent("test.crash", { "prefect.resource.id": "test.thing" });
      await send(first, last);
      await waitFor(() => receiver.received.length === 1, "the firing's webhook");
      expect(receiver.received[0]!.body).toBe(last.id);
    });
  });
}
