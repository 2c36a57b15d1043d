import { randomUUID } from "node:crypto";
import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

async function flow(server: TestServer, name = "etl", labels: Record<string, string> = {}) {
  const response = await server.request("POST", "/flows/", { name, labels });
  return response.body.id as string;
}

/** A flow run as the database holds it, with a first state (for the read paths). */
async function seededRun(server: TestServer, flowId: string, fields: Record<string, unknown> = {}) {
  const { row } = await server.db.flowRuns.create({ flow_id: flowId, state: { type: "PENDING" }, ...fields });
  return row;
}

async function seededTask(server: TestServer, flowRunId: string | null, fields: Record<string, unknown> = {}) {
  const { row } = await server.db.taskRuns.create({ flow_run_id: flowRunId, task_key: "t", dynamic_key: randomUUID(), state: { type: "COMPLETED" }, ...fields });
  return row;
}

describeApi("flow runs API: reads and writes without orchestration", (t) => {
  it("reads a run with Prefect's response fields, 404 for an unknown id, 422 for a malformed one", async () => {
    const run = await seededRun(t.server, await flow(t.server), { name: "r1", tags: ["x"] });
    const read = await t.server.request("GET", `/flow_runs/${run.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: run.id, name: "r1", tags: ["x"], state_type: "PENDING", state: { type: "PENDING", name: "Pending" } });
    expect(read.body.empirical_policy).toMatchObject({ max_retries: 0, retry_delay_seconds: 0, pause_keys: [], resuming: false });
    expect(await t.server.request("GET", `/flow_runs/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });
    const malformed = await t.server.request("GET", "/flow_runs/nope");
    expect(malformed.status).toBe(422);
    expect(malformed.body.detail[0].loc).toEqual(["path", "id"]);
  });

  it("updates only the fields given (204), draws a new name for a null one, and refuses unknown fields", async () => {
    const run = await seededRun(t.server, await flow(t.server), { name: "before", tags: ["a"], parameters: { x: 1 } });
    const patched = await t.server.request("PATCH", `/flow_runs/${run.id}`, { tags: ["b"], empirical_policy: { max_retries: 2 } });
    expect(patched.status).toBe(204);
    const after = (await t.server.request("GET", `/flow_runs/${run.id}`)).body;
    expect(after).toMatchObject({ name: "before", tags: ["b"], parameters: { x: 1 } });
    // Prefect fills the deprecated max_retries into retries.
    expect(after.empirical_policy).toMatchObject({ max_retries: 2, retries: 2 });
    await t.server.request("PATCH", `/flow_runs/${run.id}`, { name: null });
    const renamed = (await t.server.request("GET", `/flow_runs/${run.id}`)).body.name;
    expect(renamed).toMatch(/^[a-z]+-[a-z]+$/);
    expect(renamed).not.toBe("before");
    const extra = await t.server.request("PATCH", `/flow_runs/${run.id}`, { tags: ["c"], bogus: 1 });
    expect(extra.status).toBe(422);
    expect(extra.body.detail.map((d: { loc: unknown[] }) => d.loc)).toContainEqual(["body", "bogus"]);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body.tags).toEqual(["b"]);
    expect(await t.server.request("PATCH", `/flow_runs/${UNKNOWN}`, { tags: [] })).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });
  });

  it("refuses job variables on a run that is not SCHEDULED (400, as Prefect)", async () => {
    const run = await seededRun(t.server, await flow(t.server));
    const refused = await t.server.request("PATCH", `/flow_runs/${run.id}`, { job_variables: { image: "x" } });
    expect(refused).toMatchObject({ status: 400, body: { detail: "Job variables for a flow run in state PENDING cannot be updated" } });
    const scheduled = await seededRun(t.server, await flow(t.server, "other"), { state: { type: "SCHEDULED" } });
    const noDeployment = await t.server.request("PATCH", `/flow_runs/${scheduled.id}`, { job_variables: { image: "x" } });
    expect(noDeployment).toMatchObject({ status: 400, body: { detail: "A deployment for the flow run could not be found" } });
  });

  it("checks new job variables of a SCHEDULED deployment run against its work pool's variables schema", async () => {
    const pool = await t.server.db.workPools.create({
      name: "k8s",
      type: "kubernetes",
      base_job_template: {
        job_configuration: { image: "{{ image }}", cpu: "{{ cpu }}" },
        variables: { type: "object", properties: { image: { type: "string", default: "python" }, cpu: { type: "integer" } }, required: ["cpu"] },
      },
    });
    const f = await flow(t.server);
    const { row: deployment } = await t.server.db.deployments.create({ name: "d", flow_id: f, work_queue_id: pool.default_queue_id, job_variables: { image: "custom" } });
    const run = await seededRun(t.server, f, { deployment_id: deployment.id, state: { type: "SCHEDULED" } });
    const wrong = await t.server.request("PATCH", `/flow_runs/${run.id}`, { job_variables: { cpu: "lots" } });
    expect(wrong.status).toBe(422);
    expect(wrong.body.detail[0]).toMatchObject({
      loc: ["body", "job_variables"],
      msg: "Error updating flow run: Validation failed for field 'cpu'. Failure reason: 'lots' is not of type 'integer'",
    });
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body.job_variables).toEqual({});
    expect((await t.server.request("PATCH", `/flow_runs/${run.id}`, { job_variables: { cpu: 2 } })).status).toBe(204);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body.job_variables).toEqual({ cpu: 2 });
  });

  it("restricts reads to the runs of the deployments asked for", async () => {
    const f = await flow(t.server);
    const { row: deployment } = await t.server.db.deployments.create({ name: "nightly", flow_id: f, tags: ["prod"] });
    const ofDeployment = await seededRun(t.server, f, { deployment_id: deployment.id });
    await seededRun(t.server, f);
    const byName = await t.server.request("POST", "/flow_runs/filter", { deployments: { name: { any_: ["nightly"] } } });
    expect(byName.body.map((r: { id: string }) => r.id)).toEqual([ofDeployment.id]);
    expect((await t.server.request("POST", "/flow_runs/count", { deployments: { tags: { all_: ["prod"] } } })).body).toBe(1);
    expect((await t.server.request("POST", "/flow_runs/count", { deployments: { name: { any_: ["weekly"] } } })).body).toBe(0);
  });

  it("merges labels (204), 404 for an unknown run, 422 for a value that is not a label", async () => {
    const run = await seededRun(t.server, await flow(t.server), { labels: { keep: "1", change: "a" } });
    expect((await t.server.request("PATCH", `/flow_runs/${run.id}/labels`, { change: "b", added: 3 })).status).toBe(204);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body.labels).toEqual({ keep: "1", change: "b", added: 3 });
    const missing = await t.server.request("PATCH", `/flow_runs/${UNKNOWN}/labels`, { a: "b" });
    expect(missing).toMatchObject({ status: 404, body: { detail: `Flow run with id ${UNKNOWN} not found` } });
    const bad = await t.server.request("PATCH", `/flow_runs/${run.id}/labels`, { nested: { a: 1 } });
    expect(bad.status).toBe(422);
    expect(bad.body.detail[0].loc).toEqual(["body", "nested"]);
    expect((await t.server.request("PATCH", `/flow_runs/${run.id}/labels`)).status).toBe(422);
  });

  it("deletes a run with its task runs and logs (204), then 404", async () => {
    const run = await seededRun(t.server, await flow(t.server));
    const other = await seededRun(t.server, await flow(t.server, "other"));
    const task = await seededTask(t.server, run.id);
    const ts = now();
    await t.server.request("POST", "/logs/", [
      { name: "l", level: 20, message: "mine", timestamp: ts, flow_run_id: run.id },
      { name: "l", level: 20, message: "theirs", timestamp: ts, flow_run_id: other.id },
    ]);
    expect((await t.server.request("DELETE", `/flow_runs/${run.id}`)).status).toBe(204);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).status).toBe(404);
    expect((await t.server.request("GET", `/task_runs/${task.id}`)).status).toBe(404);
    const logs = await t.server.request("POST", "/logs/filter", {});
    expect(logs.body.map((l: { message: string }) => l.message)).toEqual(["theirs"]);
    expect(await t.server.request("DELETE", `/flow_runs/${run.id}`)).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });
  });

  it("filters, counts and paginates with Prefect's defaults and criteria on flows, task runs and work pools", async () => {
    const a = await flow(t.server, "a");
    const b = await flow(t.server, "b");
    const r1 = await seededRun(t.server, a, { name: "one", tags: ["x"] });
    const r2 = await seededRun(t.server, a, { name: "two", state: { type: "RUNNING" } });
    const r3 = await seededRun(t.server, b, { name: "three" });
    await seededTask(t.server, r3.id, { name: "special" });
    const all = await t.server.request("POST", "/flow_runs/filter", null);
    expect(all.body.map((r: { id: string }) => r.id)).toEqual([r1.id, r2.id, r3.id].sort().reverse());
    const byName = await t.server.request("POST", "/flow_runs/filter", { sort: "NAME_ASC", limit: 2, offset: 1 });
    expect(byName.body.map((r: { name: string }) => r.name)).toEqual(["three", "two"]);
    const ofFlow = await t.server.request("POST", "/flow_runs/filter", { flows: { name: { any_: ["a"] } }, flow_runs: { state: { type: { any_: ["RUNNING"] } } } });
    expect(ofFlow.body.map((r: { id: string }) => r.id)).toEqual([r2.id]);
    const withTask = await t.server.request("POST", "/flow_runs/filter", { task_runs: { name: { any_: ["special"] } } });
    expect(withTask.body.map((r: { id: string }) => r.id)).toEqual([r3.id]);
    expect((await t.server.request("POST", "/flow_runs/count", { flow_runs: { tags: { all_: ["x"] } } })).body).toBe(1);
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(3);
    const page = await t.server.request("POST", "/flow_runs/paginate", { sort: "NAME_DESC", limit: 2, page: 2 });
    expect(page.body).toMatchObject({ count: 3, limit: 2, pages: 2, page: 2 });
    expect(page.body.results.map((r: { name: string }) => r.name)).toEqual(["one"]);
    const tooMany = await t.server.request("POST", "/flow_runs/filter", { limit: 201 });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.detail[0].loc).toEqual(["body", "limit"]);
    expect((await t.server.request("POST", "/flow_runs/filter", { sort: "SIDEWAYS" })).status).toBe(422);
    expect((await t.server.request("POST", "/flow_runs/count", { flow_runs: { nope: 1 } })).status).toBe(422);
    // Runs in no pool match no pool filter.
    expect((await t.server.request("POST", "/flow_runs/count", { work_pools: { name: { any_: ["nowhere"] } } })).body).toBe(0);
  });

  it("restricts reads to the runs of the work pools and queues asked for", async () => {
    const pool = await t.server.db.workPools.create({ name: "pool" });
    const queue = await t.server.db.workQueues.create(pool.id, { name: "special" });
    const f = await flow(t.server);
    const inDefault = await seededRun(t.server, f, { work_queue_id: pool.default_queue_id, name: "default" });
    const inSpecial = await seededRun(t.server, f, { work_queue_id: queue.id, name: "special" });
    await seededRun(t.server, f, { name: "nowhere" });
    const ofPool = await t.server.request("POST", "/flow_runs/filter", { work_pools: { name: { any_: ["pool"] } }, sort: "NAME_ASC" });
    expect(ofPool.body.map((r: { id: string }) => r.id)).toEqual([inDefault.id, inSpecial.id]);
    expect(ofPool.body[0]).toMatchObject({ work_pool_name: "pool", work_pool_id: pool.id });
    const ofQueue = await t.server.request("POST", "/flow_runs/filter", { work_pool_queues: { name: { any_: ["special"] } } });
    expect(ofQueue.body.map((r: { id: string }) => r.id)).toEqual([inSpecial.id]);
    expect((await t.server.request("POST", "/flow_runs/count", { work_pools: { name: { any_: ["pool"] } }, work_pool_queues: { name: { any_: ["default"] } } })).body).toBe(1);
  });

  it("answers the run history per interval and state, and refuses an interval under a second", async () => {
    const f = await flow(t.server);
    const start = "2030-01-01T00:00:00.000000Z";
    await seededRun(t.server, f, { expected_start_time: addSeconds(start, 10), state: { type: "COMPLETED" } });
    await seededRun(t.server, f, { expected_start_time: addSeconds(start, 70), state: { type: "FAILED" } });
    const history = await t.server.request("POST", "/flow_runs/history", { history_start: start, history_end: addSeconds(start, 120), history_interval_seconds: 60 });
    expect(history.status).toBe(200);
    expect(history.body).toHaveLength(2);
    expect(history.body[0].states).toMatchObject([{ state_type: "COMPLETED", state_name: "Completed", count_runs: 1 }]);
    expect(history.body[1].states).toMatchObject([{ state_type: "FAILED", count_runs: 1 }]);
    const tooShort = await t.server.request("POST", "/flow_runs/history", { history_start: start, history_end: addSeconds(start, 120), history_interval_seconds: 0.5 });
    expect(tooShort.status).toBe(422);
    expect(tooShort.body.detail[0]).toMatchObject({ loc: ["body", "history_interval_seconds"], msg: "History interval must not be less than 1 second." });
    expect((await t.server.request("POST", "/flow_runs/history", { history_start: start })).status).toBe(422);
  });

  it("averages lateness: null without runs, else late starts and overdue runs over all matching runs", async () => {
    expect((await t.server.request("POST", "/flow_runs/lateness", {})).body).toBeNull();
    const f = await flow(t.server);
    const expected = "2020-01-01T00:00:00.000000Z";
    await seededRun(t.server, f, { expected_start_time: expected, start_time: addSeconds(expected, 30), state: { type: "COMPLETED" } });
    await seededRun(t.server, f, { expected_start_time: expected, start_time: expected, state: { type: "COMPLETED" } });
    const lateness = await t.server.request("POST", "/flow_runs/lateness", { flow_runs: { state: { type: { any_: ["COMPLETED"] } } } });
    expect(lateness.status).toBe(200);
    expect(lateness.body).toBeCloseTo(15, 3);
    // A run not started and still scheduled, expected in the past, is late by at least the time since.
    await seededRun(t.server, f, { expected_start_time: expected, state: { type: "SCHEDULED" }, tags: ["waiting"] });
    const waiting = await t.server.request("POST", "/flow_runs/lateness", { flow_runs: { tags: { all_: ["waiting"] } } });
    expect(waiting.body).toBeGreaterThan(365 * 24 * 3600);
  });

  it("bulk deletes up to the limit, newest id first, with each run's logs", async () => {
    const f = await flow(t.server);
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await seededRun(t.server, f, { tags: ["gone"] }));
    const kept = await seededRun(t.server, f);
    const result = await t.server.request("POST", "/flow_runs/bulk_delete", { flow_runs: { tags: { all_: ["gone"] } }, limit: 2 });
    expect(result.status).toBe(200);
    const newest = runs.map((r) => r.id).sort().reverse();
    expect(result.body.deleted).toEqual(newest.slice(0, 2));
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(2);
    expect((await t.server.request("GET", `/flow_runs/${kept.id}`)).status).toBe(200);
    expect((await t.server.request("POST", "/flow_runs/bulk_delete", { limit: 51 })).status).toBe(422);
    expect((await t.server.request("POST", "/flow_runs/bulk_delete", { flow_runs: { id: { any_: [UNKNOWN] } } })).body).toEqual({ deleted: [] });
  });

  it("answers the task run dependency graph (v1)", async () => {
    const run = await seededRun(t.server, await flow(t.server));
    const first = await seededTask(t.server, run.id, { name: "first" });
    const second = await seededTask(t.server, run.id, {
      name: "second",
      task_inputs: { x: [{ input_type: "task_run", id: first.id }], y: [{ input_type: "parameter", name: "p" }] },
    });
    const graph = await t.server.request("GET", `/flow_runs/${run.id}/graph`);
    expect(graph.status).toBe(200);
    const byName = Object.fromEntries(graph.body.map((n: { name: string }) => [n.name, n]));
    expect(byName.second).toMatchObject({ id: second.id, upstream_dependencies: [{ input_type: "task_run", id: first.id }], untrackable_result: false });
    expect(byName.first).toMatchObject({ upstream_dependencies: [], state: { type: "COMPLETED" } });
    expect(await t.server.request("GET", `/flow_runs/${UNKNOWN}/graph`)).toMatchObject({ status: 404 });
  });

  it("answers the graph (v2): nodes with edges, subflow runs in place of their tasks, artifacts and states", async () => {
    const f = await flow(t.server, "parent");
    const run = await seededRun(t.server, f, { start_time: "2030-01-01T00:00:00.000000Z" });
    const t0 = "2030-01-01T00:00:01.000000Z";
    const first = await seededTask(t.server, run.id, { name: "first", start_time: t0, end_time: addSeconds(t0, 1) });
    const second = await seededTask(t.server, run.id, {
      name: "second",
      start_time: addSeconds(t0, 2),
      end_time: addSeconds(t0, 3),
      task_inputs: { x: [{ input_type: "task_run", id: first.id }] },
    });
    const tracker = await seededTask(t.server, run.id, { name: "tracker", start_time: addSeconds(t0, 4), state: { type: "RUNNING" } });
    const child = await seededRun(t.server, await flow(t.server, "child"), { name: "kid", parent_task_run_id: tracker.id, start_time: addSeconds(t0, 4), state: { type: "RUNNING" } });
    await seededTask(t.server, run.id, { name: "never-started", state: { type: "PENDING" } });
    await t.server.db.artifacts.create({ key: "progress-a", type: "progress", data: 0.5, flow_run_id: run.id, task_run_id: first.id });
    await t.server.db.artifacts.create({ type: "markdown", data: "# hi", flow_run_id: run.id });
    await t.server.db.artifacts.create({ type: "result", data: { x: 1 }, flow_run_id: run.id });

    const graph = await t.server.request("GET", `/flow_runs/${run.id}/graph-v2`);
    expect(graph.status).toBe(200);
    expect(graph.body).toMatchObject({ start_time: "2030-01-01T00:00:00.000000Z", end_time: null, root_node_ids: [first.id, child.id] });
    const nodes = Object.fromEntries(graph.body.nodes);
    expect(graph.body.nodes.map(([id]: [string]) => id)).toEqual([first.id, second.id, child.id]);
    expect(nodes[first.id]).toMatchObject({ kind: "task-run", label: "first", children: [{ id: second.id }], parents: [] });
    expect(nodes[first.id].artifacts).toMatchObject([{ key: "progress-a", type: "progress", is_latest: true, data: 0.5 }]);
    expect(nodes[second.id]).toMatchObject({ parents: [{ id: first.id }], children: [], end_time: addSeconds(t0, 3) });
    expect(nodes[child.id]).toMatchObject({ kind: "flow-run", label: "child / kid", state_type: "RUNNING", end_time: null });
    expect(graph.body.artifacts).toMatchObject([{ type: "markdown", key: null, is_latest: true, data: null }]);
    expect(graph.body.states).toMatchObject([{ type: "PENDING", name: "Pending" }]);

    // `since`: only nodes still running or that ended since then.
    const since = await t.server.request("GET", `/flow_runs/${run.id}/graph-v2?since=${encodeURIComponent(addSeconds(t0, 2.5))}`);
    expect(since.body.nodes.map(([id]: [string]) => id)).toEqual([second.id, child.id]);
    expect((await t.server.request("GET", `/flow_runs/${run.id}/graph-v2?since=yesterday`)).status).toBe(422);
    expect((await t.server.request("GET", `/flow_runs/${UNKNOWN}/graph-v2`)).status).toBe(404);
  });

  it("downloads the run's logs as Prefect's CSV", async () => {
    const run = await seededRun(t.server, await flow(t.server), { name: "my run" });
    const task = await seededTask(t.server, run.id);
    await t.server.request("POST", "/logs/", [
      { name: "l", level: 20, message: "second, with \"quotes\"", timestamp: "2030-01-01T00:00:01.500000Z", flow_run_id: run.id, task_run_id: task.id },
      { name: "l", level: 40, message: "first", timestamp: "2030-01-01T00:00:00.000000Z", flow_run_id: run.id },
    ]);
    const response = await fetch(`${t.server.url}/api/flow_runs/${run.id}/logs/download`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(response.headers.get("content-disposition")).toBe(`attachment; filename="flow-run-logs.csv"; filename*=UTF-8''my%20run-logs.csv`);
    expect(await response.text()).toBe(
      "timestamp,level,flow_run_id,task_run_id,message\r\n" +
        `2030-01-01 00:00:00+00:00,40,${run.id},,first\r\n` +
        `2030-01-01 00:00:01.500000+00:00,20,${run.id},${task.id},"second, with ""quotes"""\r\n`,
    );
    const missing = await t.server.request("GET", `/flow_runs/${UNKNOWN}/logs/download`);
    expect(missing).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });
  });

  it("reads flow run states by id and by run", async () => {
    const run = await seededRun(t.server, await flow(t.server));
    await t.server.db.flowRuns.setState(run.id, { type: "RUNNING" });
    const states = await t.server.request("GET", `/flow_run_states/?flow_run_id=${run.id}`);
    expect(states.status).toBe(200);
    expect(states.body.map((s: { type: string }) => s.type)).toEqual(["PENDING", "RUNNING"]);
    const one = await t.server.request("GET", `/flow_run_states/${states.body[1].id}`);
    expect(one.body).toEqual(states.body[1]);
    expect(await t.server.request("GET", `/flow_run_states/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Flow run state not found" } });
    expect((await t.server.request("GET", `/flow_run_states/?flow_run_id=${UNKNOWN}`)).body).toEqual([]);
    expect((await t.server.request("GET", "/flow_run_states/")).status).toBe(422);
  });
});

/** The server's events about `resourceId`, once `count` of them are stored. */
async function storedEvents(server: TestServer, resourceId: string, count: number) {
  return waitFor(async () => {
    const found = await server.request("POST", "/events/filter", { filter: { resource: { id: [resourceId] }, order: "ASC" } });
    return found.body.events.length >= count ? (found.body.events as { event: string; resource: Record<string, string> }[]) : undefined;
  }, `${count} events of ${resourceId}`);
}

describeApi("flow runs API: creation and state changes through orchestration", (t) => {
  const create = (body: Record<string, unknown>, headers: Record<string, string> = {}) => t.server.request("POST", "/flow_runs/", body, { headers });

  it("creates a run PENDING by default (201) with Prefect's labels, and publishes its state event", async () => {
    const f = await flow(t.server, "etl", { team: "data", tier: "1" });
    const created = await create({ flow_id: f, labels: { tier: "2" }, tags: ["a"] });
    expect(created.status).toBe(201);
    const run = created.body;
    expect(run).toMatchObject({
      flow_id: f,
      tags: ["a"],
      state_type: "PENDING",
      state_name: "Pending",
      state: { type: "PENDING", name: "Pending", state_details: { flow_run_id: run.id } },
      labels: { team: "data", tier: "2", "prefect.flow.id": f },
      created_by: null,
      work_queue_id: null,
    });
    expect(run.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(run.expected_start_time).toBe(run.state.timestamp);
    expect((await t.server.request("GET", `/flow_runs/${run.id}`)).body).toMatchObject({ state_id: run.state.id, labels: run.labels });
    const events = await storedEvents(t.server, `prefect.flow-run.${run.id}`, 1);
    expect(events.map((e) => e.event)).toEqual(["prefect.flow-run.Pending"]);
  });

  it("returns the existing run (200) for a known idempotency key, writing nothing", async () => {
    const f = await flow(t.server);
    const first = await create({ flow_id: f, idempotency_key: "once", state: { type: "SCHEDULED" } });
    expect(first.status).toBe(201);
    expect(first.body.state).toMatchObject({ type: "SCHEDULED", name: "Scheduled" });
    expect(first.body.next_scheduled_start_time).not.toBeNull();
    const again = await create({ flow_id: f, idempotency_key: "once", name: "other" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, name: first.body.name, state_type: "SCHEDULED" });
    expect((await t.server.request("GET", `/flow_run_states/?flow_run_id=${first.body.id}`)).body).toHaveLength(1);
    const otherFlow = await create({ flow_id: await flow(t.server, "second"), idempotency_key: "once" });
    expect(otherFlow.status).toBe(201);
  });

  it("resolves a work pool and queue by name, 404 in Prefect's words for unknown ones", async () => {
    const pool = await t.server.db.workPools.create({ name: "pool" });
    const queue = await t.server.db.workQueues.create(pool.id, { name: "fast" });
    const f = await flow(t.server);
    const inDefault = await create({ flow_id: f, work_pool_name: "pool" });
    expect(inDefault.body).toMatchObject({ work_queue_id: pool.default_queue_id, work_pool_id: pool.id, work_pool_name: "pool", work_queue_name: null });
    const inQueue = await create({ flow_id: f, work_pool_name: "pool", work_queue_name: "fast" });
    expect(inQueue.body).toMatchObject({ work_queue_id: queue.id, work_queue_name: "fast", work_pool_name: "pool" });
    expect(await create({ flow_id: f, work_pool_name: "nope" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
    expect(await create({ flow_id: f, work_pool_name: "pool", work_queue_name: "slow" })).toMatchObject({
      status: 404,
      body: { detail: "Work pool queue 'pool/slow' not found." },
    });
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(2);
  });

  it("answers bad input with 422 or 409 as Prefect, writing nothing", async () => {
    const f = await flow(t.server);
    const extra = await create({ flow_id: f, surprise: true });
    expect(extra.status).toBe(422);
    expect(extra.body.detail.map((d: { loc: unknown[] }) => d.loc)).toContainEqual(["body", "surprise"]);
    const badState = await create({ flow_id: f, state: { type: "ASLEEP" } });
    expect(badState.status).toBe(422);
    expect(badState.body.detail[0].loc).toEqual(["body", "state", "type"]);
    const missing = await create({});
    expect(missing.body.detail).toContainEqual(expect.objectContaining({ loc: ["body", "flow_id"], msg: "Field required" }));
    const huge = await create({ flow_id: f, parameters: { blob: "x".repeat(600_000) } });
    expect(huge.status).toBe(422);
    expect(huge.body.detail[0]).toMatchObject({ loc: ["body", "parameters"] });
    expect(huge.body.detail[0].msg).toContain("Flow run parameters must be less than 524,288 bytes when serialized");
    const unknownFlow = await create({ flow_id: UNKNOWN });
    expect(unknownFlow).toMatchObject({ status: 409, body: { detail: expect.stringContaining("Data integrity conflict") } });
    const badHeader = await create({ flow_id: f }, { "prefect-automation-id": "not-a-uuid", "prefect-automation-name": "eA==" });
    expect(badHeader.status).toBe(422);
    expect(badHeader.body.detail[0].loc).toEqual(["header", "prefect-automation-id"]);
    const badVersion = await create({ flow_id: f }, { "x-prefect-api-version": "three" });
    expect(badVersion).toMatchObject({ status: 400, body: { detail: expect.stringContaining("Invalid X-PREFECT-API-VERSION header format") } });
    expect((await t.server.request("POST", "/flow_runs/count", {})).body).toBe(0);
  });

  it("records the automation that created a run (created_by)", async () => {
    const f = await flow(t.server);
    const automationId = randomUUID();
    const created = await create({ flow_id: f }, { "prefect-automation-id": automationId, "prefect-automation-name": Buffer.from("nightly rerun").toString("base64") });
    expect(created.body.created_by).toEqual({ id: automationId, type: "AUTOMATION", display_value: "nightly rerun" });
    const filtered = await t.server.request("POST", "/flow_runs/filter", { flow_runs: { created_by: { type_: ["AUTOMATION"] } } });
    expect(filtered.body.map((r: { id: string }) => r.id)).toEqual([created.body.id]);
  });

  it("sets states: 201 when written, 200 for a duplicate transition, ABORT for a forbidden one, force to override", async () => {
    const run = (await create({ flow_id: await flow(t.server) })).body;
    const transition = randomUUID();
    const running = await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "RUNNING", state_details: { transition_id: transition } } });
    expect(running.status).toBe(201);
    expect(running.body).toMatchObject({ status: "ACCEPT", details: { type: "accept_details" }, state: { type: "RUNNING", name: "Running" } });
    const duplicate = await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "RUNNING", state_details: { transition_id: transition } } });
    expect(duplicate.status).toBe(200);
    expect(duplicate.body).toMatchObject({ status: "REJECT", state: { id: running.body.state.id } });
    const backwards = await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "PENDING" } });
    expect(backwards.status).toBe(200);
    expect(backwards.body).toMatchObject({ status: "ABORT", details: { type: "abort_details" } });
    const forced = await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "PENDING" }, force: true });
    expect(forced.status).toBe(201);
    expect(forced.body.status).toBe("ACCEPT");
    const read = (await t.server.request("GET", `/flow_runs/${run.id}`)).body;
    expect(read).toMatchObject({ state_type: "PENDING", run_count: 1 });
    expect(read.start_time).not.toBeNull();
    const events = await storedEvents(t.server, `prefect.flow-run.${run.id}`, 3);
    expect(events.map((e) => e.event)).toEqual(["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Pending"]);
    expect(await t.server.request("POST", `/flow_runs/${UNKNOWN}/set_state`, { state: { type: "RUNNING" } })).toMatchObject({ status: 404 });
    expect((await t.server.request("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "RUNNING", id: randomUUID() } })).status).toBe(422);
    expect((await t.server.request("POST", `/flow_runs/${run.id}/set_state`, {})).status).toBe(422);
  });

  it("bulk sets the state of the matching runs, one result per run", async () => {
    const f = await flow(t.server);
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push((await create({ flow_id: f, tags: i < 2 ? ["batch"] : [] })).body);
    const result = await t.server.request("POST", "/flow_runs/bulk_set_state", { flow_runs: { tags: { all_: ["batch"] } }, state: { type: "CANCELLED" }, force: true });
    expect(result.status).toBe(200);
    expect(result.body.results).toHaveLength(2);
    for (const r of result.body.results) expect(r).toMatchObject({ status: "ACCEPT", state: { type: "CANCELLED" } });
    expect(new Set(result.body.results.map((r: { flow_run_id: string }) => r.flow_run_id))).toEqual(new Set([runs[0].id, runs[1].id]));
    expect((await t.server.request("GET", `/flow_runs/${runs[2].id}`)).body.state_type).toBe("PENDING");
    expect((await t.server.request("POST", "/flow_runs/bulk_set_state", { flow_runs: { id: { any_: [UNKNOWN] } }, state: { type: "FAILED" } })).body).toEqual({ results: [] });
    expect((await t.server.request("POST", "/flow_runs/bulk_set_state", { state: { type: "FAILED" }, limit: 100 })).status).toBe(422);
  });

  it("resumes only paused runs; with a run input it checks the input against the run's schema and stores it", async () => {
    const f = await flow(t.server);
    const notPaused = (await create({ flow_id: f })).body;
    const refused = await t.server.request("POST", `/flow_runs/${notPaused.id}/resume`, {});
    expect(refused.status).toBe(200);
    expect(refused.body).toEqual({ state: null, status: "ABORT", details: { type: "abort_details", reason: "Cannot resume a flow run that is not paused." } });
    expect(await t.server.request("POST", `/flow_runs/${UNKNOWN}/resume`, {})).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });

    const paused = (await create({ flow_id: f })).body;
    await t.server.request("POST", `/flow_runs/${paused.id}/set_state`, { state: { type: "RUNNING" } });
    const keyset = { description: "paused-1-description", response: "paused-1-response", schema: "paused-1-schema" };
    const pause = await t.server.request("POST", `/flow_runs/${paused.id}/set_state`, {
      state: { type: "PAUSED", state_details: { pause_key: "1", run_input_keyset: keyset, pause_timeout: addSeconds(now(), 3600) } },
    });
    expect(pause.body.status).toBe("ACCEPT");
    const schema = { type: "object", properties: { approved: { type: "boolean" } }, required: ["approved"] };
    await t.server.db.flowRunInputs.create({ flow_run_id: paused.id, key: keyset.schema, value: JSON.stringify(schema) });

    const wrong = await t.server.request("POST", `/flow_runs/${paused.id}/resume`, { run_input: { approved: "yes" } });
    expect(wrong.status).toBe(200);
    expect(wrong.body).toMatchObject({
      status: "REJECT",
      state: { type: "PAUSED" },
      details: { type: "abort_details", reason: "Reason: Validation failed for field 'approved'. Failure reason: 'yes' is not of type 'boolean'" },
    });
    const resumed = await t.server.request("POST", `/flow_runs/${paused.id}/resume`, { run_input: { approved: { __prefect_kind: "json", value: "true" } } });
    expect(resumed.status).toBe(201);
    expect(resumed.body).toMatchObject({ status: "ACCEPT", state: { type: "RUNNING" } });
    expect((await t.server.db.flowRunInputs.get(paused.id, keyset.response))?.value).toBe('{"approved":true}');
    expect((await t.server.request("GET", `/flow_runs/${paused.id}`)).body.empirical_policy.resuming).toBe(true);
  });
});
