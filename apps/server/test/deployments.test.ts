import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const FUTURE = "2999-01-01T00:00:00.000000Z";

async function flow(server: TestServer, name = "etl", labels: Record<string, unknown> = {}): Promise<string> {
  return (await server.request("POST", "/flows/", { name, labels })).body.id;
}

async function deploy(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/deployments/", body);
  if (response.status !== 201 && response.status !== 200) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

const deploymentEvents = (events: ReceivedEvent[]) => events.filter((e) => e.event.startsWith("prefect.deployment."));

/** A SCHEDULED run of the deployment, as the scheduler (auto_scheduled) or a user would have made it. */
async function scheduledRun(server: TestServer, flowId: string, deploymentId: string, fields: Record<string, unknown> = {}) {
  const { row } = await server.db.flowRuns.create({
    flow_id: flowId,
    deployment_id: deploymentId,
    auto_scheduled: true,
    state: { type: "SCHEDULED", state_details: { scheduled_time: FUTURE } },
    next_scheduled_start_time: FUTURE,
    expected_start_time: FUTURE,
    ...fields,
  });
  return row.id;
}

const exists = async (server: TestServer, ids: string[]) => Promise.all(ids.map(async (id) => (await server.db.flowRuns.get(id)) !== null));

describeApi("deployments API: create and read", (t) => {
  it("creates a deployment (201) with Prefect's fields, and upserts the same flow and name (200)", async () => {
    const f = await flow(t.server, "etl", { team: "data" });
    const events = recordEvents(t.server);
    const created = await t.server.request("POST", "/deployments/", {
      name: "nightly",
      flow_id: f,
      description: "every night",
      tags: ["a"],
      parameters: { n: 1 },
      job_variables: { image: "python" },
      labels: { env: "prod" },
      entrypoint: "flows.py:etl",
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "nightly",
      flow_id: f,
      description: "every night",
      tags: ["a"],
      parameters: { n: 1 },
      job_variables: { image: "python" },
      labels: { team: "data", env: "prod", "prefect.flow.id": f },
      entrypoint: "flows.py:etl",
      paused: false,
      status: "NOT_READY",
      schedules: [],
      concurrency_limit: null,
      global_concurrency_limit: null,
      work_queue_name: null,
      work_pool_name: null,
      enforce_parameter_schema: true,
    });
    const again = await t.server.request("POST", "/deployments/", { name: "nightly", flow_id: f, tags: ["b"], labels: { env: "prod" } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: created.body.id, description: "every night", tags: ["b"], parameters: { n: 1 }, job_variables: { image: "python" } });
    const unchanged = await t.server.request("POST", "/deployments/", { name: "nightly", flow_id: f, tags: ["b"], labels: { env: "prod" } });
    expect(unchanged.status).toBe(200);
    const seen = deploymentEvents(events);
    expect(seen.map((e) => e.event)).toEqual(["prefect.deployment.created", "prefect.deployment.updated"]);
    expect(seen[0]).toMatchObject({
      resource: { "prefect.resource.id": `prefect.deployment.${created.body.id}`, "prefect.resource.name": "nightly" },
      related: [{ "prefect.resource.id": `prefect.flow.${f}`, "prefect.resource.name": "etl", "prefect.resource.role": "flow" }],
    });
    expect(seen[1]?.payload).toEqual({ updated_fields: ["tags"], updates: { tags: { from: ["a"], to: ["b"] } } });
  });

  it("replaces the schedules and deletes future auto-scheduled runs on an upsert", async () => {
    const f = await flow(t.server);
    const first = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: 3600 }, slug: "hourly" }] });
    expect(first.schedules).toHaveLength(1);
    expect(first.schedules[0]).toMatchObject({ slug: "hourly", active: true, schedule: { interval: 3600, timezone: "UTC" } });
    const auto = await scheduledRun(t.server, f, first.id);
    const manual = await scheduledRun(t.server, f, first.id, { auto_scheduled: false });
    const second = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { cron: "0 0 * * *", timezone: "Europe/Paris" } }] });
    expect(second.schedules).toHaveLength(1);
    expect(second.schedules[0]).toMatchObject({ slug: null, schedule: { cron: "0 0 * * *", timezone: "Europe/Paris", day_or: true } });
    expect(await exists(t.server, [auto, manual])).toEqual([false, true]);
    expect((await deploy(t.server, { name: "d", flow_id: f })).schedules).toEqual([]);
  });

  it("resolves the work pool and queue, creating a missing queue, and refuses an unknown pool (404)", async () => {
    const f = await flow(t.server);
    const pool = await t.server.db.workPools.create({ name: "k8s", type: "kubernetes" });
    const withQueue = await deploy(t.server, { name: "a", flow_id: f, work_pool_name: "k8s", work_queue_name: "gpu" });
    const gpu = await t.server.db.workQueues.getByName("k8s", "gpu");
    expect(gpu).not.toBeNull();
    expect(withQueue).toMatchObject({ work_pool_name: "k8s", work_queue_name: "gpu", work_queue_id: gpu?.id });
    const poolOnly = await deploy(t.server, { name: "b", flow_id: f, work_pool_name: "k8s" });
    expect(poolOnly).toMatchObject({ work_pool_name: "k8s", work_queue_name: "default", work_queue_id: pool.default_queue_id });
    const legacy = await deploy(t.server, { name: "c", flow_id: f, work_queue_name: "old" });
    expect(legacy).toMatchObject({ work_pool_name: "default-agent-pool", work_queue_name: "old" });
    expect((await t.server.db.workPools.getByName("default-agent-pool"))?.type).toBe("prefect-agent");
    const missing = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, work_pool_name: "nope" });
    expect(missing).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
    expect((await t.server.request("POST", "/deployments/count", {})).body).toBe(3);
  });

  it("checks job variables against the pool's variables schema, ignoring required ones (422)", async () => {
    const f = await flow(t.server);
    await t.server.db.workPools.create({
      name: "k8s",
      type: "kubernetes",
      base_job_template: {
        job_configuration: { image: "{{ image }}", cpu: "{{ cpu }}" },
        variables: { type: "object", properties: { image: { type: "string" }, cpu: { type: "integer" } }, required: ["cpu"] },
      },
    });
    const ok = await t.server.request("POST", "/deployments/", { name: "ok", flow_id: f, work_pool_name: "k8s", job_variables: { image: "py" } });
    expect(ok.status).toBe(201);
    const wrong = await t.server.request("POST", "/deployments/", { name: "bad", flow_id: f, work_pool_name: "k8s", job_variables: { cpu: "lots" } });
    expect(wrong.status).toBe(422);
    expect(wrong.body.detail[0].msg).toBe("Error creating deployment: Validation failed for field 'cpu'. Failure reason: 'lots' is not of type 'integer'");
    expect((await t.server.request("POST", "/deployments/count", {})).body).toBe(1);
  });

  it("enforces the parameter schema when asked to (422), and accepts partial parameters", async () => {
    const f = await flow(t.server);
    const schema = { type: "object", properties: { foo: { type: "string" }, bar: { type: "integer" } }, required: ["foo", "bar"] };
    const bad = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, enforce_parameter_schema: true, parameter_openapi_schema: schema, parameters: { foo: 1 } });
    expect(bad.status).toBe(422);
    expect(bad.body.detail[0].msg).toBe("Value error, Validation failed for field 'foo'. Failure reason: 1 is not of type 'string'");
    const badSchema = await t.server.request("POST", "/deployments/", {
      name: "d",
      flow_id: f,
      enforce_parameter_schema: true,
      parameter_openapi_schema: { type: "object", properties: { foo: { type: "blork" } } },
      parameters: { foo: 1 },
    });
    expect(badSchema.status).toBe(422);
    expect(badSchema.body.detail[0].msg).toContain("'blork' is not valid under any of the given schemas");
    const external = await t.server.request("POST", "/deployments/", {
      name: "d",
      flow_id: f,
      enforce_parameter_schema: true,
      parameter_openapi_schema: { type: "object", properties: { foo: { $ref: "http://169.254.169.254/latest/meta-data/" } } },
      parameters: { foo: 1 },
    });
    expect(external.status).toBe(422);
    const partial = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, enforce_parameter_schema: true, parameter_openapi_schema: schema, parameters: { bar: 2 } });
    expect(partial.status).toBe(201);
    const notEnforced = await t.server.request("POST", "/deployments/", { name: "e", flow_id: f, parameter_openapi_schema: schema, parameters: { foo: 1 } });
    expect(notEnforced.status).toBe(201);
  });

  it("refuses bad input with 4xx and writes nothing", async () => {
    const f = await flow(t.server);
    const both = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, concurrency_limit: 2, global_concurrency_limit_id: UNKNOWN });
    expect(both.status).toBe(422);
    expect(both.body.detail[0].msg).toContain("A deployment cannot have both a concurrency limit and a global concurrency limit.");
    expect(await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, global_concurrency_limit_id: UNKNOWN })).toMatchObject({
      status: 404,
      body: { detail: "Concurrency limit not found" },
    });
    const storage = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, storage_document_id: UNKNOWN });
    expect(storage.status).toBe(409);
    expect(storage.body.detail).toContain(`Could not find storage block with id: ${UNKNOWN}`);
    expect((await t.server.request("POST", "/deployments/", { name: "d", flow_id: UNKNOWN })).status).toBe(409);
    const badName = await t.server.request("POST", "/deployments/", { name: "a/b", flow_id: f });
    expect(badName.status).toBe(422);
    expect(badName.body.detail[0].loc).toEqual(["body", "name"]);
    const extra = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, bogus: 1 });
    expect(extra.status).toBe(422);
    const tooMany = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, schedules: [{ schedule: { interval: 60 }, max_scheduled_runs: 51 }] });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.detail[0].loc).toEqual(["body", "schedules", 0, "max_scheduled_runs"]);
    const badCron = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, schedules: [{ schedule: { cron: "not a cron" } }] });
    expect(badCron.status).toBe(422);
    expect(badCron.body.detail[0].loc.slice(0, 4)).toEqual(["body", "schedules", 0, "schedule"]);
    const bigParameters = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, parameters: { x: "y".repeat(600_000) } });
    expect(bigParameters.status).toBe(422);
    expect((await t.server.request("POST", "/deployments/count", {})).body).toBe(0);
  });

  it("drops the fields old clients send instead of refusing them", async () => {
    const f = await flow(t.server);
    const created = await t.server.request("POST", "/deployments/", { name: "d", flow_id: f, worker_pool_queue_id: UNKNOWN, work_pool_queue_name: "x" });
    expect(created.status).toBe(201);
  });

  it("gives the deployment its own concurrency limit and keeps it on an upsert that does not mention it", async () => {
    const f = await flow(t.server);
    const created = await deploy(t.server, { name: "d", flow_id: f, concurrency_limit: 2, concurrency_options: { collision_strategy: "CANCEL_NEW" } });
    expect(created.concurrency_limit).toBeNull();
    expect(created.global_concurrency_limit).toMatchObject({ name: `deployment:${created.id}`, limit: 2, active: true, active_slots: 0 });
    expect(created.concurrency_options).toEqual({ collision_strategy: "CANCEL_NEW", grace_period_seconds: null });
    const upserted = await deploy(t.server, { name: "d", flow_id: f, tags: ["x"] });
    expect(upserted.global_concurrency_limit).toMatchObject({ id: created.global_concurrency_limit.id, limit: 2 });
    const shared = await t.server.db.concurrencyLimits.create({ name: "shared", limit: 5 });
    const other = await deploy(t.server, { name: "e", flow_id: f, global_concurrency_limit_id: shared.id });
    expect(other.global_concurrency_limit).toMatchObject({ id: shared.id, name: "shared", limit: 5 });
  });

  it("reads by id (404 unknown, 404 for a path that is not an id) and by flow and deployment name", async () => {
    const f = await flow(t.server, "my-flow");
    const created = await deploy(t.server, { name: "my deployment", flow_id: f });
    expect((await t.server.request("GET", `/deployments/${created.id}`)).body).toEqual(created);
    expect(await t.server.request("GET", `/deployments/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
    expect((await t.server.request("GET", "/deployments/not-an-id")).status).toBe(404);
    const byName = await t.server.request("GET", `/deployments/name/my-flow/${encodeURIComponent("my deployment")}`);
    expect(byName.body.id).toBe(created.id);
    expect(await t.server.request("GET", "/deployments/name/my-flow/other")).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
    expect((await t.server.request("GET", "/deployments/name/other/my deployment")).status).toBe(404);
  });
});

describeApi("deployments API: filter, paginate and count", (t) => {
  async function seed(server: TestServer) {
    const etl = await flow(server, "etl");
    const report = await flow(server, "report");
    await server.db.workPools.create({ name: "pool-a", type: "process" });
    const a = await deploy(server, { name: "alpha", flow_id: etl, tags: ["prod", "x"], work_pool_name: "pool-a" });
    const b = await deploy(server, { name: "beta", flow_id: etl, tags: ["dev"], paused: true });
    const c = await deploy(server, { name: "gamma", flow_id: report, tags: ["prod"] });
    return { etl, report, a, b, c };
  }
  const names = (body: { name: string }[]) => body.map((d) => d.name);

  it("filters on the deployment, its flow and its pool, sorts by name by default", async () => {
    const { etl, a } = await seed(t.server);
    expect(names((await t.server.request("POST", "/deployments/filter", {})).body)).toEqual(["alpha", "beta", "gamma"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { deployments: { tags: { all_: ["prod"] } } })).body)).toEqual(["alpha", "gamma"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { deployments: { paused: { eq_: true } } })).body)).toEqual(["beta"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { deployments: { id: { any_: [a.id] } } })).body)).toEqual(["alpha"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { deployments: { name: { like_: "mm" } } })).body)).toEqual(["gamma"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { flows: { id: { any_: [etl] } } })).body)).toEqual(["alpha", "beta"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { work_pools: { name: { any_: ["pool-a"] } } })).body)).toEqual(["alpha"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { work_pool_queues: { name: { any_: ["default"] } } })).body)).toEqual(["alpha"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { deployments: { flow_or_deployment_name: { like_: "report" } } })).body)).toEqual(["gamma"]);
  });

  it("sorts, limits and offsets; refuses a limit above 200 and an unknown sort (422)", async () => {
    await seed(t.server);
    expect(names((await t.server.request("POST", "/deployments/filter", { sort: "NAME_DESC" })).body)).toEqual(["gamma", "beta", "alpha"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { sort: "CREATED_DESC" })).body)).toEqual(["gamma", "beta", "alpha"]);
    expect(names((await t.server.request("POST", "/deployments/filter", { limit: 1, offset: 1 })).body)).toEqual(["beta"]);
    expect((await t.server.request("POST", "/deployments/filter", { limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/filter", { sort: "SIDEWAYS" })).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/filter", { deployments: { bogus: 1 } })).status).toBe(422);
  });

  it("paginates and counts with the same criteria", async () => {
    await seed(t.server);
    const first = await t.server.request("POST", "/deployments/paginate", { limit: 2 });
    expect(first.body).toMatchObject({ count: 3, limit: 2, pages: 2, page: 1 });
    expect(names(first.body.results)).toEqual(["alpha", "beta"]);
    const second = await t.server.request("POST", "/deployments/paginate", { limit: 2, page: 2 });
    expect(names(second.body.results)).toEqual(["gamma"]);
    const filtered = await t.server.request("POST", "/deployments/paginate", { deployments: { tags: { any_: ["dev"] } } });
    expect(filtered.body).toMatchObject({ count: 1, limit: 200, pages: 1, page: 1 });
    expect((await t.server.request("POST", "/deployments/paginate", { page: 0 })).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/count", {})).body).toBe(3);
    expect((await t.server.request("POST", "/deployments/count", { deployments: { tags: { all_: ["prod"] } } })).body).toBe(2);
    expect((await t.server.request("POST", "/deployments/count")).body).toBe(3);
  });
});

describeApi("deployments API: update and delete", (t) => {
  it("updates the fields given (204), deletes future auto-scheduled runs and publishes what changed", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, description: "old", tags: ["a"], parameters: { n: 1 } });
    const auto = await scheduledRun(t.server, f, d.id);
    const manual = await scheduledRun(t.server, f, d.id, { auto_scheduled: false });
    const events = recordEvents(t.server);
    const patched = await t.server.request("PATCH", `/deployments/${d.id}`, { description: "new", paused: true, job_variables: { image: "x" } });
    expect(patched.status).toBe(204);
    const after = (await t.server.request("GET", `/deployments/${d.id}`)).body;
    expect(after).toMatchObject({ description: "new", paused: true, tags: ["a"], parameters: { n: 1 }, job_variables: { image: "x" } });
    expect(await exists(t.server, [auto, manual])).toEqual([false, true]);
    const [updated] = deploymentEvents(events);
    expect(updated).toMatchObject({ event: "prefect.deployment.updated", payload: { updated_fields: ["description", "infra_overrides", "paused"] } });
    expect(updated?.payload?.updates).toMatchObject({ description: { from: "old", to: "new" }, paused: { from: false, to: true } });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { description: "new" })).status).toBe(204);
    expect(deploymentEvents(events)).toHaveLength(1);
    expect(await t.server.request("PATCH", `/deployments/${UNKNOWN}`, { description: "x" })).toMatchObject({ status: 404, body: { detail: "Deployment not found." } });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { bogus: 1 })).status).toBe(422);
  });

  it("moves the deployment between pools and queues, and out of any with work_pool_name null", async () => {
    const f = await flow(t.server);
    await t.server.db.workPools.create({ name: "one", type: "process" });
    const d = await deploy(t.server, { name: "d", flow_id: f });
    await t.server.request("PATCH", `/deployments/${d.id}`, { work_pool_name: "one", work_queue_name: "fast" });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body).toMatchObject({ work_pool_name: "one", work_queue_name: "fast" });
    await t.server.request("PATCH", `/deployments/${d.id}`, { work_pool_name: "one" });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body).toMatchObject({ work_pool_name: "one", work_queue_name: "default" });
    await t.server.request("PATCH", `/deployments/${d.id}`, { work_pool_name: null });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body).toMatchObject({ work_pool_name: null, work_queue_id: null });
    expect(await t.server.request("PATCH", `/deployments/${d.id}`, { work_pool_name: "nope" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
  });

  it("checks new job variables against the new pool's schema (409, as Prefect)", async () => {
    const f = await flow(t.server);
    await t.server.db.workPools.create({
      name: "k8s",
      type: "kubernetes",
      base_job_template: { job_configuration: { cpu: "{{ cpu }}" }, variables: { type: "object", properties: { cpu: { type: "integer" } } } },
    });
    const d = await deploy(t.server, { name: "d", flow_id: f });
    const wrong = await t.server.request("PATCH", `/deployments/${d.id}`, { work_pool_name: "k8s", job_variables: { cpu: "lots" } });
    expect(wrong).toMatchObject({ status: 409, body: { detail: `Error creating deployment: <ValidationError: "'lots' is not valid under any of the given schemas">` } });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.work_pool_name).toBeNull();
  });

  it("enforces the parameter schema on new parameters (409) and hydrates them", async () => {
    const f = await flow(t.server);
    const schema = { type: "object", properties: { foo: { type: "string" }, n: { type: "integer" } }, required: ["foo", "n"] };
    const d = await deploy(t.server, { name: "d", flow_id: f, parameter_openapi_schema: schema });
    const bad = await t.server.request("PATCH", `/deployments/${d.id}`, { parameters: { foo: 1 } });
    expect(bad).toMatchObject({ status: 409, body: { detail: "Error updating deployment: Validation failed for field 'foo'. Failure reason: 1 is not of type 'string'" } });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { parameters: { n: 2 } })).status).toBe(204);
    await t.server.request("POST", "/variables/", { name: "greeting", value: "hello" });
    const hydrated = await t.server.request("PATCH", `/deployments/${d.id}`, {
      parameters: { foo: { __prefect_kind: "workspace_variable", variable_name: "greeting" }, n: { __prefect_kind: "json", value: "3" } },
    });
    expect(hydrated.status).toBe(204);
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.parameters).toEqual({ foo: "hello", n: 3 });
    const missingVariable = await t.server.request("PATCH", `/deployments/${d.id}`, { parameters: { foo: { __prefect_kind: "workspace_variable", variable_name: "nope" } } });
    expect(missingVariable.status).toBe(400);
    expect(missingVariable.body.detail).toContain("Error hydrating deployment parameters");
    const jinja = await t.server.request("PATCH", `/deployments/${d.id}`, { parameters: { foo: { __prefect_kind: "jinja", template: "{{ 'hi' | upper }}" } } });
    expect(jinja.status).toBe(204);
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.parameters).toEqual({ foo: "HI" });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { enforce_parameter_schema: false, parameters: { foo: 1 } })).status).toBe(204);
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { parameters: { foo: 2 } })).status).toBe(204);
  });

  it("updates schedules by slug, renames with replaces, and refuses schedules without slugs then (422)", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, {
      name: "d",
      flow_id: f,
      schedules: [
        { schedule: { interval: 60 }, slug: "minutely", parameters: { a: 1 } },
        { schedule: { interval: 3600 }, slug: "hourly" },
      ],
    });
    const bySlug = (schedules: { id: string; slug: string }[]): Record<string, { id: string; slug: string }> => Object.fromEntries(schedules.map((s) => [s.slug, s]));
    const before = bySlug(d.schedules);
    expect(
      (
        await t.server.request("PATCH", `/deployments/${d.id}`, {
          schedules: [
            { slug: "minutely", active: false },
            { slug: "daily", schedule: { cron: "0 0 * * *" } },
          ],
        })
      ).status,
    ).toBe(204);
    let schedules = bySlug((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body);
    expect(Object.keys(schedules).sort()).toEqual(["daily", "hourly", "minutely"]);
    expect(schedules.minutely).toMatchObject({ id: before.minutely?.id, active: false, parameters: {}, schedule: { interval: 60 } });
    expect(schedules.hourly).toMatchObject({ id: before.hourly?.id, active: true });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ slug: "every-minute", replaces: "minutely" }] })).status).toBe(204);
    schedules = bySlug((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body);
    expect(Object.keys(schedules).sort()).toEqual(["daily", "every-minute", "hourly"]);
    expect(schedules["every-minute"]?.id).toBe(before.minutely?.id);
    const noSlug = await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ schedule: { interval: 5 } }] });
    expect(noSlug.status).toBe(422);
    expect(noSlug.body.detail[0].msg).toBe("Please provide a slug for each schedule in your request to ensure schedules are updated correctly.");
    const incomplete = await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ slug: "new-one", active: true }] });
    expect(incomplete.status).toBe(422);
    const collision = await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ slug: "daily", replaces: "hourly" }] });
    expect(collision.status).toBe(422);
    expect(Object.keys(bySlug((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body)).sort()).toEqual(["daily", "every-minute", "hourly"]);
  });

  it("replaces every schedule when existing ones have no slug, and removes them all with an empty list", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: 60 } }] });
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ schedule: { rrule: "FREQ=DAILY" }, active: null }] })).status).toBe(204);
    const [only] = (await t.server.request("GET", `/deployments/${d.id}/schedules`)).body;
    expect(only).toMatchObject({ active: true, schedule: { timezone: "UTC" } });
    expect(only.schedule.rrule).toContain("FREQ=DAILY");
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { description: "keeps schedules" })).status).toBe(204);
    expect((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body).toHaveLength(1);
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [] })).status).toBe(204);
    expect((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body).toEqual([]);
  });

  it("changes and removes the deployment's concurrency limit", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f });
    await t.server.request("PATCH", `/deployments/${d.id}`, { concurrency_limit: 3 });
    const limited = (await t.server.request("GET", `/deployments/${d.id}`)).body;
    expect(limited.global_concurrency_limit).toMatchObject({ limit: 3, name: `deployment:${d.id}` });
    await t.server.request("PATCH", `/deployments/${d.id}`, { concurrency_limit: null });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.global_concurrency_limit).toBeNull();
    expect(await t.server.db.concurrencyLimits.get(limited.global_concurrency_limit.id)).toBeNull();
    expect(await t.server.request("PATCH", `/deployments/${d.id}`, { global_concurrency_limit_id: UNKNOWN })).toMatchObject({
      status: 404,
      body: { detail: "Concurrency limit not found" },
    });
  });

  it("deletes a deployment (204) with its runs not yet started, then 404, publishing the deletion", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, concurrency_limit: 1 });
    const auto = await scheduledRun(t.server, f, d.id);
    const manual = await scheduledRun(t.server, f, d.id, { auto_scheduled: false });
    const running = await scheduledRun(t.server, f, d.id, { state: { type: "RUNNING" } });
    const events = recordEvents(t.server);
    expect((await t.server.request("DELETE", `/deployments/${d.id}`)).status).toBe(204);
    expect(await exists(t.server, [auto, manual, running])).toEqual([false, false, true]);
    expect(await t.server.db.concurrencyLimits.get(d.global_concurrency_limit.id)).toBeNull();
    expect(deploymentEvents(events).map((e) => e.event)).toEqual(["prefect.deployment.deleted"]);
    expect(await t.server.request("DELETE", `/deployments/${d.id}`)).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
    expect((await t.server.request("GET", `/deployments/${d.id}`)).status).toBe(404);
    expect(deploymentEvents(events)).toHaveLength(1);
  });

  it("bulk deletes the deployments matching the filter, up to the limit", async () => {
    const f = await flow(t.server);
    const a = await deploy(t.server, { name: "a", flow_id: f, tags: ["old"] });
    const b = await deploy(t.server, { name: "b", flow_id: f, tags: ["old"] });
    await deploy(t.server, { name: "c", flow_id: f });
    const events = recordEvents(t.server);
    const one = await t.server.request("POST", "/deployments/bulk_delete", { deployments: { tags: { all_: ["old"] } }, limit: 1 });
    expect(one.body).toEqual({ deleted: [a.id] });
    const rest = await t.server.request("POST", "/deployments/bulk_delete", { deployments: { tags: { all_: ["old"] } } });
    expect(rest.body).toEqual({ deleted: [b.id] });
    expect(deploymentEvents(events)).toHaveLength(2);
    expect((await t.server.request("POST", "/deployments/bulk_delete", { limit: 51 })).status).toBe(422);
    expect((await t.server.request("POST", "/deployments/count", {})).body).toBe(1);
  });
});

describeApi("deployments API: schedules", (t) => {
  it("creates (201), reads, updates (204) and deletes (204) a deployment's schedules", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f });
    const created = await t.server.request("POST", `/deployments/${d.id}/schedules`, [
      { schedule: { interval: 60, anchor_date: "2024-01-01T00:00:00Z" }, slug: "a", max_scheduled_runs: 5 },
      { schedule: { cron: "*/5 * * * *", timezone: "America/New_York" }, active: false, parameters: { x: 1 } },
    ]);
    expect(created.status).toBe(201);
    expect(created.body).toHaveLength(2);
    expect(created.body[0]).toMatchObject({ deployment_id: d.id, slug: "a", max_scheduled_runs: 5, active: true, schedule: { interval: 60, timezone: "UTC" } });
    expect(created.body[1]).toMatchObject({ active: false, parameters: { x: 1 }, schedule: { cron: "*/5 * * * *", timezone: "America/New_York", day_or: true } });
    const read = await t.server.request("GET", `/deployments/${d.id}/schedules`);
    expect(read.body.map((s: { id: string }) => s.id).sort()).toEqual(created.body.map((s: { id: string }) => s.id).sort());
    const id = created.body[0].id;
    expect((await t.server.request("PATCH", `/deployments/${d.id}/schedules/${id}`, { active: false, schedule: { interval: 120 } })).status).toBe(204);
    const updated = (await t.server.request("GET", `/deployments/${d.id}/schedules`)).body.find((s: { id: string }) => s.id === id);
    expect(updated).toMatchObject({ active: false, slug: "a", max_scheduled_runs: 5, schedule: { interval: 120 } });
    expect((await t.server.request("DELETE", `/deployments/${d.id}/schedules/${id}`)).status).toBe(204);
    expect((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body).toHaveLength(1);
    expect((await t.server.request("GET", `/deployments/${d.id}`)).body.schedules).toHaveLength(1);
  });

  it("refuses bad definitions: cron, timezone, rrule, interval (422), creating none", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f });
    const post = (schedule: unknown) => t.server.request("POST", `/deployments/${d.id}/schedules`, [{ schedule: { interval: 60 } }, { schedule }]);
    for (const schedule of [
      { cron: "61 * * * *" },
      { cron: "0 0 * * *", timezone: "Mars/Olympus" },
      { interval: 60, timezone: "Nowhere/Land" },
      { rrule: "FREQ=SOMETIMES" },
      { rrule: "FREQ=DAILY", timezone: "Atlantis/City" },
      { interval: -5 },
      { minutes: 5 },
    ]) {
      const response = await post(schedule);
      expect(response.status, JSON.stringify(schedule)).toBe(422);
      expect(response.body.detail[0].loc.slice(0, 3), JSON.stringify(schedule)).toEqual(["body", 1, "schedule"]);
    }
    expect((await t.server.request("PATCH", `/deployments/${d.id}/schedules/${UNKNOWN}`, { schedule: { cron: "bad" } })).status).toBe(422);
    expect((await t.server.request("GET", `/deployments/${d.id}/schedules`)).body).toEqual([]);
  });

  it("answers 409 for a slug the deployment already uses, 404 for unknown deployments and schedules", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: 60 }, slug: "a" }] });
    const [existing] = d.schedules;
    expect(await t.server.request("POST", `/deployments/${d.id}/schedules`, [{ schedule: { interval: 5 }, slug: "a" }])).toMatchObject({
      status: 409,
      body: { detail: "Schedule slugs must be unique within a deployment." },
    });
    const second = (await t.server.request("POST", `/deployments/${d.id}/schedules`, [{ schedule: { interval: 5 }, slug: "b" }])).body[0];
    expect((await t.server.request("PATCH", `/deployments/${d.id}/schedules/${second.id}`, { slug: "a" })).status).toBe(409);
    for (const [method, path] of [
      ["GET", `/deployments/${UNKNOWN}/schedules`],
      ["POST", `/deployments/${UNKNOWN}/schedules`],
      ["PATCH", `/deployments/${UNKNOWN}/schedules/${existing.id}`],
      ["DELETE", `/deployments/${UNKNOWN}/schedules/${existing.id}`],
    ] as const) {
      const body = method === "POST" ? [{ schedule: { interval: 5 } }] : method === "PATCH" ? { active: false } : undefined;
      expect(await t.server.request(method, path, body)).toMatchObject({ status: 404, body: { detail: "Deployment not found." } });
    }
    expect(await t.server.request("PATCH", `/deployments/${d.id}/schedules/${UNKNOWN}`, { active: false })).toMatchObject({ status: 404, body: { detail: "Schedule not found." } });
    expect(await t.server.request("DELETE", `/deployments/${d.id}/schedules/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Schedule not found." } });
  });

  it("deletes auto-scheduled runs when a schedule changes (future ones) or goes (all not yet started)", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: 60 }, slug: "a" }] });
    const [schedule] = d.schedules;
    const future = await scheduledRun(t.server, f, d.id);
    const due = await scheduledRun(t.server, f, d.id, { next_scheduled_start_time: addSeconds(now(), -60) });
    const manual = await scheduledRun(t.server, f, d.id, { auto_scheduled: false });
    expect((await t.server.request("PATCH", `/deployments/${d.id}/schedules/${schedule.id}`, { active: false })).status).toBe(204);
    expect(await exists(t.server, [future, due, manual])).toEqual([false, true, true]);
    const future2 = await scheduledRun(t.server, f, d.id);
    expect((await t.server.request("DELETE", `/deployments/${d.id}/schedules/${schedule.id}`)).status).toBe(204);
    expect(await exists(t.server, [future2, due, manual])).toEqual([false, false, true]);
  });
});

