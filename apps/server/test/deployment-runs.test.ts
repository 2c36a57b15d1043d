import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const FUTURE = "2999-01-01T00:00:00.000000Z";

async function flow(server: TestServer, name = "etl"): Promise<string> {
  return (await server.request("POST", "/flows/", { name })).body.id;
}

async function deploy(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/deployments/", body);
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

async function scheduledRun(server: TestServer, flowId: string, deploymentId: string, fields: Record<string, unknown> = {}) {
  const at = (fields.next_scheduled_start_time as string | undefined) ?? FUTURE;
  const { row } = await server.db.flowRuns.create({
    flow_id: flowId,
    deployment_id: deploymentId,
    auto_scheduled: true,
    state: { type: "SCHEDULED", state_details: { scheduled_time: at } },
    next_scheduled_start_time: at,
    expected_start_time: at,
    ...fields,
  });
  return row.id;
}

const exists = async (server: TestServer, ids: string[]) => Promise.all(ids.map(async (id) => (await server.db.flowRuns.get(id)) !== null));

describeApi("deployments API: flow runs from a deployment", (t) => {
  it("creates a SCHEDULED run (201) with the deployment's defaults merged under what is given", async () => {
    const f = await flow(t.server);
    const pool = await t.server.db.workPools.create({ name: "pool", type: "process" });
    const d = await deploy(t.server, {
      name: "d",
      flow_id: f,
      version: "1.2",
      parameters: { a: 1, b: 2 },
      tags: ["dep"],
      labels: { team: "data" },
      work_pool_name: "pool",
      job_variables: { env: { A: "1" } },
      enforce_parameter_schema: false,
    });
    const seen: ReceivedEvent[] = [];
    t.server.context.events.subscribe((events) => seen.push(...events));
    const response = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { b: 3 }, tags: ["run", "dep"], labels: { mine: "yes" } });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({
      flow_id: f,
      deployment_id: d.id,
      deployment_version: "1.2",
      parameters: { a: 1, b: 3 },
      work_queue_name: "default",
      work_queue_id: pool.default_queue_id,
      work_pool_name: "pool",
      state_type: "SCHEDULED",
      state: { type: "SCHEDULED", name: "Scheduled" },
      auto_scheduled: false,
      labels: { team: "data", mine: "yes", "prefect.flow.id": f, "prefect.deployment.id": d.id },
    });
    expect([...response.body.tags].sort()).toEqual(["dep", "run"]);
    expect(response.body.state.state_details.scheduled_time).not.toBeNull();
    expect(response.body.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(seen.map((e) => e.event)).toContain("prefect.flow-run.Scheduled");
    const pending = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { state: { type: "PENDING" }, name: "named", job_variables: { cpu: 1 } });
    expect(pending.body).toMatchObject({ state_type: "PENDING", name: "named", job_variables: { cpu: 1 } });
  });

  it("is idempotent on the idempotency key (201 then 200, the same run)", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, enforce_parameter_schema: false });
    const first = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { idempotency_key: "once" });
    const second = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { idempotency_key: "once", parameters: { x: 1 } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(second.body.parameters).toEqual({});
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(1);
  });

  it("checks parameters against the deployment's schema when enforced (409, as Prefect), per run when asked", async () => {
    const f = await flow(t.server);
    const schema = { type: "object", properties: { n: { type: "integer" }, name: { type: "string" } }, required: ["n"] };
    const d = await deploy(t.server, { name: "d", flow_id: f, parameter_openapi_schema: schema, parameters: { name: "x" } });
    const missing = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {});
    expect(missing).toMatchObject({ status: 409, body: { detail: "Error creating flow run: Validation failed. Failure reason: 'n' is a required property" } });
    const wrong = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { n: "two" } });
    expect(wrong).toMatchObject({ status: 409, body: { detail: "Error creating flow run: Validation failed for field 'n'. Failure reason: 'two' is not of type 'integer'" } });
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { n: 2 } })).status).toBe(201);
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { n: "two" }, enforce_parameter_schema: false })).status).toBe(201);
    const looping = await deploy(t.server, { name: "loop", flow_id: f, parameter_openapi_schema: { $ref: "#/$defs/a", $defs: { a: { $ref: "#/$defs/a" } } } });
    const circular = await t.server.request("POST", `/deployments/${looping.id}/create_flow_run`, {});
    expect(circular.status).toBe(422);
    expect(circular.body.detail[0].msg).toBe("Invalid schema: Unable to validate schema with circular references.");
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(2);
  });

  it("hydrates parameters (workspace variables, JSON, Jinja rendered in the sandbox), 400 for what cannot be hydrated", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, enforce_parameter_schema: false });
    await t.server.request("POST", "/variables/", { name: "region", value: "eu" });
    const hydrated = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {
      parameters: { region: { __prefect_kind: "workspace_variable", variable_name: "region" }, n: { __prefect_kind: "json", value: "[1, 2]" }, plain: { __prefect_kind: "none", value: 5 } },
    });
    expect(hydrated.status).toBe(201);
    expect(hydrated.body.parameters).toEqual({ region: "eu", n: [1, 2], plain: 5 });
    const missing = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { x: { __prefect_kind: "workspace_variable", variable_name: "nope" } } });
    expect(missing.status).toBe(400);
    expect(missing.body.detail).toBe("Error hydrating flow run parameters: Variable 'nope' not found in workspace.");
    // Prefect renders a run's templates with no context: unknown names chain to nothing.
    const jinja = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {
      parameters: { x: { __prefect_kind: "jinja", template: "{{ 1 + 1 }} and {{ flow_run.name }}!" } },
    });
    expect(jinja.status).toBe(201);
    expect(jinja.body.parameters).toEqual({ x: "2 and !" });
    const broken = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parameters: { x: { __prefect_kind: "jinja", template: "{{ x" } } });
    expect(broken.status).toBe(400);
    expect(broken.body.detail).toMatch(/^Error hydrating flow run parameters: Invalid jinja: syntax error: /);
    const tooBig = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {
      parameters: { x: { __prefect_kind: "jinja", template: "{% for i in range(1000) %}{{ i }}{% endfor %}" } },
    });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.detail).toContain("Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE=100.");
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(2);
  });

  it("checks job variables, required ones included, against the pool's template (422)", async () => {
    const f = await flow(t.server);
    await t.server.db.workPools.create({
      name: "k8s",
      type: "kubernetes",
      base_job_template: {
        job_configuration: { image: "{{ image }}", cpu: "{{ cpu }}" },
        variables: { type: "object", properties: { image: { type: "string", default: "python" }, cpu: { type: "integer" } }, required: ["image", "cpu"] },
      },
    });
    const d = await deploy(t.server, { name: "d", flow_id: f, work_pool_name: "k8s", enforce_parameter_schema: false });
    const missing = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {});
    expect(missing.status).toBe(422);
    expect(missing.body.detail[0].msg).toBe("Error creating flow run: Validation failed. Failure reason: 'cpu' is a required property");
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { job_variables: { cpu: 2 } })).status).toBe(201);
  });

  it("uses another queue of the deployment's pool (created when missing), 400 without a pool", async () => {
    const f = await flow(t.server);
    await t.server.db.workPools.create({ name: "pool", type: "process" });
    const d = await deploy(t.server, { name: "d", flow_id: f, work_pool_name: "pool", enforce_parameter_schema: false });
    const run = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { work_queue_name: "urgent" });
    expect(run.status).toBe(201);
    const urgent = await t.server.db.workQueues.getByName("pool", "urgent");
    expect(run.body).toMatchObject({ work_queue_name: "urgent", work_queue_id: urgent?.id, work_pool_name: "pool" });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.work_queue_name).toBe("default");
    const served = await deploy(t.server, { name: "served", flow_id: f, enforce_parameter_schema: false });
    const refused = await t.server.request("POST", `/deployments/${served.id}/create_flow_run`, { work_queue_name: "urgent" });
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toContain("is not associated with a work pool");
  });

  it("answers 404 for an unknown deployment and 422 for bad input", async () => {
    expect(await t.server.request("POST", `/deployments/${UNKNOWN}/create_flow_run`, {})).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f });
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { bogus: 1 })).status).toBe(422);
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { state: { type: "NOPE" } })).status).toBe(422);
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, { parent_task_run_id: UNKNOWN })).status).toBe(409);
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(0);
  });

  it("creates many runs at once, reporting each; 400 above 100; 404 for an unknown deployment", async () => {
    const f = await flow(t.server);
    const schema = { type: "object", properties: { n: { type: "integer" } } };
    const d = await deploy(t.server, { name: "d", flow_id: f, parameter_openapi_schema: schema });
    const bulk = await t.server.request("POST", `/deployments/${d.id}/create_flow_run/bulk`, [{ parameters: { n: 1 } }, { parameters: { n: "x" } }, { idempotency_key: "k" }]);
    expect(bulk.status).toBe(200);
    const [ok, failed, keyed] = bulk.body.results;
    expect(ok).toMatchObject({ status: "CREATED", error: null });
    expect(failed).toMatchObject({ status: "FAILED", flow_run_id: null });
    expect(failed.error).toContain("Validation failed for field 'n'");
    expect(keyed.status).toBe("CREATED");
    expect((await t.server.request("GET", `/flow_runs/${ok.flow_run_id}`)).body.parameters).toEqual({ n: 1 });
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(2);
    expect((await t.server.request("POST", `/deployments/${d.id}/create_flow_run/bulk`, [])).body).toEqual({ results: [] });
    const tooMany = await t.server.request("POST", `/deployments/${d.id}/create_flow_run/bulk`, Array.from({ length: 101 }, () => ({})));
    expect(tooMany).toMatchObject({ status: 400, body: { detail: "Cannot create more than 100 flow runs at once." } });
    expect((await t.server.request("POST", `/deployments/${UNKNOWN}/create_flow_run/bulk`, [])).status).toBe(404);
  });
});

