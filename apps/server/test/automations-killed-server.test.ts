/**
 * Automations on two server processes on one database (PostgreSQL, or one SQLite file), the triggers
 * and actions services running in each, one of them killed with SIGKILL, so that nothing it holds is
 * given back:
 *  - a threshold trigger whose first event came through the killed server fires once when the second
 *    comes through the other (its bucket, and the stored event, are in the database);
 *  - an action the killed server was performing is taken again by the other once its hold ends
 *    (PREFECT_SERVER_SERVICES_ACTIONS_HOLD_SECONDS) and done once. What "once" can mean there: the
 *    killed server's webhook call had reached the receiver and was never answered, so the receiver
 *    sees the call twice (a webhook is delivered at least once), while the action is completed and
 *    reported once (one `.action.triggered`, one `.action.executed`, nothing failed).
 */
import { openTestDatabase, selectedBackends, type TestDatabase } from "@prefect/db/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AUTOMATION_SERVICES_ON, Receiver, receivedEvent, sendEvent, webhookAutomation } from "./support/automations.js";
import { waitFor } from "./support/events.js";
import { ServerProcess } from "./support/processes.js";
import { apiRequests, TEST_DEFAULTS, type TestServer } from "./support/server.js";

/** How long a taken action is held here (60 s by default). */
const HOLD_SECONDS = 2;

/** Each process is given a UI address of its own, which `{{ event.url }}` renders: the receiver tells the callers apart. */
const uiOf = (name: string) => `http://${name}.server.test`;
const urlOfEvent = (name: string, eventId: string) => expect.stringMatching(new RegExp(`^${uiOf(name).replace(/\./g, "\\.")}/events/event/[\\d-]+/${eventId}$`));

interface Started {
  readonly name: string;
  readonly process: ServerProcess;
  readonly api: Pick<TestServer, "request">;
}

const receiver = new Receiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`automations on two server processes, one killed [${backend}]`, () => {
    let database: TestDatabase;
    const started: ServerProcess[] = [];

    beforeEach(async () => {
      database = await openTestDatabase(backend);
      receiver.received.length = 0;
      receiver.hold = undefined;
    });

    afterEach(async () => {
      for (const process of started.splice(0)) await process.kill();
      await database.cleanup();
    });

    /** Server processes `a` and `b` on the test's (migrated) database. */
    async function servers(): Promise<[Started, Started]> {
      const start = async (name: string): Promise<Started> => {
        const { process, apiUrl } = await ServerProcess.start(database.config, {
          ...TEST_DEFAULTS,
          ...AUTOMATION_SERVICES_ON,
          PREFECT_SERVER_SERVICES_ACTIONS_HOLD_SECONDS: String(HOLD_SECONDS),
          PREFECT_SERVER_UI_API_URL: `${uiOf(name)}/api`,
        });
        started.push(process);
        return { name, process, api: { request: apiRequests(apiUrl) } };
      };
      return Promise.all([start("a"), start("b")]);
    }

    /** The stored events named `name`, read through `server`. */
    // biome-ignore lint/suspicious/noExplicitAny: events are read freely in tests
    const stored = async (server: Started, name: string): Promise<any[]> =>
      (await server.api.request("POST", "/events/filter", { filter: { event: { name: [name] } } })).body.events;

    it("a server killed mid-window loses no firing: first event through it, second through the other, one webhook call", async () => {
      const [a, b] = await servers();
      const trigger = { type: "event", posture: "Reactive", expect: ["test.crash"], threshold: 2, within: 600 };
      await webhookAutomation(a.api, `${receiver.url}/hook`, trigger, "{{ event.url }}");
      const first = receivedEvent("test.crash", { "prefect.resource.id": "test.thing" });
      await sendEvent(a.api, first);
      // Once A has stored it, the event is evaluated whoever reads it: A, or B if A dies mid-evaluation.
      await waitFor(async () => (await database.db.events.get(first.id)) !== null, "the first event stored");
      await a.process.kill();

      const second = receivedEvent("test.crash", { "prefect.resource.id": "test.thing" });
      await sendEvent(b.api, second);
      await waitFor(async () => (await stored(b, "prefect.automation.action.executed")).length > 0, "the firing's action done");
      expect(receiver.received.map((r) => r.body)).toEqual([urlOfEvent("b", second.id)]);
      expect(await stored(b, "prefect.automation.triggered")).toHaveLength(1);
      expect(await database.db.automations.readQueuedActions()).toEqual([]);
    });

    it("an action held by a server killed while performing it is taken again by the other after the hold, and done once", async () => {
      const [a, b] = await servers();
      await webhookAutomation(a.api, `${receiver.url}/hook`, { type: "event", posture: "Reactive", expect: ["test.ping"] }, "{{ event.url }}");
      // The first call of the webhook, from whichever server took the action, is never answered.
      receiver.hold = (request) => request === receiver.received[0];
      const event = receivedEvent("test.ping", { "prefect.resource.id": "test.thing" });
      await sendEvent(a.api, event);

      const held = await waitFor(() => receiver.received[0], "the first call of the webhook");
      const [taker, other] = held.body.startsWith(uiOf("a")) ? [a, b] : [b, a];
      await taker.process.kill();

      await waitFor(async () => (await stored(other, "prefect.automation.action.executed")).length > 0, "the other server to do the action");
      expect(receiver.received).toEqual([
        expect.objectContaining({ body: urlOfEvent(taker.name, event.id), answered: false }),
        expect.objectContaining({ body: urlOfEvent(other.name, event.id), answered: true }),
      ]);
      const [executed, ...moreExecuted] = await stored(other, "prefect.automation.action.executed");
      expect(moreExecuted).toEqual([]);
      expect(executed.payload).toMatchObject({ action_type: "call-webhook", status_code: 200 });
      expect(await stored(other, "prefect.automation.action.triggered")).toHaveLength(1);
      expect(await stored(other, "prefect.automation.action.failed")).toEqual([]);
      expect(await database.db.automations.readQueuedActions()).toEqual([]);
    });
  });
}
