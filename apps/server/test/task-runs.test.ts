import { randomUUID } from "node:crypto";
import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

async function seededFlowRun(server: TestServer, name = "etl") {
  const flow = await server.request("POST", "/flows/", { name });
  const { row } = await server.db.flowRuns.create({ flow_id: flow.body.id, state: { type: "RUNNING" } });
  return row;
}

/** A task run as the database holds it, with a first state (for the read paths). */
async function seededTask(server: TestServer, flowRunId: string | null, fields: Record<string, unknown> = {}) {
  const { row } = await server.db.taskRuns.create({ flow_run_id: flowRunId, task_key: "t", dynamic_key: randomUUID(), state: { type: "COMPLETED" }, ...fields });
  return row;
}

describeApi("task runs API: reads and writes without orchestration", (t) => {
  it("reads a task run with Prefect's response fields, 404 'Task not found' for an unknown id", async () => {
    const run = await seededFlowRun(t.server);
    const task = await seededTask(t.server, run.id, { name: "extract", tags: ["x"] });
    const read = await t.server.request("GET", `/task_runs/${task.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: task.id, name: "extract", flow_run_id: run.id, tags: ["x"], state_type: "COMPLETED", state: { type: "COMPLETED" } });
    expect(read.body.empirical_policy).toMatchObject({ max_retries: 0, retry_delay_seconds: 0, retries: null, retry_jitter_factor: null });
    expect(await t.server.request("GET", `/task_runs/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Task not found" } });
    expect((await t.server.request("GET", "/task_runs/x")).status).toBe(422);
  });

  it("renames (204): a missing name changes nothing, a null one draws a new name; unknown fields are refused", async () => {
    const task = await seededTask(t.server, null, { name: "before" });
    expect((await t.server.request("PATCH", `/task_runs/${task.id}`, {})).status).toBe(204);
    expect((await t.server.request("GET", `/task_runs/${task.id}`)).body.name).toBe("before");
    expect((await t.server.request("PATCH", `/task_runs/${task.id}`, { name: "after" })).status).toBe(204);
    expect((await t.server.request("GET", `/task_runs/${task.id}`)).body.name).toBe("after");
    await t.server.request("PATCH", `/task_runs/${task.id}`, { name: null });
    expect((await t.server.request("GET", `/task_runs/${task.id}`)).body.name).toMatch(/^[a-z]+-[a-z]+$/);
    const extra = await t.server.request("PATCH", `/task_runs/${task.id}`, { name: "x", tags: ["no"] });
    expect(extra.status).toBe(422);
    expect(extra.body.detail[0].loc).toEqual(["body", "tags"]);
    expect(await t.server.request("PATCH", `/task_runs/${UNKNOWN}`, { name: "x" })).toMatchObject({ status: 404, body: { detail: "Task not found" } });
  });

  it("deletes a task run with its states and logs (204), then 404", async () => {
    const run = await seededFlowRun(t.server);
    const task = await seededTask(t.server, run.id);
    const kept = await seededTask(t.server, run.id);
    const ts = now();
    await t.server.request("POST", "/logs/", [
      { name: "l", level: 20, message: "gone", timestamp: ts, flow_run_id: run.id, task_run_id: task.id },
      { name: "l", level: 20, message: "kept", timestamp: ts, flow_run_id: run.id, task_run_id: kept.id },
    ]);
    const stateId = task.state?.id;
    expect((await t.server.request("DELETE", `/task_runs/${task.id}`)).status).toBe(204);
    expect((await t.server.request("GET", `/task_runs/${task.id}`)).status).toBe(404);
    expect((await t.server.request("GET", `/task_run_states/${stateId}`)).status).toBe(404);
    expect((await t.server.request("POST", "/logs/filter", {})).body.map((l: { message: string }) => l.message)).toEqual(["kept"]);
    expect(await t.server.request("DELETE", `/task_runs/${task.id}`)).toMatchObject({ status: 404, body: { detail: "Task not found" } });
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).status).toBe(200);
  });

  it("filters, counts and paginates with criteria on the task runs, their flow runs and flows", async () => {
    const a = await seededFlowRun(t.server, "a");
    const b = await seededFlowRun(t.server, "b");
    const t1 = await seededTask(t.server, a.id, { name: "one", tags: ["x"] });
    const t2 = await seededTask(t.server, a.id, { name: "two", state: { type: "FAILED" } });
    const t3 = await seededTask(t.server, b.id, { name: "three" });
    const all = await t.server.request("POST", "/task_runs/filter", {});
    expect(all.body.map((r: { id: string }) => r.id)).toEqual([t1.id, t2.id, t3.id].sort().reverse());
    const sorted = await t.server.request("POST", "/task_runs/filter", { sort: "NAME_ASC", offset: 1, limit: 1 });
    expect(sorted.body.map((r: { name: string }) => r.name)).toEqual(["three"]);
    const ofFlow = await t.server.request("POST", "/task_runs/filter", { flows: { name: { any_: ["b"] } } });
    expect(ofFlow.body.map((r: { id: string }) => r.id)).toEqual([t3.id]);
    const failed = await t.server.request("POST", "/task_runs/filter", { flow_runs: { id: { any_: [a.id] } }, task_runs: { state: { type: { any_: ["FAILED"] } } } });
    expect(failed.body.map((r: { id: string }) => r.id)).toEqual([t2.id]);
    expect((await t.server.request("POST", "/task_runs/count", { task_runs: { tags: { all_: ["x"] } } })).body).toBe(1);
    expect((await t.server.request("POST", "/task_runs/count", null)).body).toBe(3);
    const page = await t.server.request("POST", "/task_runs/paginate", { sort: "NAME_DESC", limit: 2, page: 1 });
    expect(page.body).toMatchObject({ count: 3, limit: 2, pages: 2, page: 1 });
    expect(page.body.results.map((r: { name: string }) => r.name)).toEqual(["two", "three"]);
    expect((await t.server.request("POST", "/task_runs/filter", { limit: 500 })).status).toBe(422);
    expect((await t.server.request("POST", "/task_runs/paginate", { page: 0 })).status).toBe(422);
    const byDeployment = await t.server.request("POST", "/task_runs/count", { deployments: { id: { any_: [UNKNOWN] } } });
    expect(byDeployment.body).toBe(0);
  });

  it("answers the task run history", async () => {
    const run = await seededFlowRun(t.server);
    const start = "2030-06-01T00:00:00.000000Z";
    await seededTask(t.server, run.id, { expected_start_time: addSeconds(start, 5) });
    await seededTask(t.server, run.id, { expected_start_time: addSeconds(start, 6) });
    const history = await t.server.request("POST", "/task_runs/history", { history_start: start, history_end: addSeconds(start, 3600), history_interval_seconds: 1800 });
    expect(history.status).toBe(200);
    expect(history.body).toHaveLength(2);
    expect(history.body[0].states).toMatchObject([{ state_type: "COMPLETED", count_runs: 2 }]);
    expect(history.body[1].states).toEqual([]);
    expect((await t.server.request("POST", "/task_runs/history", { history_start: start, history_end: start, history_interval_seconds: 0 })).status).toBe(422);
  });

  it("reads task run states by id and by run (404 in Prefect's words)", async () => {
    const task = await seededTask(t.server, null, { state: { type: "PENDING" } });
    await t.server.db.taskRuns.setState(task.id, { type: "RUNNING" });
    const states = await t.server.request("GET", `/task_run_states/?task_run_id=${task.id}`);
    expect(states.body.map((s: { type: string }) => s.type)).toEqual(["PENDING", "RUNNING"]);
    expect((await t.server.request("GET", `/task_run_states/${states.body[0].id}`)).body).toEqual(states.body[0]);
    expect(await t.server.request("GET", `/task_run_states/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Flow run state not found" } });
    expect((await t.server.request("GET", "/task_run_states/?task_run_id=nope")).status).toBe(422);
  });
});

describeApi("task runs API: creation and state changes through orchestration", (t) => {
  const flowRun = async (labels: Record<string, string> = {}) => {
    const flow = await t.server.request("POST", "/flows/", { name: "etl" });
    const run = await t.server.request("POST", "/flow_runs/", { flow_id: flow.body.id, labels });
    await t.server.request("POST", `/flow_runs/${run.body.id}/set_state`, { state: { type: "RUNNING" } });
    return run.body as { id: string; labels: Record<string, string> };
  };
  const create = (body: Record<string, unknown>) => t.server.request("POST", "/task_runs/", body);

  it("creates a task run PENDING by default (201), then returns it (200) for the same flow run, task key and dynamic key", async () => {
    const run = await flowRun({ team: "data" });
    const created = await create({ flow_run_id: run.id, task_key: "extract", dynamic_key: "0", labels: { mine: "yes" }, tags: ["t"] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      flow_run_id: run.id,
      task_key: "extract",
      dynamic_key: "0",
      tags: ["t"],
      state_type: "PENDING",
      state: { type: "PENDING", name: "Pending", state_details: { task_run_id: created.body.id } },
      labels: { team: "data", "prefect.flow.id": run.labels["prefect.flow.id"], "prefect.flow-run.id": run.id, mine: "yes" },
    });
    expect(created.body.name).toMatch(/^[a-z]+-[a-z]+$/);
    const again = await create({ flow_run_id: run.id, task_key: "extract", dynamic_key: "0", name: "other" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: created.body.id, name: created.body.name });
    expect((await t.server.request("GET", `/task_run_states/?task_run_id=${created.body.id}`)).body).toHaveLength(1);
    expect((await create({ flow_run_id: run.id, task_key: "extract", dynamic_key: "1" })).status).toBe(201);
  });

  it("upserts task runs without a flow run on task key and dynamic key, and keeps a given id", async () => {
    const id = randomUUID();
    const first = await create({ id, task_key: "background", dynamic_key: "a", state: { type: "SCHEDULED" } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ id, flow_run_id: null, labels: {}, state_type: "SCHEDULED" });
    const again = await create({ task_key: "background", dynamic_key: "a" });
    expect(again).toMatchObject({ status: 200, body: { id } });
    expect((await create({ task_key: "background", dynamic_key: "b" })).status).toBe(201);
  });

  it("answers bad input with 422 or 409 as Prefect, writing nothing", async () => {
    const run = await flowRun();
    expect((await create({ flow_run_id: run.id, task_key: "x" })).status).toBe(422);
    const unknownRun = await create({ flow_run_id: UNKNOWN, task_key: "x", dynamic_key: "0" });
    expect(unknownRun).toMatchObject({ status: 409, body: { detail: expect.stringContaining("Data integrity conflict") } });
    const longKey = await create({ flow_run_id: run.id, task_key: "x", dynamic_key: "0", cache_key: "k".repeat(2001) });
    expect(longKey.status).toBe(422);
    expect(longKey.body.detail[0]).toMatchObject({ loc: ["body", "cache_key"], msg: "Value error, Cache key exceeded maximum allowed length of 2000 characters." });
    const delays = await create({ flow_run_id: run.id, task_key: "x", dynamic_key: "0", empirical_policy: { retry_delay: Array(51).fill(1) } });
    expect(delays.status).toBe(422);
    expect(delays.body.detail[0].loc).toEqual(["body", "empirical_policy", "retry_delay"]);
    const badInput = await create({ flow_run_id: run.id, task_key: "x", dynamic_key: "0", task_inputs: { a: [{ input_type: "task_run" }] } });
    expect(badInput.status).toBe(422);
    const existing = await create({ flow_run_id: run.id, task_key: "taken", dynamic_key: "0" });
    const clash = await create({ id: existing.body.id, flow_run_id: run.id, task_key: "other", dynamic_key: "0" });
    expect(clash.status).toBe(409);
    expect((await t.server.request("POST", "/task_runs/count", {})).body).toBe(1);
  });

  it("sets task run states through the task policy: 201 when written, ABORT when the flow run is not running", async () => {
    const run = await flowRun();
    const task = (await create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0" })).body;
    const running = await t.server.request("POST", `/task_runs/${task.id}/set_state`, { state: { type: "RUNNING" } });
    expect(running.status).toBe(201);
    expect(running.body).toMatchObject({ status: "ACCEPT", state: { type: "RUNNING" } });
    const completed = await t.server.request("POST", `/task_runs/${task.id}/set_state`, { state: { type: "COMPLETED" }, force: false });
    expect(completed.status).toBe(201);
    const read = (await t.server.request("GET", `/task_runs/${task.id}`)).body;
    expect(read).toMatchObject({ state_type: "COMPLETED", run_count: 1 });
    expect(read.end_time).not.toBeNull();

    await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "COMPLETED" } });
    const late = (await create({ flow_run_id: run.id, task_key: "t", dynamic_key: "1" })).body;
    const refused = await t.server.request("POST", `/task_runs/${late.id}/set_state`, { state: { type: "RUNNING" } });
    expect(refused.status).toBe(200);
    expect(refused.body).toMatchObject({ status: "ABORT", details: { type: "abort_details" } });
    expect((await t.server.request("GET", `/task_runs/${late.id}`)).body.state_type).toBe("PENDING");
    expect(await t.server.request("POST", `/task_runs/${UNKNOWN}/set_state`, { state: { type: "RUNNING" } })).toMatchObject({ status: 404 });
    expect((await t.server.request("POST", `/task_runs/${task.id}/set_state`, { state: { type: "NOPE" } })).status).toBe(422);
  });
});
