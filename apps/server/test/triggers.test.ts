/**
 * The triggers service (Prefect's triggers.py) evaluated directly with events and times: reactive
 * thresholds per `for_each` bucket, proactive expiry and resolution, compound and sequence triggers,
 * `after`, and causal ordering. Firings are read from the events the server publishes and the actions
 * they queue.
 */
import type { Timestamp } from "@prefect/db";
import { expect, it } from "vitest";
import { EventOrdering, evaluateEvents, evaluateProactiveTriggers, triggersHousekeeping } from "../src/features/triggers/service.js";
import { createAutomation, named, receivedEvent, recordEvents, secondsAfter } from "./support/automations.js";
import { describeApi } from "./support/server.js";

const DEPLOYMENT_A = "prefect.deployment.aaaaaaaa-0000-4000-8000-000000000001";
const DEPLOYMENT_B = "prefect.deployment.bbbbbbbb-0000-4000-8000-000000000002";

const crash = (deployment: string) =>
  receivedEvent("prefect.flow-run.Crashed", { "prefect.resource.id": `prefect.flow-run.${crypto.randomUUID()}` }, [
    { "prefect.resource.id": deployment, "prefect.resource.role": "deployment" },
  ]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeApi("triggers: reactive thresholds", (t) => {
  it("fires once for three crashes of one deployment within the window, and not for another deployment", async () => {
    const automation = await createAutomation(t.server, {
      trigger: {
        type: "event",
        posture: "Reactive",
        expect: ["prefect.flow-run.Crashed"],
        match_related: { "prefect.resource.role": "deployment" },
        for_each: ["related:deployment:prefect.resource.id"],
        threshold: 3,
        within: 600,
      },
    });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [crash(DEPLOYMENT_A), crash(DEPLOYMENT_B), crash(DEPLOYMENT_A), crash(DEPLOYMENT_B)]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await evaluateEvents(t.server.context, [crash(DEPLOYMENT_A)]);
    const [fired, ...more] = named(events, "prefect.automation.triggered");
    expect(more).toEqual([]);
    expect(fired!.resource).toMatchObject({ "prefect.resource.id": `prefect.automation.${automation.id}`, "prefect.posture": "Reactive" });
    expect(fired!.payload.triggering_labels).toEqual({ "related:deployment:prefect.resource.id": DEPLOYMENT_A });
    // Events in the rest of the window after the firing are not counted again.
    await evaluateEvents(t.server.context, [crash(DEPLOYMENT_A), crash(DEPLOYMENT_A), crash(DEPLOYMENT_A)]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
    const queued = await t.server.db.automations.readQueuedActions();
    expect(queued.map((q) => [q.automation_id, q.action_index])).toEqual([[automation.id, 0]]);
    expect(queued[0]!.triggered_action).toMatchObject({ action: { type: "do-nothing" }, automation_triggered_event_id: fired!.id, triggering_labels: fired!.payload.triggering_labels });
  });

  it("fires for every matching event when the window is 0, and ignores events that do not match", async () => {
    await createAutomation(t.server, { trigger: { type: "event", posture: "Reactive", expect: ["test.ping"], match: { "prefect.resource.id": "test.*" } } });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [
      receivedEvent("test.ping", { "prefect.resource.id": "test.1" }),
      receivedEvent("test.pong", { "prefect.resource.id": "test.1" }),
      receivedEvent("test.ping", { "prefect.resource.id": "other.1" }),
      receivedEvent("test.ping", { "prefect.resource.id": "test.2" }),
    ]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(2);
  });

  it("counts only after the `after` event armed the trigger, once per arming", async () => {
    await createAutomation(t.server, { trigger: { type: "event", posture: "Reactive", after: ["test.start"], expect: ["test.step"], threshold: 2, within: 60 } });
    const events = recordEvents(t.server);
    const resource = { "prefect.resource.id": "test.job" };
    await evaluateEvents(t.server.context, [receivedEvent("test.step", resource), receivedEvent("test.step", resource)]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await evaluateEvents(t.server.context, [receivedEvent("test.start", resource), receivedEvent("test.step", resource), receivedEvent("test.step", resource)]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
    await evaluateEvents(t.server.context, [receivedEvent("test.step", resource), receivedEvent("test.step", resource)]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });

  it("ignores disabled automations", async () => {
    await createAutomation(t.server, { enabled: false, trigger: { type: "event", posture: "Reactive", expect: ["test.ping"] } });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [receivedEvent("test.ping", { "prefect.resource.id": "test.1" })]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
  });
});

describeApi("triggers: proactive", (t) => {
  it("fires once when no expected event comes within the window, and resolves when one does", async () => {
    const automation = await createAutomation(t.server, {
      trigger: { type: "event", posture: "Proactive", expect: ["prefect.flow-run.Completed"], match_related: { "prefect.resource.id": DEPLOYMENT_A }, within: 30 },
      actions_on_resolve: [{ type: "do-nothing" }],
    });
    const events = recordEvents(t.server);
    const t0 = new Date().toISOString();
    await evaluateProactiveTriggers(t.server.context, t0 as Timestamp);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 20) as Timestamp);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 31) as Timestamp);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 35) as Timestamp);
    const [fired, ...more] = named(events, "prefect.automation.triggered");
    expect(more).toEqual([]);
    expect(fired!.resource).toMatchObject({ "prefect.resource.id": `prefect.automation.${automation.id}`, "prefect.posture": "Proactive" });
    expect(fired!.payload.triggering_event).toBeNull();

    const completed = receivedEvent("prefect.flow-run.Completed", { "prefect.resource.id": "prefect.flow-run.1" }, [
      { "prefect.resource.id": DEPLOYMENT_A, "prefect.resource.role": "deployment" },
    ]);
    await evaluateEvents(t.server.context, [{ ...completed, occurred: secondsAfter(t0, 40) }]);
    const [resolved, ...moreResolved] = named(events, "prefect.automation.resolved");
    expect(moreResolved).toEqual([]);
    expect(resolved!.related).toEqual([{ "prefect.resource.id": `prefect.event.${completed.id}`, "prefect.resource.role": "triggering-event" }]);
    // The window with the event does not fire; neither does a later pass.
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 62) as Timestamp);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 63) as Timestamp);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
    expect(named(events, "prefect.automation.resolved")).toHaveLength(1);
    // `actions` for both firings, `actions_on_resolve` (index 1) for the resolution.
    const queued = await t.server.db.automations.readQueuedActions();
    expect(queued.map((q) => q.action_index)).toEqual([0, 0, 1]);
  });

  it("fires per `for_each` bucket once an event opened it and no follow-up came", async () => {
    await createAutomation(t.server, {
      trigger: {
        type: "event",
        posture: "Proactive",
        after: ["prefect.flow-run.Running"],
        expect: ["prefect.flow-run.Completed"],
        for_each: ["prefect.resource.id"],
        within: 30,
      },
    });
    const events = recordEvents(t.server);
    const t0 = new Date().toISOString();
    const running = (id: string) => ({ ...receivedEvent("prefect.flow-run.Running", { "prefect.resource.id": `prefect.flow-run.${id}` }), occurred: t0 });
    await evaluateEvents(t.server.context, [running("a"), running("b")]);
    await evaluateEvents(t.server.context, [{ ...receivedEvent("prefect.flow-run.Completed", { "prefect.resource.id": "prefect.flow-run.b" }), occurred: secondsAfter(t0, 5) }]);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 31) as Timestamp);
    const fired = named(events, "prefect.automation.triggered");
    expect(fired.map((e) => e.payload.triggering_labels)).toEqual([{ "prefect.resource.id": "prefect.flow-run.a" }]);
    await evaluateProactiveTriggers(t.server.context, secondsAfter(t0, 70) as Timestamp);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });
});

