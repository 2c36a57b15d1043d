import type { ReceivedEvent } from "@prefect/orchestration";
import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const BLOCK = "11111111-1111-4111-8111-111111111111";

const reactive = (fields: Record<string, unknown> = {}) => ({ type: "event", posture: "Reactive", expect: ["prefect.flow-run.Failed"], ...fields });

function automation(fields: Record<string, unknown> = {}) {
  return { name: "when it fails", trigger: reactive(), actions: [{ type: "do-nothing" }], ...fields };
}

async function create(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/automations/", body);
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

async function deployment(server: TestServer, name = "d", fields: Record<string, unknown> = {}) {
  const flow = (await server.request("POST", "/flows/", { name: "etl" })).body.id;
  const response = await server.request("POST", "/deployments/", { name, flow_id: flow, ...fields });
  if (response.status !== 201) throw new Error(`deployment failed: ${JSON.stringify(response.body)}`);
  return response.body.id as string;
}

function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

type Detail = { loc: unknown[]; msg: string; type: string };
const details = (body: { exception_detail: Detail[] }) => body.exception_detail;

describeApi("automations API: create, read, replace, enable, delete", (t) => {
  it("creates an automation (201) with Prefect's defaults and new trigger ids, and reads it back", async () => {
    const events = recordEvents(t.server);
    const clientId = "22222222-2222-4222-8222-222222222222";
    const created = await t.server.request("POST", "/automations/", {
      name: "notify",
      trigger: { type: "compound", id: clientId, require: "any", within: "PT1M", triggers: [reactive({ id: clientId }), { posture: "Proactive", expect: ["x.y"] }] },
      actions: [{ type: "send-notification", block_document_id: BLOCK, body: "Flow {{ flow_run.name }} failed: {{ flow_run | ui_url }}" }],
    });
    expect(created.status).toBe(201);
    const body = created.body;
    expect(Object.keys(body)).toEqual(["name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger", "actions_on_resolve", "id", "created", "updated"]);
    expect(body).toMatchObject({ name: "notify", description: "", enabled: true, tags: [], actions_on_trigger: [], actions_on_resolve: [] });
    expect(body.trigger).toMatchObject({ type: "compound", require: "any", within: 60 });
    expect(body.trigger.id).not.toBe(clientId);
    expect(body.trigger.triggers[0]).toEqual({
      type: "event",
      id: expect.any(String),
      match: {},
      match_related: {},
      after: [],
      expect: ["prefect.flow-run.Failed"],
      for_each: [],
      posture: "Reactive",
      threshold: 1,
      within: 0,
    });
    expect(body.trigger.triggers[0].id).not.toBe(clientId);
    // A Proactive trigger without `within` waits 10 seconds; `type` defaults to "event".
    expect(body.trigger.triggers[1]).toMatchObject({ type: "event", posture: "Proactive", within: 10 });
    expect(body.actions).toEqual([{ type: "send-notification", block_document_id: BLOCK, subject: "Prefect automated notification", body: expect.any(String) }]);

    expect((await t.server.request("GET", `/automations/${body.id}`)).body).toEqual(body);
    expect(events.filter((e) => e.event.startsWith("prefect.automation."))).toEqual([
      expect.objectContaining({
        event: "prefect.automation.created",
        resource: { "prefect.resource.id": `prefect.automation.${body.id}`, "prefect.resource.name": "notify" },
        payload: body,
      }),
    ]);
  });

  it("filters by name and tags, sorts, pages and counts", async () => {
    for (const [name, tags] of [
      ["b", ["x"]],
      ["a", ["x", "y"]],
      ["c", []],
    ] as const) {
      await create(t.server, automation({ name, tags }));
    }
    const names = async (body: Record<string, unknown>) => (await t.server.request("POST", "/automations/filter", body)).body.map((a: { name: string }) => a.name);
    expect(await names({})).toEqual(["a", "b", "c"]);
    expect(await names({ sort: "NAME_DESC" })).toEqual(["c", "b", "a"]);
    expect(await names({ limit: 1, offset: 1 })).toEqual(["b"]);
    expect(await names({ automations: { name: { any_: ["c", "a"] } } })).toEqual(["a", "c"]);
    expect(await names({ automations: { tags: { all_: ["x", "y"] } } })).toEqual(["a"]);
    expect(await names({ automations: { tags: { is_null_: true } } })).toEqual(["c"]);
    expect(await names({ automations: { created: { before_: "2000-01-01T00:00:00Z" } } })).toEqual([]);
    expect((await t.server.request("POST", "/automations/count")).body).toBe(3);
    expect((await t.server.request("POST", "/automations/filter", { limit: 500 })).status).toBe(422);
  });

  it("replaces an automation (PUT 204) with new trigger ids, keeping fields left out", async () => {
    const events = recordEvents(t.server);
    const a = await create(t.server, automation({ description: "keep me", tags: ["t"] }));
    const put = await t.server.request("PUT", `/automations/${a.id}`, { name: "renamed", trigger: reactive({ threshold: 3, within: 30 }), actions: [] });
    expect(put.status).toBe(204);
    const after = (await t.server.request("GET", `/automations/${a.id}`)).body;
    expect(after).toMatchObject({ name: "renamed", description: "keep me", tags: ["t"], actions: [], trigger: { threshold: 3, within: 30 } });
    expect(after.trigger.id).not.toBe(a.trigger.id);
    const again = await t.server.request("PUT", `/automations/${a.id}`, { name: "renamed", trigger: after.trigger, actions: [] });
    expect(again.status).toBe(204);
    expect((await t.server.request("GET", `/automations/${a.id}`)).body.trigger.id).not.toBe(after.trigger.id);
    expect(events.filter((e) => e.event === "prefect.automation.updated")).toHaveLength(2);
    expect(events.find((e) => e.event === "prefect.automation.updated")?.payload).toMatchObject({ name: "renamed", id: a.id });

    expect(await t.server.request("PUT", `/automations/${UNKNOWN}`, automation())).toMatchObject({ status: 404, body: { exception_message: "Automation not found" } });
    const extra = await t.server.request("PUT", `/automations/${a.id}`, { ...automation(), id: a.id, owner_resource: "x" });
    expect(extra.status).toBe(422);
    expect(details(extra.body).map((d) => [d.loc, d.type])).toEqual([
      [["body", "id"], "extra_forbidden"],
      [["body", "owner_resource"], "extra_forbidden"],
    ]);
  });

  it("enables and disables (PATCH 204), and deletes (204, then 404)", async () => {
    const events = recordEvents(t.server);
    const a = await create(t.server, automation());
    expect((await t.server.request("PATCH", `/automations/${a.id}`, { enabled: false })).status).toBe(204);
    expect((await t.server.request("GET", `/automations/${a.id}`)).body.enabled).toBe(false);
    expect((await t.server.request("PATCH", `/automations/${a.id}`, {})).status).toBe(204);
    expect((await t.server.request("GET", `/automations/${a.id}`)).body.enabled).toBe(true);
    expect((await t.server.request("PATCH", `/automations/${a.id}`, { enabled: true, name: "x" })).status).toBe(422);
    expect(await t.server.request("PATCH", `/automations/${UNKNOWN}`, { enabled: true })).toMatchObject({ status: 404, body: { exception_message: "Automation not found" } });

    expect((await t.server.request("DELETE", `/automations/${a.id}`)).status).toBe(204);
    expect(await t.server.request("GET", `/automations/${a.id}`)).toMatchObject({ status: 404, body: { exception_message: "Automation not found" } });
    expect((await t.server.request("DELETE", `/automations/${a.id}`)).status).toBe(404);
    expect((await t.server.request("GET", "/automations/not-a-uuid")).status).toBe(404);
    expect(events.filter((e) => e.event.startsWith("prefect.automation.")).map((e) => e.event)).toEqual([
      "prefect.automation.created",
      "prefect.automation.updated",
      "prefect.automation.updated",
      "prefect.automation.deleted",
    ]);
  });
});

describeApi("automations API: Prefect's validation", (t) => {
  /** Bad triggers and actions, with the problem Prefect reports for the union member that fits them. */
  const BAD: { name: string; body: Record<string, unknown>; loc: unknown[]; msg: string }[] = [
    { name: "posture left out", body: automation({ trigger: { type: "event" } }), loc: ["body", "trigger", "EventTrigger", "posture"], msg: "Field required" },
    {
      name: "a Metric posture",
      body: automation({ trigger: { type: "event", posture: "Metric" } }),
      loc: ["body", "trigger", "EventTrigger", "posture"],
      msg: "Input should be 'Reactive' or 'Proactive'",
    },
    {
      name: "a metric trigger",
      body: automation({ trigger: { type: "metric", posture: "Metric", metric: {} } }),
      loc: ["body", "trigger", "EventTrigger", "type"],
      msg: "Input should be 'event'",
    },
    {
      name: "a null within",
      body: automation({ trigger: reactive({ within: null }) }),
      loc: ["body", "trigger", "EventTrigger"],
      msg: "Value error, `within` should be a valid timedelta",
    },
    {
      name: "a negative within",
      body: automation({ trigger: reactive({ within: -1 }) }),
      loc: ["body", "trigger", "EventTrigger", "within"],
      msg: "Input should be greater than or equal to 0 seconds",
    },
    {
      name: "a short Proactive within",
      body: automation({ trigger: { type: "event", posture: "Proactive", within: 5 } }),
      loc: ["body", "trigger", "EventTrigger"],
      msg: "Value error, `within` for Proactive triggers must be greater than or equal to 10 seconds",
    },
    {
      name: "a fractional threshold",
      body: automation({ trigger: reactive({ threshold: 1.5 }) }),
      loc: ["body", "trigger", "EventTrigger", "threshold"],
      msg: "Input should be a valid integer, got a number with a fractional part",
    },
    {
      name: "require 0",
      body: automation({ trigger: { type: "compound", require: 0, within: null, triggers: [reactive()] } }),
      loc: ["body", "trigger", "function-after[validate_require(), function-after[validate_require(), CompoundTrigger]]"],
      msg: "Value error, require must be at least 1",
    },
    {
      name: "require above the triggers",
      body: automation({ trigger: { type: "compound", require: 3, within: null, triggers: [reactive(), reactive()] } }),
      loc: ["body", "trigger", "function-after[validate_require(), function-after[validate_require(), CompoundTrigger]]"],
      msg: "Value error, require must be less than or equal to the number of triggers",
    },
    {
      name: "a compound trigger without within",
      body: automation({ trigger: { type: "compound", require: "all", triggers: [reactive()] } }),
      loc: ["body", "trigger", "function-after[validate_require(), function-after[validate_require(), CompoundTrigger]]", "within"],
      msg: "Field required",
    },
    {
      name: "a sequence trigger with a bad child",
      body: automation({ trigger: { type: "sequence", within: 60, triggers: [reactive(), { type: "event" }] } }),
      loc: ["body", "trigger", "SequenceTrigger", "triggers", 1, "EventTrigger", "posture"],
      msg: "Field required",
    },
    {
      name: "a selected deployment without its id",
      body: automation({ actions: [{ type: "run-deployment" }] }),
      loc: ["body", "actions", 0, "function-after[selected_deployment_requires_id(), RunDeployment]"],
      msg: "Value error, deployment_id is required",
    },
    {
      name: "an inferred deployment with an id",
      body: automation({ actions: [{ type: "pause-deployment", source: "inferred", deployment_id: UNKNOWN }] }),
      loc: ["body", "actions", 0, "function-after[selected_deployment_requires_id(), PauseDeployment]"],
      msg: "Value error, deployment_id is not allowed",
    },
    {
      name: "a work pool action without its id",
      body: automation({ actions: [{ type: "pause-work-pool", source: "selected" }] }),
      loc: ["body", "actions", 0, "function-after[selected_work_pool_requires_id(), PauseWorkPool]"],
      msg: "Value error, work_pool_id is required",
    },
    {
      name: "a work queue action with an id to infer",
      body: automation({ actions: [{ type: "resume-work-queue", source: "inferred", work_queue_id: UNKNOWN }] }),
      loc: ["body", "actions", 0, "function-after[selected_work_queue_requires_id(), ResumeWorkQueue]"],
      msg: "Value error, work_queue_id is not allowed",
    },
    {
      name: "an automation action without its id",
      body: automation({ actions: [{ type: "pause-automation" }] }),
      loc: ["body", "actions", 0, "function-after[selected_automation_requires_id(), PauseAutomation]"],
      msg: "Value error, automation_id is required",
    },
    {
      name: "a state change without a state",
      body: automation({ actions: [{ type: "change-flow-run-state" }] }),
      loc: ["body", "actions", 0, "ChangeFlowRunState", "state"],
      msg: "Field required",
    },
    {
      name: "an unknown state",
      body: automation({ actions: [{ type: "change-flow-run-state", state: "DONE" }] }),
      loc: ["body", "actions", 0, "ChangeFlowRunState", "state"],
      msg: "Input should be 'SCHEDULED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED', 'PAUSED' or 'CANCELLING'",
    },
    {
      name: "a notification body that is not a template",
      body: automation({ actions: [{ type: "send-notification", block_document_id: BLOCK, body: "{{ flow_run.name " }] }),
      loc: ["body", "actions", 0, "SendNotification", "body"],
      msg: "Value error, 'body' is not a valid template: syntax error: unexpected end of input, expected end of variable block",
    },
    {
      name: "a notification subject with too many loops",
      body: automation({ actions: [{ type: "send-notification", block_document_id: BLOCK, body: "b", subject: "{% for a in x %}{% endfor %}".repeat(11) }] }),
      loc: ["body", "actions", 0, "SendNotification", "subject"],
      msg: "Value error, 'subject' is not a valid template: Contains 11 for loops. Templates can contain no more than 10 for loops.",
    },
    {
      name: "a webhook payload nested too deep",
      body: automation({ actions: [{ type: "call-webhook", block_document_id: BLOCK, payload: "{% for a in x %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}" }] }),
      loc: ["body", "actions", 0, "CallWebhook", "payload"],
      msg: "Value error, 'payload' is not a valid template: Contains nested for loops at a depth of 3. Templates can nest for loops no more than 2 loops deep.",
    },
    {
      name: "run-deployment parameters with broken hydration",
      body: automation({
        actions: [
          {
            type: "run-deployment",
            deployment_id: UNKNOWN,
            parameters: { a: { __prefect_kind: "json", value: "{nope" }, b: { c: { __prefect_kind: "jinja" } }, d: "{{ ok }}", e: { __prefect_kind: "workspace_variable", variable_name: "x" } },
          },
        ],
      }),
      loc: ["body", "actions", 0, "function-after[selected_deployment_requires_id(), RunDeployment]", "parameters"],
      msg: "Value error, Invalid parameters: \na: Invalid JSON: ",
    },
    {
      name: "a negative schedule_after",
      body: automation({ actions: [{ type: "run-deployment", deployment_id: UNKNOWN, schedule_after: -5 }] }),
      loc: ["body", "actions", 0, "function-after[selected_deployment_requires_id(), RunDeployment]", "schedule_after"],
      msg: "Input should be greater than or equal to 0 seconds",
    },
    { name: "an unknown action type", body: automation({ actions: [{ type: "launch-rocket" }] }), loc: ["body", "actions", 0, "DoNothing", "type"], msg: "Input should be 'do-nothing'" },
    { name: "no actions", body: { name: "x", trigger: reactive() }, loc: ["body", "actions"], msg: "Field required" },
    { name: "an extra key", body: automation({ id: UNKNOWN }), loc: ["body", "id"], msg: "Extra inputs are not permitted" },
  ];

  for (const bad of BAD) {
    it(`refuses ${bad.name} with Prefect's 422`, async () => {
      const response = await t.server.request("POST", "/automations/", bad.body);
      expect(response.status).toBe(422);
      expect(response.body.exception_message).toBe("Invalid request received.");
      expect(response.body.request_body).toEqual(bad.body);
      const found = details(response.body).find((d) => JSON.stringify(d.loc) === JSON.stringify(bad.loc));
      expect(found, JSON.stringify(details(response.body), null, 1)).toBeDefined();
      if (bad.msg.endsWith(": ")) expect(found!.msg.startsWith(bad.msg)).toBe(true);
      else expect(found!.msg).toBe(bad.msg);
      expect((await t.server.request("POST", "/automations/count")).body).toBe(0);
    });
  }

  it("reports a value that fits no union member against every member, as pydantic does", async () => {
    const response = await t.server.request("POST", "/automations/", automation({ actions: [{ type: "launch-rocket" }] }));
    const actionProblems = details(response.body).filter((d) => d.loc[1] === "actions");
    const members = [...new Set(actionProblems.map((d) => d.loc[3]))];
    expect(members).toHaveLength(17);
    expect(actionProblems.filter((d) => d.type === "literal_error")).toHaveLength(17);
    const parameters = await t.server.request(
      "POST",
      "/automations/",
      automation({ actions: [{ type: "run-deployment", deployment_id: UNKNOWN, parameters: { a: { __prefect_kind: "json", value: "{" }, b: { c: { __prefect_kind: "jinja" } } } }] }),
    );
    const message = details(parameters.body).find((d) => d.type === "value_error")!.msg;
    expect(message).toMatch(/^Value error, Invalid parameters: \na: Invalid JSON: .+\n {2}b\.c: Missing 'template' key in __prefect object$/);
  });

  it("guards against run-deployment loops, on create and when PATCH enables one", async () => {
    const selected = [{ type: "run-deployment", deployment_id: UNKNOWN }];
    const looping = automation({ trigger: reactive({ expect: ["prefect.flow-run.Running"] }), actions: selected });
    const refused = await t.server.request("POST", "/automations/", looping);
    expect(refused.status).toBe(422);
    expect(details(refused.body)).toEqual([
      expect.objectContaining({ loc: ["body"], type: "value_error", msg: expect.stringMatching(/^Value error, Running a selected deployment from a flow run state change event may lead to an infinite loop/) }),
    ]);
    const inferred = await t.server.request("POST", "/automations/", automation({ trigger: reactive({ expect: ["prefect.flow-run.*"] }), actions: [{ type: "run-deployment", source: "inferred" }] }));
    expect(details(inferred.body)[0]!.msg).toMatch(/^Value error, Running an inferred deployment from a flow run state change event will lead to an infinite loop of flow runs\. {2}Please/);
    // Narrowed by a related resource, or disabled, it is accepted.
    expect((await t.server.request("POST", "/automations/", { ...looping, trigger: reactive({ expect: ["prefect.flow-run.Running"], match_related: { "prefect.resource.id": "prefect.flow.1" } }) })).status).toBe(201);
    const disabled = await create(t.server, { ...looping, enabled: false });
    const enable = await t.server.request("PATCH", `/automations/${disabled.id}`, { enabled: true });
    expect(enable.status).toBe(422);
    expect(enable.body.exception_detail).toEqual([expect.objectContaining({ loc: [], type: "value_error" })]);
    expect(enable.body.request_body).toEqual({ enabled: true });
    expect((await t.server.request("GET", `/automations/${disabled.id}`)).body.enabled).toBe(false);
  });

  it("checks run-deployment job variables against the work pool's template", async () => {
    await t.server.db.workPools.create({
      name: "k8s",
      type: "kubernetes",
      base_job_template: {
        job_configuration: { image: "{{ image }}" },
        variables: { type: "object", properties: { cpu: { type: "integer" }, image: { type: "string" } }, required: ["image"] },
      },
    });
    const d = await deployment(t.server, "d", { work_pool_name: "k8s" });
    const run = (jobVariables: unknown) => automation({ actions: [{ type: "run-deployment", deployment_id: d, job_variables: jobVariables }] });
    // Prefect answers these with an HTTPException (`{"detail": "<text>"}`), which its OpenAPI document
    // does not list for 422, so they are read without the contract check.
    const post = async (body: unknown) => {
      const response = await fetch(`${t.server.url}/api/automations/`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: response.status, body: (await response.json()) as { detail: string } };
    };
    expect(await post(run({ cpu: "lots", image: "x" }))).toEqual({
      status: 422,
      body: { detail: "Error creating automation: Validation failed for field 'cpu'. Failure reason: 'lots' is not valid under any of the given schemas" },
    });
    const missingRequired = await post(run({ cpu: 1 }));
    expect(missingRequired.status).toBe(422);
    expect(missingRequired.body.detail).toMatch(/^Error creating automation: .*image/);
    const put = await fetch(`${t.server.url}/api/automations/${(await create(t.server, automation())).id}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(run({ cpu: "x", image: "y" })),
    });
    expect(put.status).toBe(422);
    expect((await t.server.request("POST", "/automations/", run({ cpu: 2, image: "python" }))).status).toBe(201);
    expect((await t.server.request("POST", "/automations/", run({}))).status).toBe(201);
    const missingDeployment = await t.server.request("POST", "/automations/", automation({ actions: [{ type: "run-deployment", deployment_id: UNKNOWN, job_variables: { a: 1 } }] }));
    expect(missingDeployment).toMatchObject({ status: 404, body: { detail: "Deployment not found." } });
  });

  it("answers bodies that are not JSON objects with 422 and unknown paths with 404", async () => {
    const text = await t.server.request("POST", "/automations/", undefined, { raw: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(text.status).toBe(422);
    expect(details(text.body)[0]).toMatchObject({ loc: ["body"], type: "model_attributes_type" });
    const filter = await t.server.request("POST", "/automations/filter", undefined, { raw: "sort=NAME_ASC", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(filter.status).toBe(422);
    expect(details(filter.body)[0]).toMatchObject({ loc: ["body"], msg: "Input should be a valid dictionary or object to extract fields from" });
    const broken = await t.server.request("POST", "/automations/", undefined, { raw: "{nope" });
    expect(broken.status).toBe(422);
    expect(details(broken.body)[0]).toMatchObject({ type: "json_invalid", msg: "JSON decode error" });
    const unknown = await fetch(`${t.server.url}/api/no/such/route`, { method: "POST", body: "a=b", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ detail: "Not Found" });
  });
});

describeApi("automations API: related and owned resources, deployment triggers", (t) => {
  it("relates automations to the deployments they run and to their owner; owned-by deletes only owned ones", async () => {
    const d1 = await deployment(t.server, "d1");
    const d2 = await deployment(t.server, "d2");
    const runs = (id: string) => ({ type: "run-deployment", deployment_id: id });
    const owned = await create(t.server, automation({ name: "owned", actions: [runs(d2)], owner_resource: `prefect.deployment.${d1}` }));
    const related = await create(t.server, automation({ name: "related", actions: [runs(d1)] }));
    const other = await create(t.server, automation({ name: "other", actions: [runs(d2)] }));
    const relatedTo = async (id: string) =>
      (await t.server.request("GET", `/automations/related-to/prefect.deployment.${id}`)).body.map((a: { name: string }) => a.name).sort();
    expect(await relatedTo(d1)).toEqual(["owned", "related"]);
    expect(await relatedTo(d2)).toEqual(["other", "owned"]);

    // PUT re-relates to the deployments the actions now select; the owner stays.
    await t.server.request("PUT", `/automations/${other.id}`, { name: "other", trigger: reactive(), actions: [runs(d1)] });
    expect(await relatedTo(d1)).toEqual(["other", "owned", "related"]);
    expect(await relatedTo(d2)).toEqual(["owned"]);
    await t.server.request("PUT", `/automations/${owned.id}`, { name: "owned", trigger: reactive(), actions: [] });
    expect(await relatedTo(d1)).toEqual(["other", "owned", "related"]);

    const deleted = await t.server.request("DELETE", `/automations/owned-by/prefect.deployment.${d1}`);
    expect(deleted).toMatchObject({ status: 202, body: null });
    expect(await relatedTo(d1)).toEqual(["other", "related"]);
    expect((await t.server.request("GET", `/automations/${owned.id}`)).status).toBe(404);
    expect((await t.server.request("GET", `/automations/${related.id}`)).status).toBe(200);
    expect((await t.server.request("DELETE", "/automations/owned-by/prefect.deployment.nothing")).status).toBe(202);
    expect((await t.server.request("GET", "/automations/related-to/prefect.flow.unknown")).body).toEqual([]);
  });

  it("turns a deployment's triggers into automations the deployment owns, as Prefect's client does", async () => {
    const d = await deployment(t.server, "downstream");
    const deploymentResource = `prefect.deployment.${d}`;
    // What `RunnerDeployment._create_triggers` sends: first the deployment's old triggers go, then each
    // trigger becomes an automation (the client's `as_automation().model_dump(mode="json")`).
    const clientAutomation = (name: string) => ({
      name,
      description: "",
      enabled: true,
      tags: [],
      trigger: {
        type: "event",
        id: "33333333-3333-4333-8333-333333333333",
        match: { "prefect.resource.id": "prefect.flow-run.*" },
        match_related: { "prefect.resource.role": "flow", "prefect.resource.name": "upstream" },
        after: [],
        expect: ["prefect.flow-run.Completed"],
        for_each: [],
        posture: "Reactive",
        threshold: 1,
        within: 0.0,
      },
      actions: [{ type: "run-deployment", source: "selected", deployment_id: d, parameters: { x: "{{ event.resource.name }}" }, job_variables: null, schedule_after: 0.0 }],
      actions_on_trigger: [],
      actions_on_resolve: [],
      owner_resource: deploymentResource,
    });
    for (let round = 0; round < 2; round++) {
      expect((await t.server.request("DELETE", `/automations/owned-by/${deploymentResource}`)).status).toBe(202);
      expect((await t.server.request("POST", "/automations/", clientAutomation("downstream__automation_1"))).status).toBe(201);
      expect((await t.server.request("POST", "/automations/", clientAutomation("downstream__automation_2"))).status).toBe(201);
    }
    const triggers = (await t.server.request("GET", `/automations/related-to/${deploymentResource}`)).body;
    expect(triggers.map((a: { name: string }) => a.name).sort()).toEqual(["downstream__automation_1", "downstream__automation_2"]);
    expect(triggers[0].actions[0]).toEqual({ type: "run-deployment", source: "selected", deployment_id: d, parameters: { x: "{{ event.resource.name }}" }, job_variables: null, schedule_after: 0 });
    expect((await t.server.request("POST", "/automations/count")).body).toBe(2);
  });
});

describeApi("templates/validate", (t) => {
  const paths = ["/templates/validate", "/automations/templates/validate"];

  it("takes the template as raw text (form-encoded, text/plain) or as a JSON string", async () => {
    for (const path of paths) {
      for (const headers of [{ "content-type": "application/x-www-form-urlencoded" }, { "content-type": "text/plain; charset=utf-8" }]) {
        expect((await t.server.request("POST", path, undefined, { raw: "Hello {{ flow_run.name }} & {{ x | tojson }}", headers })).status).toBe(204);
        const bad = await t.server.request("POST", path, undefined, { raw: "line one\n{{ x ", headers });
        expect(bad.status).toBe(422);
        expect(bad.body).toEqual({ error: { line: 2, message: "syntax error: unexpected end of input, expected end of variable block", source: "line one\n{{ x " } });
      }
      expect((await t.server.request("POST", path, "{% if x %}yes{% endif %}")).status).toBe(204);
      expect((await t.server.request("POST", path, "{% if x %}")).body.error).toMatchObject({ line: 1, source: "{% if x %}" });
      expect((await t.server.request("POST", path, undefined, { raw: "" })).status).toBe(204);
      const notText = await t.server.request("POST", path, { template: "x" });
      expect(notText.status).toBe(422);
      expect(notText.body.exception_detail[0]).toMatchObject({ loc: ["body"], msg: "Input should be a valid string" });
    }
  });

  it("applies Prefect's loop limits (line 0) after the syntax", async () => {
    const eleven = "{% for a in x %}{% endfor %}".repeat(11);
    expect((await t.server.request("POST", "/templates/validate", eleven)).body).toEqual({
      error: { line: 0, message: "Contains 11 for loops. Templates can contain no more than 10 for loops.", source: eleven },
    });
    const deep = "{% for a in x %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}";
    expect((await t.server.request("POST", "/templates/validate", deep)).body.error).toEqual({
      line: 0,
      message: "Contains nested for loops at a depth of 3. Templates can nest for loops no more than 2 loops deep.",
      source: deep,
    });
    expect((await t.server.request("POST", "/templates/validate", "{% for a in x %}{% for b in a %}{% endfor %}{% endfor %}".repeat(5))).status).toBe(204);
    // Loops inside strings and raw blocks are not loops.
    expect((await t.server.request("POST", "/templates/validate", `{{ "{% for %}" }}{% raw %}${deep}{% endraw %}`)).status).toBe(204);
  });
});