describeApi("deployments API: work queue check", (t) => {
  it("lists the legacy queues whose filter picks up the deployment; 404 for an unknown one", async () => {
    const f = await flow(t.server);
    const pool = await t.server.db.workPools.create({ name: "default-agent-pool", type: "prefect-agent" });
    const d = await deploy(t.server, { name: "d", flow_id: f, tags: ["a", "b", "c"] });
    await t.server.db.workQueues.create(pool.id, { name: "First", filter: { tags: ["a"], deployment_ids: null } });
    await t.server.db.workQueues.create(pool.id, { name: "Second", filter: { tags: ["b"], deployment_ids: [d.id] } });
    await t.server.db.workQueues.create(pool.id, { name: "Third", filter: { tags: ["z"], deployment_ids: null } });
    await t.server.db.workQueues.create(pool.id, { name: "Elsewhere", filter: { tags: null, deployment_ids: [UNKNOWN] } });
    const response = await t.server.request("GET", `/deployments/${d.id}/work_queue_check`);
    expect(response.status).toBe(200);
    expect(response.body.map((q: { name: string }) => q.name).sort()).toEqual(["First", "Second"]);
    expect(await t.server.request("GET", `/deployments/${UNKNOWN}/work_queue_check`)).toMatchObject({ status: 404, body: { detail: "Deployment not found" } });
  });
});
