/**
 * Prefect's `/ui/*` routes (not in its OpenAPI document: their shapes are checked here), on both backends.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, type StateType } from "@prefect/db";
import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read freely in assertions
async function post(server: TestServer, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.url}/api${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

async function flow(server: TestServer, name: string): Promise<string> {
  return (await server.db.flows.create({ name })).row.id;
}

async function flowRun(server: TestServer, flowId: string, fields: Record<string, unknown> = {}) {
  return (await server.db.flowRuns.create({ flow_id: flowId, ...fields })).row;
}

async function taskRun(server: TestServer, flowRunId: string, type: StateType, fields: Record<string, unknown> = {}) {
  return (await server.db.taskRuns.create({ flow_run_id: flowRunId, task_key: "t", dynamic_key: randomUUID(), state: { type }, ...fields })).row;
}

describeApi("UI routes: flow runs and flows", (t) => {
  it("answers the runs scatter plot with each run's state, time, duration and lateness", async () => {
    const flowId = await flow(t.server, "etl");
    const start = addSeconds(now(), -600);
    const done = await flowRun(t.server, flowId, {
      state: { type: "COMPLETED" },
      expected_start_time: addSeconds(start, -30),
      start_time: start,
      total_run_time: 12.5,
    });
    const later = await flowRun(t.server, flowId, { state: { type: "SCHEDULED" }, expected_start_time: addSeconds(now(), 3600) });
    const history = await post(t.server, "/ui/flow_runs/history", { sort: "EXPECTED_START_TIME_ASC", flows: { id: { any_: [flowId] } } });
    expect(history.status).toBe(200);
    expect(history.body).toEqual([
      { id: done.id, state_type: "COMPLETED", timestamp: start, duration: 12.5, lateness: 30 },
      { id: later.id, state_type: "SCHEDULED", timestamp: later.expected_start_time, duration: 0, lateness: 0 },
    ]);
    // Prefect's defaults: newest expected start first, at most 1000.
    expect((await post(t.server, "/ui/flow_runs/history", {})).body.map((r: { id: string }) => r.id)).toEqual([later.id, done.id]);
    expect((await post(t.server, "/ui/flow_runs/history", { limit: 1, offset: 1 })).body.map((r: { id: string }) => r.id)).toEqual([done.id]);
    expect((await post(t.server, "/ui/flow_runs/history", { flow_runs: { state: { type: { any_: ["SCHEDULED"] } } } })).body).toHaveLength(1);
    const tooMany = await post(t.server, "/ui/flow_runs/history", { limit: 1001 });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.detail[0]).toMatchObject({ loc: ["body", "limit"], msg: "Input should be less than or equal to 1000" });
    expect((await post(t.server, "/ui/flow_runs/history", { offset: -1 })).status).toBe(422);
    expect((await post(t.server, "/ui/flow_runs/history", { sort: "SIDEWAYS" })).status).toBe(422);
  });

  it("counts each flow run's task runs, leaving out those that stand for subflow runs", async () => {
    const flowId = await flow(t.server, "parent");
    const parent = await flowRun(t.server, flowId, { state: { type: "RUNNING" } });
    const other = await flowRun(t.server, flowId, { state: { type: "RUNNING" } });
    await taskRun(t.server, parent.id, "COMPLETED");
    await taskRun(t.server, parent.id, "FAILED");
    const wrapper = await taskRun(t.server, parent.id, "RUNNING");
    await flowRun(t.server, flowId, { parent_task_run_id: wrapper.id, state: { type: "RUNNING" } });
    await taskRun(t.server, other.id, "COMPLETED");
    const counts = await post(t.server, "/ui/flow_runs/count-task-runs", { flow_run_ids: [parent.id, other.id, UNKNOWN] });
    expect(counts).toEqual({ status: 200, body: { [parent.id]: 2, [other.id]: 1, [UNKNOWN]: 0 } });
    const missing = await post(t.server, "/ui/flow_runs/count-task-runs", {});
    expect(missing.status).toBe(422);
    expect(missing.body.detail[0]).toMatchObject({ loc: ["body", "flow_run_ids"], msg: "Field required" });
    const tooMany = await post(t.server, "/ui/flow_runs/count-task-runs", { flow_run_ids: Array.from({ length: 201 }, () => randomUUID()) });
    expect(tooMany.status).toBe(422);
    expect((await post(t.server, "/ui/flow_runs/count-task-runs", { flow_run_ids: ["nope"] })).status).toBe(422);
  });

  it("counts deployments per flow and finds each flow's next scheduled run", async () => {
    const withRuns = await flow(t.server, "with-runs");
    const without = await flow(t.server, "without");
    for (const name of ["a", "b"]) await t.server.db.deployments.create({ name, flow_id: withRuns });
    const soon = addSeconds(now(), 60);
    const next = await flowRun(t.server, withRuns, { name: "next-one", state: { type: "SCHEDULED" }, next_scheduled_start_time: soon });
    await flowRun(t.server, withRuns, { state: { type: "SCHEDULED" }, next_scheduled_start_time: addSeconds(now(), 600) });
    await flowRun(t.server, without, { state: { type: "COMPLETED" } });
    expect(await post(t.server, "/ui/flows/count-deployments", { flow_ids: [withRuns, without] })).toEqual({ status: 200, body: { [withRuns]: 2, [without]: 0 } });
    const runs = await post(t.server, "/ui/flows/next-runs", { flow_ids: [withRuns, without, UNKNOWN] });
    expect(runs.status).toBe(200);
    expect(runs.body).toEqual({
      [withRuns]: { id: next.id, flow_id: withRuns, name: "next-one", state_name: "Scheduled", state_type: "SCHEDULED", next_scheduled_start_time: soon },
      [without]: null,
      [UNKNOWN]: null,
    });
    expect((await post(t.server, "/ui/flows/next-runs", { flow_ids: "x" })).status).toBe(422);
    expect((await post(t.server, "/ui/flows/count-deployments", null)).status).toBe(422);
  });
});

describeApi("UI routes: task runs", (t) => {
  it("counts task runs by state type, every type present, with the usual filters", async () => {
    const flowId = await flow(t.server, "counted");
    const run = await flowRun(t.server, flowId, { state: { type: "RUNNING" } });
    const elsewhere = await flowRun(t.server, flowId, { state: { type: "RUNNING" } });
    for (const type of ["COMPLETED", "COMPLETED", "FAILED", "RUNNING"] as const) await taskRun(t.server, run.id, type);
    await taskRun(t.server, elsewhere.id, "CRASHED");
    const zero = { SCHEDULED: 0, PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0, CRASHED: 0, PAUSED: 0, CANCELLING: 0 };
    const forRun = await post(t.server, "/ui/task_runs/count", { task_runs: { flow_run_id: { any_: [run.id] } } });
    expect(forRun).toEqual({ status: 200, body: { ...zero, COMPLETED: 2, FAILED: 1, RUNNING: 1 } });
    expect((await post(t.server, "/ui/task_runs/count", {})).body).toEqual({ ...zero, COMPLETED: 2, FAILED: 1, RUNNING: 1, CRASHED: 1 });
    const narrowed = await post(t.server, "/ui/task_runs/count", { task_runs: { state: { type: { any_: ["FAILED", "CRASHED"] } } } });
    expect(narrowed.body).toEqual({ ...zero, FAILED: 1, CRASHED: 1 });
    // Criteria combined with `or_`: in this flow run, or crashed.
    const either = await post(t.server, "/ui/task_runs/count", {
      task_runs: { operator: "or_", flow_run_id: { any_: [run.id] }, state: { type: { any_: ["CRASHED"] } } },
    });
    expect(either.body).toEqual({ ...zero, COMPLETED: 2, FAILED: 1, RUNNING: 1, CRASHED: 1 });
    expect((await post(t.server, "/ui/task_runs/count", { flows: { name: { any_: ["other"] } } })).body).toEqual(zero);
    expect((await post(t.server, "/ui/task_runs/count", { task_runs: { nonsense: true } })).status).toBe(422);
  });

  it("buckets the dashboard's terminal task runs into 20 windows of completed and failed", async () => {
    const flowId = await flow(t.server, "dashboard");
    const run = await flowRun(t.server, flowId, { state: { type: "RUNNING" } });
    const windowStart = addSeconds(now(), -3600);
    const minute = windowStart.slice(0, 16);
    const startedAt = (seconds: number) => addSeconds(`${minute}:00.000000Z`, seconds);
    await taskRun(t.server, run.id, "COMPLETED", { start_time: startedAt(10) });
    await taskRun(t.server, run.id, "CRASHED", { start_time: startedAt(20) });
    await taskRun(t.server, run.id, "FAILED", { start_time: startedAt(1900) });
    await taskRun(t.server, run.id, "RUNNING", { start_time: startedAt(30) });
    await taskRun(t.server, run.id, "COMPLETED", { start_time: addSeconds(windowStart, -7200) });
    const counts = await post(t.server, "/ui/task_runs/dashboard/counts", { task_runs: { start_time: { after_: windowStart } } });
    expect(counts.status).toBe(200);
    expect(counts.body).toHaveLength(20);
    expect(counts.body[0]).toEqual({ completed: 1, failed: 1 });
    const total = counts.body.reduce((sum: { completed: number; failed: number }, b: { completed: number; failed: number }) => ({ completed: sum.completed + b.completed, failed: sum.failed + b.failed }), { completed: 0, failed: 0 });
    expect(total).toEqual({ completed: 1, failed: 2 });
    const missing = await post(t.server, "/ui/task_runs/dashboard/counts", { task_runs: {} });
    expect(missing).toEqual({ status: 422, body: { detail: "task_runs.start_time.after_ is required" } });
    expect((await post(t.server, "/ui/task_runs/dashboard/counts", {})).status).toBe(422);
  });
});

describeApi("UI routes: schema values validation", (t) => {
  const schema = {
    type: "object",
    properties: {
      name: { type: "string", title: "Name" },
      count: { type: "integer", title: "Count", default: 1 },
      items: { type: "array", items: { type: "integer" } },
    },
    required: ["name"],
  };

  it("answers valid values with no errors", async () => {
    expect(await post(t.server, "/ui/schemas/validate", { schema, values: { name: "a", count: 2, items: [1, 2] } })).toEqual({
      status: 200,
      body: { errors: [], valid: true },
    });
  });

  it("reports every problem nested by property and index, as Prefect's build_error_obj", async () => {
    const result = await post(t.server, "/ui/schemas/validate", { schema, values: { count: "two", items: [1, "x"] } });
    expect(result.status).toBe(200);
    expect(result.body.valid).toBe(false);
    expect(result.body.errors).toEqual(
      expect.arrayContaining([
        { property: "name", errors: ["'name' is a required property"] },
        { property: "count", errors: ["'two' is not of type 'integer'"] },
        { property: "items", errors: [{ index: 1, errors: ["'x' is not of type 'integer'"] }] },
      ]),
    );
    expect(result.body.errors).toHaveLength(3);
  });

  it("hydrates workspace variables and JSON first; a missing variable or bad JSON is the field's only problem", async () => {
    await t.server.db.variables.create({ name: "who", value: "world" });
    const hydrated = await post(t.server, "/ui/schemas/validate", {
      schema,
      values: { name: { __prefect_kind: "workspace_variable", variable_name: "who" }, items: { __prefect_kind: "json", value: "[1, 2]" } },
    });
    expect(hydrated.body).toEqual({ errors: [], valid: true });
    const templated = await post(t.server, "/ui/schemas/validate", { schema, values: { name: { __prefect_kind: "jinja", template: "{{ flow_run.name }}" } } });
    expect(templated.body).toEqual({ errors: [], valid: true });
    const broken = await post(t.server, "/ui/schemas/validate", {
      schema,
      values: { name: { __prefect_kind: "workspace_variable", variable_name: "nobody" }, items: { __prefect_kind: "json", value: "[1," } },
    });
    expect(broken.body.valid).toBe(false);
    expect(broken.body.errors).toContainEqual({ property: "name", errors: ["Variable 'nobody' not found in workspace."] });
    const items = broken.body.errors.find((e: { property: string }) => e.property === "items");
    expect(items.errors).toHaveLength(1);
    expect(items.errors[0]).toMatch(/^Invalid JSON: /);
  });

  it("refuses an invalid schema or a missing part with 422", async () => {
    const invalid = await post(t.server, "/ui/schemas/validate", { schema: { type: "object", properties: { a: { type: "no-such-type" } } }, values: {} });
    expect(invalid.status).toBe(422);
    expect(invalid.body.detail).toMatch(/^Invalid schema: /);
    const circular = await post(t.server, "/ui/schemas/validate", {
      schema: { type: "object", properties: { a: { $ref: "#/definitions/A" } }, definitions: { A: { $ref: "#/definitions/B" }, B: { $ref: "#/definitions/A" } } },
      values: { a: 1 },
    });
    expect(circular.status).toBe(422);
    const missing = await post(t.server, "/ui/schemas/validate", { schema });
    expect(missing.status).toBe(422);
    expect(missing.body.detail[0]).toMatchObject({ loc: ["body", "values"], msg: "Field required" });
    expect((await post(t.server, "/ui/schemas/validate", { schema: [], values: {} })).status).toBe(422);
  });
});
