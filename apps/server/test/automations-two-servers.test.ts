/**
 * Two servers on one database (PostgreSQL, or one SQLite file), each running the triggers and actions services: events
 * received by either server count in the same buckets, every firing is acted on exactly once, and a
 * server that goes away mid-window loses no firing (its bucket is in the database). Servers killed
 * with SIGKILL, as processes: automations-killed-server.test.ts.
 */
import { selectedBackends } from "@prefect/db/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AUTOMATION_SERVICES_ON, Receiver, receivedEvent, sendEvent, webhookAutomation } from "./support/automations.js";
import { waitFor } from "./support/events.js";
import { startServer, type TestServer } from "./support/server.js";

const receiver = new Receiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`two servers on one database [${backend}]`, () => {
    let first: TestServer;
    let second: TestServer;
    let secondOpen = false;

    beforeEach(async () => {
      first = await startServer(backend, AUTOMATION_SERVICES_ON);
      second = await startServer(backend, AUTOMATION_SERVICES_ON, first.db.config);
      secondOpen = true;
      receiver.received.length = 0;
    });

    afterEach(async () => {
      if (secondOpen) await second.close();
      await first.close();
    });

    /** An automation calling a webhook on the receiver with the triggering event's id. */
    const hookedAutomation = (trigger: Record<string, unknown>) => webhookAutomation(first, `${receiver.url}/hook`, trigger);

    it("acts on every firing exactly once, whichever server received its event", async () => {
      await hookedAutomation({ type: "event", posture: "Reactive", expect: ["test.ping"] });
      const events = Array.from({ length: 12 }, () => receivedEvent("test.ping", { "prefect.resource.id": "test.thing" }));
      await Promise.all(events.map((event, i) => sendEvent(i % 2 === 0 ? first : second, event)));
      await waitFor(async () => receiver.received.length >= events.length && (await first.db.automations.readQueuedActions()).length === 0, "every action");
      expect(receiver.received.map((r) => r.body).sort()).toEqual(events.map((e) => e.id).sort());
    });

    it("a proactive trigger checked by both servers fires once per window", async () => {
      await hookedAutomation({ type: "event", posture: "Proactive", expect: ["test.heartbeat"], within: 10 });
      await waitFor(() => receiver.received.length > 0, "the proactive firing", 30_000);
      // Both servers check proactive triggers every second: give each a few more passes in the same window.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(receiver.received).toHaveLength(1);
      expect(receiver.received[0]!.body).toBe("");
    });

    it("a server that goes away mid-window loses no firing: the other one fires with the stored bucket", async () => {
      const automation = await hookedAutomation({ type: "event", posture: "Reactive", expect: ["test.crash"], threshold: 2, within: 600 });
      await sendEvent(second, receivedEvent("test.crash", { "prefect.resource.id": "test.thing" }));
      await waitFor(async () => (await first.db.automations.readBuckets(automation.id, automation.trigger.id)).some((b) => b.count === 1), "the first event counted");
      await second.close();
      secondOpen = false;
      const last = receivedEvent("test.crash", { "prefect.resource.id": "test.thing" });
      await sendEvent(first, last);
      await waitFor(() => receiver.received.length === 1, "the firing's webhook");
      expect(receiver.received[0]!.body).toBe(last.id);
    });
  });
}