describeApi("triggers: compound and sequence", (t) => {
  const child = (name: string) => ({ type: "event", posture: "Reactive", expect: [name], threshold: 1, within: 0 });
  const ping = (name: string) => receivedEvent(name, { "prefect.resource.id": "test.thing" });

  it("a compound trigger needing all fires once every child fired, then starts over", async () => {
    await createAutomation(t.server, { trigger: { type: "compound", require: "all", within: 60, triggers: [child("test.a"), child("test.b"), child("test.c")] } });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [ping("test.a"), ping("test.b"), ping("test.a")]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await evaluateEvents(t.server.context, [ping("test.c")]);
    const fired = named(events, "prefect.automation.triggered");
    expect(fired).toHaveLength(1);
    expect(fired[0]!.resource["prefect.posture"]).toBeUndefined();
    await evaluateEvents(t.server.context, [ping("test.c")]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });

  it("a compound trigger needing any (or 1) fires for each child firing", async () => {
    await createAutomation(t.server, { trigger: { type: "compound", require: 1, within: null, triggers: [child("test.a"), child("test.b")] } });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [ping("test.a"), ping("test.b")]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(2);
  });

  it("a sequence fires when its children fire in order, not in another order", async () => {
    await createAutomation(t.server, { trigger: { type: "sequence", within: 60, triggers: [child("test.first"), child("test.second")] } });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [ping("test.second")]);
    await sleep(5);
    await evaluateEvents(t.server.context, [ping("test.first")]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await sleep(5);
    await evaluateEvents(t.server.context, [ping("test.second")]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });

  it("nested composites pass their firings up", async () => {
    await createAutomation(t.server, {
      trigger: { type: "compound", require: "all", within: null, triggers: [child("test.a"), { type: "sequence", within: null, triggers: [child("test.b"), child("test.c")] }] },
    });
    const events = recordEvents(t.server);
    await evaluateEvents(t.server.context, [ping("test.c"), ping("test.a")]);
    await sleep(5);
    await evaluateEvents(t.server.context, [ping("test.b")]);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await sleep(5);
    await evaluateEvents(t.server.context, [ping("test.c")]);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });
});

describeApi("triggers: causal ordering", (t) => {
  it("an event that follows one not seen yet waits for it, and is evaluated after it", async () => {
    await createAutomation(t.server, { trigger: { type: "sequence", within: null, triggers: [{ type: "event", posture: "Reactive", expect: ["test.first"] }, { type: "event", posture: "Reactive", expect: ["test.second"] }] } });
    const events = recordEvents(t.server);
    const ordering = new EventOrdering();
    const first = receivedEvent("test.first", { "prefect.resource.id": "test.thing" });
    const second = receivedEvent("test.second", { "prefect.resource.id": "test.thing" }, [], { follows: first.id });
    await evaluateEvents(t.server.context, [second], ordering);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await sleep(5);
    await evaluateEvents(t.server.context, [first], ordering);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
    // A redelivered event is evaluated once.
    await evaluateEvents(t.server.context, [first, second], ordering);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });

  it("an event whose leader never comes is evaluated after the lookback", async () => {
    await createAutomation(t.server, { trigger: { type: "event", posture: "Reactive", expect: ["test.second"] } });
    const events = recordEvents(t.server);
    const ordering = new EventOrdering();
    const lost = receivedEvent("test.second", { "prefect.resource.id": "test.thing" }, [], { follows: crypto.randomUUID() });
    await evaluateEvents(t.server.context, [lost], ordering);
    await triggersHousekeeping(t.server.context, ordering);
    expect(named(events, "prefect.automation.triggered")).toEqual([]);
    await triggersHousekeeping(t.server.context, ordering, secondsAfter(new Date().toISOString(), 16 * 60) as Timestamp);
    expect(named(events, "prefect.automation.triggered")).toHaveLength(1);
  });
});
