import { addSeconds, now, type StateType } from "@prefect/db";
import { expect, it } from "vitest";
import { pollRecorder } from "../src/features/work-pools/polls.js";
import type { ReceivedEvent } from "@prefect/orchestration";
import { describeApi, type TestServer } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

async function createQueue(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/work_queues/", body);
  expect(response.status).toBe(201);
  return response.body;
}

function collect(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

/** Waits until every poll answered so far has been recorded. */
const pollsRecorded = (server: TestServer) => pollRecorder(server.context, server.app.log).drain();

async function flow(server: TestServer) {
  return (await server.request("POST", "/flows/", { name: "etl" })).body.id as string;
}

async function seedRun(server: TestServer, flowId: string, fields: Record<string, unknown>, type: StateType = "SCHEDULED", dueIn = 0, name?: string) {
  const due = addSeconds(now(), dueIn);
  const { row } = await server.db.flowRuns.create({
    flow_id: flowId,
    state: { type, ...(name ? { name } : {}), state_details: type === "SCHEDULED" ? { scheduled_time: due } : {} },
    ...(type === "SCHEDULED" ? { next_scheduled_start_time: due } : {}),
    ...fields,
  });
  return row;
}

describeApi("work queues API (legacy)", (t) => {
  it("creates queues in the default agent pool, made on first use", async () => {
    const seen = collect(t.server);
    const first = await createQueue(t.server, { name: "first", description: "d", concurrency_limit: 2 });
    expect(first).toMatchObject({ name: "first", description: "d", work_pool_name: "default-agent-pool", priority: 2, active_slots: 0, status: "NOT_READY", filter: null });
    const pool = (await t.server.request("GET", "/work_pools/default-agent-pool")).body;
    expect(pool).toMatchObject({ type: "prefect-agent", status: "NOT_READY", id: first.work_pool_id });
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.created", "prefect.work-pool.created", "prefect.work-queue.created"]);
    const second = await createQueue(t.server, { name: "second" });
    expect(second).toMatchObject({ work_pool_id: pool.id, priority: 3, active_slots: null });
    expect(await t.server.request("POST", "/work_queues/", { name: "second" })).toMatchObject({ status: 409, body: { detail: "A work queue with this name already exists." } });
    expect(await t.server.request("POST", "/work_queues/", { name: "default" })).toMatchObject({ status: 409 });
    expect((await t.server.request("POST", "/work_queues/", { name: "bad/name" })).status).toBe(422);
    expect((await t.server.request("POST", "/work_pools/count")).body).toBe(1);
  });

  it("answers a first `default` queue with the new pool's own default queue", async () => {
    const queue = await createQueue(t.server, { name: "default" });
    const pool = (await t.server.request("GET", "/work_pools/default-agent-pool")).body;
    expect(queue.id).toBe(pool.default_queue_id);
    expect(queue).toMatchObject({ name: "default", priority: 1 });
  });

  it("creates the default agent pool once when queues are created at the same time", async () => {
    const created = await Promise.all(["a", "b", "c", "d"].map((name) => t.server.request("POST", "/work_queues/", { name })));
    expect(created.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    expect(new Set(created.map((r) => r.body.work_pool_id)).size).toBe(1);
    expect((await t.server.request("POST", "/work_pools/count")).body).toBe(1);
  });

  it("reads a queue by id (404 for an unknown one, and for a malformed id) and by name", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    expect((await t.server.request("GET", `/work_queues/${queue.id}`)).body).toMatchObject({ id: queue.id, name: "q", work_pool_name: "default-agent-pool" });
    expect(await t.server.request("GET", `/work_queues/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "work queue not found" } });
    expect(await t.server.request("GET", "/work_queues/not-an-id")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
    expect((await t.server.request("GET", "/work_queues/name/q")).body.id).toBe(queue.id);
    expect(await t.server.request("GET", "/work_queues/name/nope")).toMatchObject({ status: 404, body: { detail: "work queue not found" } });
  });

  it("reads by name in the default agent pool when it exists, else in any pool", async () => {
    await t.server.request("POST", "/work_pools/", { name: "k8s", type: "kubernetes" });
    const inPool = (await t.server.request("POST", "/work_pools/k8s/queues", { name: "shared" })).body;
    expect((await t.server.request("GET", "/work_queues/name/shared")).body.id).toBe(inPool.id);
    const legacy = await createQueue(t.server, { name: "shared" });
    expect((await t.server.request("GET", "/work_queues/name/shared")).body.id).toBe(legacy.id);
    await createQueue(t.server, { name: "only-legacy" });
    expect((await t.server.request("GET", "/work_queues/name/other")).status).toBe(404);
  });

  it("filters the queues of every pool by name, paged", async () => {
    await t.server.request("POST", "/work_pools/", { name: "k8s", type: "kubernetes" });
    await t.server.request("POST", "/work_pools/k8s/queues", { name: "b-pool" });
    await createQueue(t.server, { name: "a-legacy" });
    const names = async (body?: unknown) => (await t.server.request("POST", "/work_queues/filter", body)).body.map((q: { name: string }) => q.name);
    expect(await names()).toEqual(["a-legacy", "b-pool", "default", "default"]);
    expect(await names({ work_queues: { name: { startswith_: ["A-"] } } })).toEqual(["a-legacy"]);
    expect(await names({ work_queues: { name: { any_: ["b-pool"] } } })).toEqual(["b-pool"]);
    expect(await names({ limit: 2, offset: 1 })).toEqual(["b-pool", "default"]);
    expect((await t.server.request("POST", "/work_queues/filter", { limit: 500 })).status).toBe(422);
  });

  it("updates a queue (204), with Prefect's events; 404 for unknown ones, 409 for a taken name", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    await createQueue(t.server, { name: "other" });
    const seen = collect(t.server);
    expect((await t.server.request("PATCH", `/work_queues/${queue.id}`, { description: "new", concurrency_limit: 4, is_paused: true })).status).toBe(204);
    expect((await t.server.request("GET", `/work_queues/${queue.id}`)).body).toMatchObject({ description: "new", concurrency_limit: 4, is_paused: true, status: "PAUSED" });
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.updated", "prefect.work-queue.paused"]);
    expect(seen[0]?.related?.[0]).toMatchObject({ "prefect.resource.name": "default-agent-pool", "prefect.work-pool.type": "prefect-agent" });
    expect(await t.server.request("PATCH", `/work_queues/${UNKNOWN}`, { description: "x" })).toMatchObject({ status: 404, body: { detail: `Work Queue ${UNKNOWN} not found` } });
    expect((await t.server.request("PATCH", `/work_queues/${queue.id}`, { name: "other" })).status).toBe(409);
    expect((await t.server.request("PATCH", `/work_queues/${queue.id}`, { bogus: 1 })).status).toBe(422);
  });

  it("deletes a queue (204), but not a pool's default queue (409)", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    const seen = collect(t.server);
    expect((await t.server.request("DELETE", `/work_queues/${queue.id}`)).status).toBe(204);
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.deleted"]);
    expect(await t.server.request("DELETE", `/work_queues/${queue.id}`)).toMatchObject({ status: 404, body: { detail: "work queue not found" } });
    const pool = (await t.server.request("GET", "/work_pools/default-agent-pool")).body;
    expect((await t.server.request("DELETE", `/work_queues/${pool.default_queue_id}`)).status).toBe(409);
    expect((await t.server.request("GET", `/work_queues/${pool.default_queue_id}`)).status).toBe(200);
  });

  it("counts active slots as the legacy routes do: PENDING, RUNNING and CANCELLING runs", async () => {
    const queue = await createQueue(t.server, { name: "q", concurrency_limit: 5 });
    const f = await flow(t.server);
    for (const type of ["PENDING", "RUNNING", "CANCELLING", "COMPLETED", "SCHEDULED"] as const) await seedRun(t.server, f, { work_queue_id: queue.id }, type);
    expect((await t.server.request("GET", `/work_queues/${queue.id}`)).body.active_slots).toBe(3);
    expect((await t.server.request("POST", "/work_queues/filter", { work_queues: { id: { any_: [queue.id] } } })).body[0].active_slots).toBe(3);
  });
});

describeApi("work queues API (legacy): runs and status", (t) => {
  const getRuns = (id: string, body?: unknown, headers?: Record<string, string>) =>
    t.server.request("POST", `/work_queues/${id}/get_runs`, body, headers ? { headers } : {});
  const ids = (response: { body: { id: string }[] }) => response.body.map((r) => r.id);

  it("returns the SCHEDULED runs carrying the queue's name, by due time, leaving them SCHEDULED", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    const f = await flow(t.server);
    const late = await seedRun(t.server, f, { work_queue_name: "q", work_queue_id: queue.id }, "SCHEDULED", 60);
    const early = await seedRun(t.server, f, { work_queue_name: "q", work_queue_id: queue.id }, "SCHEDULED", -60);
    const future = await seedRun(t.server, f, { work_queue_name: "q", work_queue_id: queue.id }, "SCHEDULED", 7200);
    await seedRun(t.server, f, { work_queue_name: "q" }, "RUNNING");
    await seedRun(t.server, f, { work_queue_name: "other" }, "SCHEDULED", -60);
    const response = await getRuns(queue.id);
    expect(response.status).toBe(200);
    expect(ids(response)).toEqual([early.id, late.id, future.id]);
    expect(response.body[0]).toMatchObject({ state_type: "SCHEDULED", work_pool_name: "default-agent-pool", state: { type: "SCHEDULED" } });
    expect(ids(await getRuns(queue.id, { scheduled_before: addSeconds(now(), 3600) }))).toEqual([early.id, late.id]);
    expect(ids(await getRuns(queue.id, { limit: 1 }))).toEqual([early.id]);
    for (const id of [early.id, late.id, future.id]) expect((await t.server.db.flowRuns.readStates(id)).map((s) => s.type)).toEqual(["SCHEDULED"]);
  });

  it("honours the queue's limit and pause", async () => {
    const queue = await createQueue(t.server, { name: "q", concurrency_limit: 3 });
    const f = await flow(t.server);
    await seedRun(t.server, f, { work_queue_name: "q" }, "RUNNING");
    await seedRun(t.server, f, { work_queue_name: "q" }, "CANCELLING");
    for (let i = 0; i < 3; i++) await seedRun(t.server, f, { work_queue_name: "q" }, "SCHEDULED", i);
    expect((await getRuns(queue.id)).body).toHaveLength(1);
    await t.server.request("PATCH", `/work_queues/${queue.id}`, { is_paused: true });
    expect((await getRuns(queue.id)).body).toEqual([]);
  });

  it("returns a tag-based queue's matching runs, whatever their queue", async () => {
    const f = await flow(t.server);
    const { row: deployment } = await t.server.db.deployments.create({ name: "d", flow_id: f });
    const { row: other } = await t.server.db.deployments.create({ name: "other", flow_id: f });
    const queue = await createQueue(t.server, { name: "tagged", concurrency_limit: 3, filter: { tags: ["a", "b"], deployment_ids: [deployment.id] } });
    expect(queue.filter).toEqual({ tags: ["a", "b"], deployment_ids: [deployment.id] });
    const match = await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["a", "b", "c"] }, "SCHEDULED", -10);
    const second = await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["b", "a"] }, "SCHEDULED", 10);
    await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["a"] }, "SCHEDULED");
    await seedRun(t.server, f, { deployment_id: other.id, tags: ["a", "b"] }, "SCHEDULED");
    await seedRun(t.server, f, { tags: ["a", "b"] }, "SCHEDULED");
    expect(ids(await getRuns(queue.id))).toEqual([match.id, second.id]);
    // One matching run RUNNING and a CANCELLING one: the legacy count takes only PENDING and RUNNING.
    await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["a", "b"] }, "RUNNING");
    await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["a", "b"] }, "CANCELLING");
    expect(ids(await getRuns(queue.id))).toEqual([match.id, second.id]);
    expect((await t.server.request("GET", `/work_queues/${queue.id}`)).body.active_slots).toBe(1);
    await seedRun(t.server, f, { deployment_id: deployment.id, tags: ["a", "b"] }, "PENDING");
    expect(ids(await getRuns(queue.id))).toEqual([match.id]);
  });

  it("marks the queue and its deployments polled after answering, but not for the UI", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    const f = await flow(t.server);
    const { row: deployment } = await t.server.db.deployments.create({ name: "d", flow_id: f, work_queue_id: queue.id });
    expect((await getRuns(queue.id, {}, { "x-prefect-ui": "true" })).status).toBe(200);
    await pollsRecorded(t.server);
    expect((await t.server.request("GET", `/work_queues/${queue.id}`)).body).toMatchObject({ last_polled: null, status: "NOT_READY" });
    const seen = collect(t.server);
    await getRuns(queue.id, {}, { "x-prefect-ui": "false" });
    await pollsRecorded(t.server);
    const polled = (await t.server.request("GET", `/work_queues/${queue.id}`)).body;
    expect(polled.status).toBe("READY");
    expect(polled.last_polled).not.toBeNull();
    expect(await t.server.db.deployments.get(deployment.id)).toMatchObject({ status: "READY" });
    expect(seen.map((e) => e.event).sort()).toEqual(["prefect.deployment.ready", "prefect.work-queue.ready"]);
    expect((await getRuns(queue.id, {}, { "x-prefect-ui": "maybe" })).status).toBe(422);
  });

  it("answers 404 for an unknown queue and 422 for bad bodies", async () => {
    expect(await getRuns(UNKNOWN)).toMatchObject({ status: 404, body: { detail: `Work queue with id ${UNKNOWN} not found.` } });
    const queue = await createQueue(t.server, { name: "q" });
    expect((await getRuns(queue.id, { limit: -1 })).status).toBe(422);
    expect((await getRuns(queue.id, { scheduled_before: "soon" })).status).toBe(422);
  });

  it("shows the queue's concurrency status: its PENDING, RUNNING and CANCELLING runs, paged", async () => {
    const queue = await createQueue(t.server, { name: "q", concurrency_limit: 5 });
    const f = await flow(t.server);
    const held = [
      await seedRun(t.server, f, { work_queue_id: queue.id }, "RUNNING"),
      await seedRun(t.server, f, { work_queue_id: queue.id }, "CANCELLING"),
      await seedRun(t.server, f, { work_queue_name: "q" }, "PENDING"),
    ];
    await seedRun(t.server, f, { work_queue_id: queue.id }, "COMPLETED");
    const status = await t.server.request("POST", `/work_queues/${queue.id}/concurrency_status`);
    expect(status.body).toMatchObject({ active_slots: 3, concurrency_limit: 5, count: 3, limit: 200, pages: 1, page: 1 });
    expect(status.body.flow_runs.map((r: { id: string }) => r.id)).toEqual(held.map((r) => r.id).sort());
    const paged = await t.server.request("POST", `/work_queues/${queue.id}/concurrency_status`, { page: 2, limit: 2 });
    expect(paged.body).toMatchObject({ active_slots: 3, count: 3, pages: 2, page: 2 });
    expect(paged.body.flow_runs).toHaveLength(1);
    expect(await t.server.request("POST", `/work_queues/${UNKNOWN}/concurrency_status`)).toMatchObject({ status: 404, body: { detail: "Work queue not found." } });
  });

  it("reports the queue's health: polled in the last minute, without late runs", async () => {
    const queue = await createQueue(t.server, { name: "q" });
    const status = async () => (await t.server.request("GET", `/work_queues/${queue.id}/status`)).body;
    expect(await status()).toEqual({
      healthy: false,
      late_runs_count: 0,
      last_polled: null,
      health_check_policy: { maximum_late_runs: 0, maximum_seconds_since_last_polled: 60 },
    });
    await getRuns(queue.id);
    await pollsRecorded(t.server);
    expect(await status()).toMatchObject({ healthy: true, late_runs_count: 0 });
    const f = await flow(t.server);
    await seedRun(t.server, f, { work_queue_id: queue.id }, "SCHEDULED", -600, "Late");
    expect(await status()).toMatchObject({ healthy: false, late_runs_count: 1 });
    expect(await t.server.request("GET", `/work_queues/${UNKNOWN}/status`)).toMatchObject({ status: 404, body: { detail: `Work queue with id ${UNKNOWN} not found` } });
  });
});
