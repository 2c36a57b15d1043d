/**
 * The actions service (Prefect's actions.py): what each action does through the feature services,
 * the `.action.triggered` / `.executed` / `.failed` events, failures that leave the automation
 * enabled, and webhooks and notifications delivered to a local receiver with their rendered bodies.
 * The first suite runs the triggers and actions services as the server does.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { MAX_ATTEMPTS, runQueuedActions } from "../src/features/actions/service.js";
import { evaluateEvents } from "../src/features/triggers/service.js";
import { AUTOMATION_SERVICES_ON, createAutomation, createDeployment, named, Receiver, receivedEvent, recordEvents, runsOf } from "./support/automations.js";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

const receiver = new Receiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

async function setState(server: TestServer, runId: string, type: string) {
  const response = await server.request("POST", `/flow_runs/${runId}/set_state`, { state: { type }, force: true });
  expect(response.body.status).toBe("ACCEPT");
}

describeApi(
  "actions: with the triggers and actions services running",
  (t) => {
    it("a failed run of deployment X starts one run of deployment Y", async () => {
      const x = await createDeployment(t.server, "x");
      const y = await createDeployment(t.server, "y");
      const automation = await createAutomation(t.server, {
        trigger: { type: "event", posture: "Reactive", expect: ["prefect.flow-run.Failed"], match_related: { "prefect.resource.id": `prefect.deployment.${x}` } },
        actions: [{ type: "run-deployment", source: "selected", deployment_id: y, parameters: {} }],
      });
      const events = recordEvents(t.server);
      const run = (await t.server.request("POST", `/deployments/${x}/create_flow_run`, {})).body;
      await setState(t.server, run.id, "RUNNING");
      await setState(t.server, run.id, "FAILED");
      const executed = await waitFor(() => named(events, "prefect.automation.action.executed")[0], "the run-deployment action");
      expect(executed.resource).toMatchObject({ "prefect.resource.id": `prefect.automation.${automation.id}`, "prefect.trigger-type": "event", "prefect.posture": "Reactive" });
      const started = await runsOf(t.server, y);
      expect(started).toHaveLength(1);
      expect(executed.related).toContainEqual(expect.objectContaining({ "prefect.resource.id": `prefect.flow-run.${started[0]!.id}`, "prefect.resource.role": "flow-run" }));
      expect(named(events, "prefect.automation.action.triggered")).toHaveLength(1);
      expect(await t.server.db.automations.readQueuedActions()).toEqual([]);
      expect(await runsOf(t.server, x)).toHaveLength(1);
    });
  },
  AUTOMATION_SERVICES_ON,
);

describeApi("actions: performed", (t) => {
  /** Fires the automation with one event and performs its queued actions. */
  async function fireWith(event = receivedEvent("test.ping", { "prefect.resource.id": "test.thing" })) {
    await evaluateEvents(t.server.context, [event]);
    await runQueuedActions(t.server.context);
  }
  const onPing = { type: "event", posture: "Reactive", expect: ["test.ping"] };

  async function blockDocument(slug: string, data: Record<string, unknown>): Promise<string> {
    await t.server.request("POST", "/block_types/install_system_block_types");
    const type = (await t.server.request("GET", `/block_types/slug/${slug}`)).body;
    const [schema] = (await t.server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [type.id] } } })).body;
    const created = await t.server.request("POST", "/block_documents/", { name: `${slug}-doc`, block_type_id: type.id, block_schema_id: schema.id, data });
    expect(created.status).toBe(201);
    return created.body.id;
  }

  it("call-webhook sends the rendered payload through the webhook block", async () => {
    const block = await blockDocument("webhook", { method: "POST", url: `${receiver.url}/hook`, headers: { "content-type": "application/json" } });
    await createAutomation(t.server, {
      name: "hooked",
      trigger: onPing,
      actions: [{ type: "call-webhook", block_document_id: block, payload: '{"resource": "{{ event.resource.id }}", "automation": "{{ automation.name }}"}' }],
    });
    const events = recordEvents(t.server);
    const before = receiver.received.length;
    await fireWith();
    const got = receiver.received.slice(before);
    expect(got.map((r) => [r.method, r.url])).toEqual([["POST", "/hook"]]);
    expect(JSON.parse(got[0]!.body)).toEqual({ resource: "test.thing", automation: "hooked" });
    const [executed] = named(events, "prefect.automation.action.executed");
    expect(executed!.payload).toMatchObject({ action_type: "call-webhook", status_code: 200, response_body: "ok" });
    expect(executed!.related).toContainEqual(expect.objectContaining({ "prefect.resource.id": `prefect.block-document.${block}`, "prefect.resource.role": "block" }));
  });

  it("send-notification sends the rendered subject and body through a Slack block", async () => {
    const block = await blockDocument("slack-webhook", { url: `${receiver.url}/services/T/B/X` });
    await createAutomation(t.server, {
      trigger: onPing,
      actions: [{ type: "send-notification", block_document_id: block, subject: "About {{ event.resource.id }}", body: "{{ event.event }} happened" }],
    });
    const events = recordEvents(t.server);
    const before = receiver.received.length;
    await fireWith();
    const got = receiver.received.slice(before);
    expect(got.map((r) => r.url)).toEqual(["/services/T/B/X"]);
    expect(JSON.parse(got[0]!.body)).toMatchObject({ attachments: [{ title: "About test.thing", text: "test.ping happened" }] });
    expect(named(events, "prefect.automation.action.executed")).toHaveLength(1);
  });

  it("send-notification through a block type this server cannot send with fails with a clear event", async () => {
    const block = await blockDocument("pager-duty-webhook", { integration_key: "k", api_key: "a" });
    const automation = await createAutomation(t.server, { trigger: onPing, actions: [{ type: "send-notification", block_document_id: block, body: "b" }] });
    const events = recordEvents(t.server);
    await fireWith();
    const [failed] = named(events, "prefect.automation.action.failed");
    expect(failed!.payload.reason).toMatch(/pager-duty-webhook.*not supported/);
    expect((await t.server.request("GET", `/automations/${automation.id}`)).body.enabled).toBe(true);
  });

  it("a notification the receiver refuses is tried again, then reported failed", async () => {
    const block = await blockDocument("custom-webhook", { name: "hook", url: `${receiver.url}/status/500`, method: "POST", json_data: { text: "{{body}}" } });
    await createAutomation(t.server, { trigger: onPing, actions: [{ type: "send-notification", block_document_id: block, body: "b" }] });
    const events = recordEvents(t.server);
    const before = receiver.received.length;
    await evaluateEvents(t.server.context, [receivedEvent("test.ping", { "prefect.resource.id": "test.thing" })]);
    const failed = await waitFor(async () => {
      await runQueuedActions(t.server.context);
      return named(events, "prefect.automation.action.failed")[0];
    }, "the action to fail for good");
    expect(failed.payload.reason).toMatch(/failed 3 times.*HTTP 500/);
    expect(receiver.received.length - before).toBe(MAX_ATTEMPTS);
    expect(named(events, "prefect.automation.action.executed")).toEqual([]);
  });

  it("an action naming a missing deployment fails that action, runs the others and leaves the automation enabled", async () => {
    const automation = await createAutomation(t.server, {
      trigger: onPing,
      actions: [{ type: "run-deployment", source: "selected", deployment_id: crypto.randomUUID() }, { type: "do-nothing" }],
    });
    const events = recordEvents(t.server);
    await fireWith();
    const [failed] = named(events, "prefect.automation.action.failed");
    expect(failed!.payload).toMatchObject({ action_index: 0, action_type: "run-deployment", reason: "Unexpected status from 'run-deployment' action: 404", status_code: 404 });
    expect(named(events, "prefect.automation.action.executed").map((e) => e.payload.action_index)).toEqual([1]);
    expect((await t.server.request("GET", `/automations/${automation.id}`)).body.enabled).toBe(true);
    expect(await t.server.db.automations.readQueuedActions()).toEqual([]);
  });

  it("inferred targets come from the triggering event: pause the deployment, cancel the flow run", async () => {
    const deployment = await createDeployment(t.server, "d");
    await createAutomation(t.server, {
      trigger: { type: "event", posture: "Reactive", expect: ["test.stuck"] },
      actions: [{ type: "pause-deployment", source: "inferred" }, { type: "cancel-flow-run" }],
    });
    const run = (await t.server.request("POST", `/deployments/${deployment}/create_flow_run`, {})).body;
    await setState(t.server, run.id, "RUNNING");
    await fireWith(
      receivedEvent("test.stuck", { "prefect.resource.id": `prefect.flow-run.${run.id}` }, [{ "prefect.resource.id": `prefect.deployment.${deployment}`, "prefect.resource.role": "deployment" }]),
    );
    expect((await t.server.request("GET", `/deployments/${deployment}`)).body.paused).toBe(true);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body.state.type).toBe("CANCELLING");
  });

  it("pauses the selected work pool and automation; a missing inferred target fails", async () => {
    const pool = (await t.server.request("POST", "/work_pools/", { name: "pool", type: "process" })).body;
    const other = await createAutomation(t.server, { name: "other", trigger: { type: "event", posture: "Reactive", expect: ["never"] } });
    await createAutomation(t.server, {
      trigger: onPing,
      actions: [
        { type: "pause-work-pool", source: "selected", work_pool_id: pool.id },
        { type: "pause-automation", source: "selected", automation_id: other.id },
        { type: "resume-work-queue", source: "inferred" },
      ],
    });
    const events = recordEvents(t.server);
    await fireWith();
    expect((await t.server.request("GET", "/work_pools/pool")).body.is_paused).toBe(true);
    expect((await t.server.request("GET", `/automations/${other.id}`)).body.enabled).toBe(false);
    expect(named(events, "prefect.automation.action.failed").map((e) => e.payload.reason)).toEqual(["No work queue could be inferred"]);
  });
});