describeApi("deployments API: pause, resume and polling", (t) => {
  it("pauses (deleting auto-scheduled runs not yet started, keeping manual ones) and resumes", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: 3600 } }] });
    const future = await scheduledRun(t.server, f, d.id);
    const due = await scheduledRun(t.server, f, d.id, { next_scheduled_start_time: addSeconds(now(), -30) });
    const manual = await scheduledRun(t.server, f, d.id, { auto_scheduled: false });
    const running = await scheduledRun(t.server, f, d.id, { state: { type: "RUNNING" } });
    const paused = await t.server.request("POST", `/deployments/${d.id}/pause_deployment`);
    expect(paused).toMatchObject({ status: 200, body: null });
    expect(await exists(t.server, [future, due, manual, running])).toEqual([false, false, true, true]);
    const read = (await t.server.request("GET", `/deployments/${d.id}`)).body;
    expect(read.paused).toBe(true);
    expect(read.schedules[0].active).toBe(true);
    expect((await t.server.request("POST", `/deployments/${d.id}/pause_deployment`)).status).toBe(200);
    expect((await t.server.request("POST", `/deployments/${d.id}/resume_deployment`)).status).toBe(200);
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.paused).toBe(false);
    expect(await t.server.request("POST", `/deployments/${UNKNOWN}/pause_deployment`)).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
    expect(await t.server.request("POST", `/deployments/${UNKNOWN}/resume_deployment`)).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
  });

  it("returns the deployments' scheduled runs by start time and marks the deployments READY", async () => {
    const f = await flow(t.server);
    const a = await deploy(t.server, { name: "a", flow_id: f });
    const b = await deploy(t.server, { name: "b", flow_id: f });
    const other = await deploy(t.server, { name: "other", flow_id: f });
    const soon = addSeconds(now(), 60);
    const later = addSeconds(now(), 600);
    const r1 = await scheduledRun(t.server, f, a.id, { next_scheduled_start_time: later });
    const r2 = await scheduledRun(t.server, f, b.id, { next_scheduled_start_time: soon });
    await scheduledRun(t.server, f, a.id, { state: { type: "PENDING" } });
    await scheduledRun(t.server, f, other.id, { next_scheduled_start_time: soon });
    const seen: ReceivedEvent[] = [];
    t.server.context.events.subscribe((events) => seen.push(...events));
    const polled = await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [a.id, b.id] });
    expect(polled.status).toBe(200);
    expect(polled.body.map((r: { id: string }) => r.id)).toEqual([r2, r1]);
    const readA = (await t.server.request("GET", `/deployments/${a.id}`)).body;
    expect(readA.status).toBe("READY");
    expect(readA.last_polled).not.toBeNull();
    expect((await t.server.request("GET", `/deployments/${other.id}`)).body.status).toBe("NOT_READY");
    expect(seen.filter((e) => e.event === "prefect.deployment.ready").map((e) => e.resource["prefect.resource.id"]).sort()).toEqual(
      [`prefect.deployment.${a.id}`, `prefect.deployment.${b.id}`].sort(),
    );
    await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [a.id] });
    expect(seen.filter((e) => e.event === "prefect.deployment.ready")).toHaveLength(2);

    const before = await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [a.id, b.id], scheduled_before: addSeconds(now(), 300) });
    expect(before.body.map((r: { id: string }) => r.id)).toEqual([r2]);
    const limited = await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [a.id, b.id], limit: 1 });
    expect(limited.body.map((r: { id: string }) => r.id)).toEqual([r2]);
    expect((await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [a.id], limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/get_scheduled_flow_runs", {})).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: [UNKNOWN] })).body).toEqual([]);
  });

  it("schedules runs now through the scheduler, and backfills given a window in the past", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, tags: ["t"], schedules: [{ schedule: { interval: 3600, anchor_date: "2020-01-01T00:00:00Z" } }] });
    const scheduled = await t.server.request("POST", `/deployments/${d.id}/schedule`, { min_runs: 2, max_runs: 5, min_time: 0 });
    expect(scheduled).toMatchObject({ status: 200, body: null });
    const runs = await t.server.request("POST", "/flow_runs/filter", { flow_runs: { deployment_id: { any_: [d.id] } }, sort: "EXPECTED_START_TIME_ASC" });
    expect(runs.body).toHaveLength(2);
    expect(runs.body[0]).toMatchObject({ auto_scheduled: true, state_type: "SCHEDULED", tags: ["auto-scheduled", "t"] });
    expect((await t.server.request("POST", `/deployments/${d.id}/schedule`, { min_runs: 2, max_runs: 5, min_time: 0 })).status).toBe(200);
    const backfill = await t.server.request("POST", `/deployments/${d.id}/schedule`, { start_time: "2021-01-01T00:00:00Z", end_time: "2021-01-01T03:30:00Z", min_runs: 10, max_runs: 100 });
    expect(backfill.status).toBe(200);
    const all = await t.server.request("POST", "/flow_runs/filter", { flow_runs: { deployment_id: { any_: [d.id] } }, sort: "EXPECTED_START_TIME_ASC" });
    expect(all.body.slice(0, 4).map((r: { expected_start_time: string }) => r.expected_start_time.slice(0, 16))).toEqual([
      "2021-01-01T00:00",
      "2021-01-01T01:00",
      "2021-01-01T02:00",
      "2021-01-01T03:00",
    ]);
    expect(all.body).toHaveLength(6);
    expect((await t.server.request("POST", `/deployments/${UNKNOWN}/schedule`, {})).status).toBe(200);
    expect((await t.server.request("POST", `/deployments/${d.id}/schedule`, { min_runs: "many" })).status).toBe(422);
  });
});
