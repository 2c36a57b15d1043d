import { addSeconds, now, type StateType } from "@prefect/db";
import { expect, it } from "vitest";
import { pollRecorder } from "../src/features/work-pools/polls.js";
import type { ReceivedEvent } from "@prefect/orchestration";
import { describeApi, type TestServer } from "./support/server.js";

const enc = encodeURIComponent;

const TEMPLATE = {
  job_configuration: { command: "{{ command }}", env: { IMAGE: "{{ image }}" } },
  variables: {
    type: "object",
    properties: { command: { type: "string", default: "python flow.py" }, image: { type: "string" } },
    required: ["image"],
  },
};

async function createPool(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/work_pools/", body);
  expect(response.status).toBe(201);
  return response.body;
}

async function createQueue(server: TestServer, pool: string, body: Record<string, unknown>) {
  const response = await server.request("POST", `/work_pools/${enc(pool)}/queues`, body);
  expect(response.status).toBe(201);
  return response.body;
}

/** Events published from now on. */
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

/** A run straight into the database, in `type`, due `dueIn` seconds from now when SCHEDULED. */
async function seedRun(server: TestServer, flowId: string, fields: Record<string, unknown>, type: StateType = "SCHEDULED", dueIn = 0) {
  const due = addSeconds(now(), dueIn);
  const { row } = await server.db.flowRuns.create({
    flow_id: flowId,
    state: { type, state_details: type === "SCHEDULED" ? { scheduled_time: due } : {} },
    ...(type === "SCHEDULED" ? { next_scheduled_start_time: due } : {}),
    ...fields,
  });
  return row;
}

describeApi("work pools API: pools", (t) => {
  it("creates a pool with Prefect's defaults, its default queue and events", async () => {
    const seen = collect(t.server);
    const pool = await createPool(t.server, { name: "My Pool", type: "process", base_job_template: TEMPLATE });
    expect(pool).toMatchObject({
      name: "My Pool",
      type: "process",
      description: null,
      is_paused: false,
      concurrency_limit: null,
      status: "NOT_READY",
      base_job_template: TEMPLATE,
      storage_configuration: { bundle_upload_step: null, bundle_execution_step: null, default_result_storage_block_id: null },
      active_slots: null,
    });
    const queues = await t.server.request("POST", `/work_pools/${enc("My Pool")}/queues/filter`);
    expect(queues.body).toHaveLength(1);
    expect(queues.body[0]).toMatchObject({ id: pool.default_queue_id, name: "default", priority: 1, work_pool_name: "My Pool", status: "NOT_READY" });
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.created", "prefect.work-pool.created", "prefect.work-pool.not-ready"]);
    const poolResource = { "prefect.resource.id": `prefect.work-pool.${pool.id}`, "prefect.resource.name": "My Pool", "prefect.work-pool.type": "process" };
    expect(seen[0]!.related).toEqual([{ ...poolResource, "prefect.resource.role": "work-pool" }]);
    expect(seen[1]!.resource).toEqual({ ...poolResource, "prefect.resource.role": "work-pool" });
    expect(seen[1]!.related).toEqual([{ "prefect.resource.id": `prefect.work-queue.${pool.default_queue_id}`, "prefect.resource.role": "default-queue" }]);
    expect(seen[2]!.resource).toEqual(poolResource);

    const limited = await createPool(t.server, { name: "limited", concurrency_limit: 5, is_paused: true });
    expect(limited).toMatchObject({ type: "prefect-agent", active_slots: 0, concurrency_limit: 5, is_paused: true });
  });

  it("refuses bad names (422), Prefect's reserved names (403) and taken names (409), writing nothing", async () => {
    for (const name of ["", "hi/there", "hi%there", "a>b"]) {
      expect((await t.server.request("POST", "/work_pools/", { name })).status).toBe(422);
    }
    for (const name of ["''", " ", "' ' "]) {
      const response = await t.server.request("POST", "/work_pools/", { name });
      expect(response.status).toBe(422);
      expect(JSON.stringify(response.body)).toContain("name cannot be an empty string");
    }
    for (const name of ["Prefect", "prefect", "Prefect Pool", "prefect-pool", "PrefectPool"]) {
      expect(await t.server.request("POST", "/work_pools/", { name })).toMatchObject({
        status: 403,
        body: { detail: "Work pools starting with 'Prefect' are reserved for internal use." },
      });
    }
    await createPool(t.server, { name: "taken" });
    expect(await t.server.request("POST", "/work_pools/", { name: "taken", type: "other" })).toMatchObject({
      status: 409,
      body: { detail: "A work pool with this name already exists." },
    });
    const extra = await t.server.request("POST", "/work_pools/", { name: "x", bogus: 1 });
    expect(extra.status).toBe(422);
    expect(extra.body.detail[0].loc).toEqual(["body", "bogus"]);
    expect((await t.server.request("POST", "/work_pools/", { name: "x", concurrency_limit: -1 })).status).toBe(422);
    expect((await t.server.request("POST", "/work_pools/count")).body).toBe(1);
  });

  it("validates the base job template as Prefect does", async () => {
    const missing = await t.server.request("POST", "/work_pools/", { name: "p", base_job_template: { foo: "bar", x: ["y"] } });
    expect(missing.status).toBe(422);
    expect(missing.body.exception_detail[0].msg).toContain("The `base_job_template` must contain both a `job_configuration` key and a `variables` key.");
    const undeclared = await t.server.request("POST", "/work_pools/", {
      name: "p",
      base_job_template: { job_configuration: { config: { command: "{{ missing_variable }}" } }, variables: { properties: { command: { type: "array" } } } },
    });
    expect(undeclared.status).toBe(422);
    expect(undeclared.body.exception_detail[0].msg).toContain("Your job configuration uses the following undeclared variable(s): missing_variable.");
    const badDefault = await t.server.request("POST", "/work_pools/", {
      name: "p",
      base_job_template: { job_configuration: { n: "{{ n }}" }, variables: { properties: { n: { type: "integer", default: "many" } } } },
    });
    expect(badDefault.status).toBe(422);
    expect(badDefault.body.detail[0].msg).toMatch(
      /^Validation failed for work pool's job variable defaults: Validation failed for field 'n'\. Failure reason: 'many' is not of type 'integer'/,
    );
    const badSchema = await t.server.request("POST", "/work_pools/", {
      name: "p",
      base_job_template: { job_configuration: { n: "{{ n }}" }, variables: { type: "nonsense", properties: { n: {} } } },
    });
    expect(badSchema.status).toBe(422);
    expect(badSchema.body.detail[0].msg).toMatch(/^Invalid schema: /);
    expect((await t.server.request("POST", "/work_pools/count")).body).toBe(0);
  });

  it("resolves block references among the defaults (404 for a missing block, 422 for one of the wrong type)", async () => {
    const type = await t.server.request("POST", "/block_types/", { name: "Thing", slug: "thing" });
    const schema = await t.server.request("POST", "/block_schemas/", {
      fields: { title: "Thing", type: "object", properties: { foo: { title: "Foo", type: "string" } }, required: ["foo"] },
      block_type_id: type.body.id,
      capabilities: [],
    });
    expect(schema.status).toBe(201);
    const document = await t.server.request("POST", "/block_documents/", {
      name: "thing",
      data: { foo: "bar" },
      block_schema_id: schema.body.id,
      block_type_id: type.body.id,
    });
    expect(document.status).toBe(201);
    const template = (id: string, kind: string) => ({
      job_configuration: { block: "{{ block }}" },
      variables: { properties: { block: { type: kind, default: { $ref: { block_document_id: id } } } }, required: ["block"] },
    });
    expect(await t.server.request("POST", "/work_pools/", { name: "p", base_job_template: template("non-existing", "string") })).toMatchObject({
      status: 404,
      body: { detail: "Block not found." },
    });
    expect((await t.server.request("POST", "/work_pools/", { name: "p", base_job_template: template("00000000-0000-4000-8000-000000000000", "object") })).status).toBe(404);
    const wrongType = await t.server.request("POST", "/work_pools/", { name: "p", base_job_template: template(document.body.id, "string") });
    expect(wrongType.status).toBe(422);
    expect(wrongType.body.detail[0].msg).toContain("Failure reason: {'foo': 'bar'} is not of type 'string'");
    expect((await t.server.request("POST", "/work_pools/", { name: "p", base_job_template: template(document.body.id, "object") })).status).toBe(201);
  });

  it("reads a pool by name (404 for an unknown one), filters, counts and pages", async () => {
    for (const [name, type] of [
      ["C", "k8s"],
      ["B", "process"],
      ["A", "process"],
    ]) {
      await createPool(t.server, { name, type });
    }
    const read = await t.server.request("GET", "/work_pools/A");
    expect(read.body).toMatchObject({ name: "A", type: "process", active_slots: null });
    expect(await t.server.request("GET", `/work_pools/${enc("no such pool")}`)).toMatchObject({ status: 404, body: { detail: 'Work pool "no such pool" not found.' } });
    const names = async (body?: unknown) => (await t.server.request("POST", "/work_pools/filter", body)).body.map((p: { name: string }) => p.name);
    expect(await names()).toEqual(["A", "B", "C"]);
    expect(await names({ limit: 2 })).toEqual(["A", "B"]);
    expect(await names({ offset: 1 })).toEqual(["B", "C"]);
    expect(await names({ work_pools: { type: { any_: ["process"] } } })).toEqual(["A", "B"]);
    expect(await names({ work_pools: { name: { any_: ["C", "Z"] } } })).toEqual(["C"]);
    expect((await t.server.request("POST", "/work_pools/count", { work_pools: { name: { any_: ["A"] } } })).body).toBe(1);
    expect((await t.server.request("POST", "/work_pools/count", {})).body).toBe(3);
    expect((await t.server.request("POST", "/work_pools/filter", { limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/work_pools/filter", { work_pools: { name: { like_: "A" } } })).status).toBe(422);
  });

  it("counts active slots of pools with a limit: PENDING and RUNNING runs of all their queues", async () => {
    const pool = await createPool(t.server, { name: "p", concurrency_limit: 10 });
    const other = await createQueue(t.server, "p", { name: "other", is_paused: true });
    const f = await flow(t.server);
    for (const [queue, type] of [
      [pool.default_queue_id, "RUNNING"],
      [other.id, "PENDING"],
      [pool.default_queue_id, "CANCELLING"],
      [pool.default_queue_id, "COMPLETED"],
    ] as const) {
      await seedRun(t.server, f, { work_queue_id: queue }, type);
    }
    expect((await t.server.request("GET", "/work_pools/p")).body.active_slots).toBe(2);
    expect((await t.server.request("POST", "/work_pools/filter")).body[0].active_slots).toBe(2);
  });

  it("leaves out the result storage block for Prefect clients up to 3.3.7", async () => {
    const old = { "user-agent": "prefect/3.3.7 (API 0.8.4)" };
    const created = await t.server.request("POST", "/work_pools/", { name: "p", type: "kubernetes" }, { headers: old });
    expect(created.body.storage_configuration).toEqual({ bundle_upload_step: null, bundle_execution_step: null });
    expect((await t.server.request("GET", "/work_pools/p", undefined, { headers: old })).body.storage_configuration).not.toHaveProperty("default_result_storage_block_id");
    expect((await t.server.request("POST", "/work_pools/filter", undefined, { headers: old })).body[0].storage_configuration).not.toHaveProperty(
      "default_result_storage_block_id",
    );
    const current = { "user-agent": "prefect/3.4.11 (API 0.8.4)" };
    expect((await t.server.request("GET", "/work_pools/p", undefined, { headers: current })).body.storage_configuration).toHaveProperty(
      "default_result_storage_block_id",
      null,
    );
  });

  it("updates the fields given; pausing makes the pool PAUSED, unpausing NOT_READY (READY with an online worker)", async () => {
    const pool = await createPool(t.server, { name: "p", type: "process", description: "before" });
    const seen = collect(t.server);
    expect((await t.server.request("PATCH", "/work_pools/p", { is_paused: true, concurrency_limit: 5 })).status).toBe(204);
    expect((await t.server.request("GET", "/work_pools/p")).body).toMatchObject({ is_paused: true, status: "PAUSED", concurrency_limit: 5, description: "before" });
    expect(seen.map((e) => e.event).sort()).toEqual(["prefect.work-pool.paused", "prefect.work-pool.updated"]);
    const updated = seen.find((e) => e.event === "prefect.work-pool.updated")!;
    expect(updated.payload).toEqual({ updated_fields: ["concurrency_limit"], updates: { concurrency_limit: { from: null, to: 5 } } });
    const paused = seen.find((e) => e.event === "prefect.work-pool.paused")!;
    const stored = (await t.server.request("GET", "/work_pools/p")).body;
    expect(paused.id).toBe((await t.server.db.workPools.get(pool.id))?.last_status_event_id);
    expect(stored.status).toBe("PAUSED");

    seen.length = 0;
    await t.server.request("PATCH", "/work_pools/p", { is_paused: false });
    expect((await t.server.request("GET", "/work_pools/p")).body.status).toBe("NOT_READY");
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-pool.not-ready"]);
    // The status event follows the one before it, which was moments ago.
    expect(seen[0]!.follows).toBe(paused.id);

    await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "w" });
    await t.server.request("PATCH", "/work_pools/p", { is_paused: true });
    await t.server.request("PATCH", "/work_pools/p", { is_paused: false });
    expect((await t.server.request("GET", "/work_pools/p")).body.status).toBe("READY");

    expect((await t.server.request("PATCH", "/work_pools/p", { description: null })).status).toBe(204);
    expect((await t.server.request("GET", "/work_pools/p")).body.description).toBeNull();
  });

  it("replaces and clears the storage configuration, and keeps it on unrelated updates", async () => {
    const blockId = "11111111-1111-4111-8111-111111111111";
    const storage = { bundle_upload_step: { upload: { bucket: "b" } }, bundle_execution_step: { execute: { bucket: "b" } }, default_result_storage_block_id: blockId };
    await createPool(t.server, { name: "p", type: "kubernetes", storage_configuration: storage });
    await t.server.request("PATCH", "/work_pools/p", { description: "newest" });
    expect((await t.server.request("GET", "/work_pools/p")).body.storage_configuration).toEqual(storage);
    expect((await t.server.request("PATCH", "/work_pools/p", { storage_configuration: { invalid_key: 1 } })).status).toBe(422);
    expect((await t.server.request("PATCH", "/work_pools/p", { storage_configuration: {} })).status).toBe(204);
    expect((await t.server.request("GET", "/work_pools/p")).body.storage_configuration).toEqual({
      bundle_upload_step: null,
      bundle_execution_step: null,
      default_result_storage_block_id: null,
    });
  });

  it("refuses bad updates: templates (422), NOT NULL fields set to null (409), unknown pools (404), reserved pools (403)", async () => {
    await createPool(t.server, { name: "p", base_job_template: TEMPLATE });
    const bad = await t.server.request("PATCH", "/work_pools/p", { base_job_template: { job_configuration: { a: "{{ b }}" }, variables: { properties: {} } } });
    expect(bad.status).toBe(422);
    expect(bad.body.exception_detail[0].msg).toContain("undeclared variable(s): b.");
    expect((await t.server.request("PATCH", "/work_pools/p", { concurrency_limit: -1 })).status).toBe(422);
    for (const field of ["is_paused", "base_job_template", "storage_configuration"]) {
      expect((await t.server.request("PATCH", "/work_pools/p", { [field]: null })).status).toBe(409);
    }
    expect((await t.server.request("GET", "/work_pools/p")).body).toMatchObject({ base_job_template: TEMPLATE, is_paused: false });
    expect(await t.server.request("PATCH", "/work_pools/nope", { description: "x" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });

    await t.server.db.workPools.create({ name: "prefect-managed", type: "prefect:managed" });
    expect(await t.server.request("PATCH", "/work_pools/prefect-managed", { description: "x" })).toMatchObject({
      status: 403,
      body: { detail: "Work pools starting with 'Prefect' are reserved for internal use and can only be updated to set concurrency limits or pause." },
    });
    expect((await t.server.request("PATCH", "/work_pools/prefect-managed", { is_paused: true, concurrency_limit: 2 })).status).toBe(204);
    expect((await t.server.request("GET", "/work_pools/prefect-managed")).body).toMatchObject({ is_paused: true, concurrency_limit: 2 });
  });

  it("deletes a pool with its queues and workers, publishing their events; reserved (403) and unknown (404) pools stay", async () => {
    const pool = await createPool(t.server, { name: "doomed", type: "process" });
    const extra = await createQueue(t.server, "doomed", { name: "extra" });
    await t.server.request("POST", "/work_pools/doomed/workers/heartbeat", { name: "w" });
    const seen = collect(t.server);
    expect((await t.server.request("DELETE", "/work_pools/doomed")).status).toBe(204);
    expect((await t.server.request("GET", "/work_pools/doomed")).status).toBe(404);
    expect(await t.server.db.workQueues.get(extra.id)).toBeNull();
    expect(seen.map((e) => [e.event, e.resource["prefect.resource.id"]])).toEqual([
      ["prefect.work-queue.deleted", `prefect.work-queue.${pool.default_queue_id}`],
      ["prefect.work-queue.deleted", `prefect.work-queue.${extra.id}`],
      ["prefect.work-pool.deleted", `prefect.work-pool.${pool.id}`],
    ]);
    expect(await t.server.request("DELETE", "/work_pools/doomed")).toMatchObject({ status: 404, body: { detail: 'Work pool "doomed" not found.' } });
    await t.server.db.workPools.create({ name: "Prefect Pool" });
    expect(await t.server.request("DELETE", `/work_pools/${enc("Prefect Pool")}`)).toMatchObject({
      status: 403,
      body: { detail: "Work pools starting with 'Prefect' are reserved for internal use and can not be deleted." },
    });
    expect((await t.server.request("POST", "/work_pools/count")).body).toBe(1);
  });
});

describeApi("work pools API: queues", (t) => {
  it("creates queues after the default one, or at the priority given, moving the others", async () => {
    const pool = await createPool(t.server, { name: "p", type: "process" });
    const seen = collect(t.server);
    const a = await createQueue(t.server, "p", { name: "a", description: "first" });
    expect(a).toMatchObject({ name: "a", description: "first", priority: 2, work_pool_id: pool.id, work_pool_name: "p", status: "NOT_READY", is_paused: false, active_slots: null, filter: null });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      event: "prefect.work-queue.created",
      resource: { "prefect.resource.id": `prefect.work-queue.${a.id}`, "prefect.resource.name": "a", "prefect.resource.role": "work-queue" },
      related: [{ "prefect.resource.id": `prefect.work-pool.${pool.id}`, "prefect.resource.role": "work-pool" }],
    });
    expect((await createQueue(t.server, "p", { name: "far", priority: 99 })).priority).toBe(99);
    expect((await createQueue(t.server, "p", { name: "b" })).priority).toBe(3);
    expect((await createQueue(t.server, "p", { name: "top", priority: 1, concurrency_limit: 3 })).active_slots).toBe(0);
    const order = (await t.server.request("POST", "/work_pools/p/queues/filter")).body.map((q: { name: string; priority: number }) => `${q.name}:${q.priority}`);
    expect(order).toEqual(["top:1", "default:2", "a:3", "b:4", "far:99"]);
  });

  it("refuses taken names (409), bad names and priorities (422) and unknown pools (404)", async () => {
    await createPool(t.server, { name: "p" });
    await createQueue(t.server, "p", { name: "a" });
    expect(await t.server.request("POST", "/work_pools/p/queues", { name: "a" })).toMatchObject({
      status: 409,
      body: { detail: "A work queue with this name already exists in work pool {work_pool_name!r}." },
    });
    expect((await t.server.request("POST", "/work_pools/p/queues", { name: "a/b" })).status).toBe(422);
    expect((await t.server.request("POST", "/work_pools/p/queues", { name: "c", priority: 0 })).status).toBe(422);
    expect((await t.server.request("POST", "/work_pools/p/queues", { name: "c", concurrency_limit: -1 })).status).toBe(422);
    expect(await t.server.request("POST", "/work_pools/nope/queues", { name: "c" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
    expect((await t.server.request("POST", "/work_pools/p/queues/filter")).body).toHaveLength(2);
  });

  it("reads a queue by name with its active slots; 404 for unknown ones", async () => {
    const pool = await createPool(t.server, { name: "p" });
    const q = await createQueue(t.server, "p", { name: "q", concurrency_limit: 5 });
    const f = await flow(t.server);
    await seedRun(t.server, f, { work_queue_id: q.id }, "RUNNING");
    await seedRun(t.server, f, { work_queue_id: q.id }, "CANCELLING");
    expect((await t.server.request("GET", "/work_pools/p/queues/q")).body).toMatchObject({ id: q.id, name: "q", active_slots: 1, work_pool_name: "p" });
    expect((await t.server.request("GET", "/work_pools/p/queues/default")).body).toMatchObject({ id: pool.default_queue_id, active_slots: null });
    expect(await t.server.request("GET", "/work_pools/p/queues/nope")).toMatchObject({ status: 404, body: { detail: "Work pool queue 'p/nope' not found." } });
    expect(await t.server.request("GET", "/work_pools/nope/queues/q")).toMatchObject({ status: 404, body: { detail: "Work pool queue 'nope/q' not found." } });
  });

  it("filters a pool's queues by name and pages them by priority", async () => {
    await createPool(t.server, { name: "p" });
    for (const name of ["alpha", "Beta", "alpine"]) await createQueue(t.server, "p", { name });
    const names = async (body: unknown) => (await t.server.request("POST", "/work_pools/p/queues/filter", body)).body.map((q: { name: string }) => q.name);
    expect(await names({ work_queues: { name: { startswith_: ["AL"] } } })).toEqual(["alpha", "alpine"]);
    expect(await names({ work_queues: { name: { any_: ["Beta", "default"] } } })).toEqual(["default", "Beta"]);
    expect(await names({ limit: 2, offset: 1 })).toEqual(["alpha", "Beta"]);
    expect((await t.server.request("POST", "/work_pools/nope/queues/filter")).status).toBe(404);
  });

  it("updates a queue: renames, reprioritises, pauses (PAUSED) and unpauses (NOT_READY), with Prefect's events", async () => {
    const pool = await createPool(t.server, { name: "p", type: "process" });
    await createQueue(t.server, "p", { name: "a" });
    await createQueue(t.server, "p", { name: "b" });
    const seen = collect(t.server);
    expect((await t.server.request("PATCH", "/work_pools/p/queues/b", { name: "renamed", description: "d", priority: 1, is_paused: true })).status).toBe(204);
    const queues = (await t.server.request("POST", "/work_pools/p/queues/filter")).body;
    expect(queues.map((q: { name: string; priority: number }) => `${q.name}:${q.priority}`)).toEqual(["renamed:1", "default:2", "a:3"]);
    expect(queues[0]).toMatchObject({ description: "d", is_paused: true, status: "PAUSED" });
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.updated", "prefect.work-queue.paused"]);
    expect(seen[0]!.payload).toEqual({
      updated_fields: ["name", "description", "priority"],
      updates: { name: { from: "b", to: "renamed" }, description: { from: "", to: "d" }, priority: { from: 3, to: 1 } },
    });
    expect(seen[1]!.related).toEqual([
      { "prefect.resource.id": `prefect.work-pool.${pool.id}`, "prefect.resource.name": "p", "prefect.work-pool.type": "process", "prefect.resource.role": "work-pool" },
    ]);

    seen.length = 0;
    await t.server.request("PATCH", "/work_pools/p/queues/renamed", { is_paused: true });
    expect(seen).toEqual([]);
    await t.server.request("PATCH", "/work_pools/p/queues/renamed", { is_paused: false });
    expect((await t.server.request("GET", "/work_pools/p/queues/renamed")).body.status).toBe("NOT_READY");
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-queue.not-ready"]);
    await t.server.request("PATCH", "/work_pools/p/queues/renamed", { is_paused: true });
    await t.server.request("PATCH", "/work_pools/p/queues/renamed", { is_paused: false, last_polled: now() });
    expect((await t.server.request("GET", "/work_pools/p/queues/renamed")).body.status).toBe("READY");
  });

  it("refuses bad queue updates, changing nothing", async () => {
    await createPool(t.server, { name: "p" });
    await createQueue(t.server, "p", { name: "a" });
    expect(await t.server.request("PATCH", "/work_pools/p/queues/a", { name: "default" })).toMatchObject({ status: 409 });
    for (const field of ["name", "priority", "description"]) expect((await t.server.request("PATCH", "/work_pools/p/queues/a", { [field]: null })).status).toBe(409);
    expect((await t.server.request("PATCH", "/work_pools/p/queues/a", { priority: 0 })).status).toBe(422);
    expect((await t.server.request("PATCH", "/work_pools/p/queues/a", { is_paused: null })).status).toBe(422);
    expect(await t.server.request("PATCH", "/work_pools/p/queues/nope", { name: "x" })).toMatchObject({ status: 404, body: { detail: "Work pool queue 'p/nope' not found." } });
    expect(await t.server.request("PATCH", "/work_pools/nope/queues/a", { name: "x" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
    expect((await t.server.request("GET", "/work_pools/p/queues/a")).body).toMatchObject({ name: "a", priority: 2, description: "" });
  });

  it("deletes queues but not the pool's default one", async () => {
    const pool = await createPool(t.server, { name: "p" });
    const a = await createQueue(t.server, "p", { name: "a" });
    const seen = collect(t.server);
    expect((await t.server.request("DELETE", "/work_pools/p/queues/a")).status).toBe(204);
    expect(seen.map((e) => [e.event, e.resource["prefect.resource.id"]])).toEqual([["prefect.work-queue.deleted", `prefect.work-queue.${a.id}`]]);
    expect((await t.server.request("DELETE", "/work_pools/p/queues/a")).status).toBe(404);
    expect(await t.server.request("DELETE", "/work_pools/p/queues/default")).toMatchObject({ status: 409, body: { detail: "Can't delete a pool's default queue." } });
    expect((await t.server.request("GET", "/work_pools/p/queues/default")).body.id).toBe(pool.default_queue_id);
  });
});

describeApi("work pools API: workers", (t) => {
  it("records heartbeats (upserting by name), and the first makes the pool READY with Prefect's event", async () => {
    const pool = await createPool(t.server, { name: "p", type: "process" });
    expect((await t.server.request("POST", "/work_pools/p/workers/filter")).body).toEqual([]);
    const seen = collect(t.server);
    const before = now();
    expect((await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "w1", heartbeat_interval_seconds: 30 })).status).toBe(204);
    for (const name of ["w1", "w1", "w2"]) await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name });
    const workers = (await t.server.request("POST", "/work_pools/p/workers/filter")).body;
    expect(workers.map((w: { name: string }) => w.name)).toEqual(["w2", "w1"]);
    expect(workers[1]).toMatchObject({ name: "w1", status: "ONLINE", heartbeat_interval_seconds: 30, work_pool_id: pool.id });
    expect(workers[1].last_heartbeat_time >= before).toBe(true);
    expect((await t.server.request("GET", "/work_pools/p")).body.status).toBe("READY");
    expect(seen.map((e) => e.event)).toEqual(["prefect.work-pool.ready"]);
    expect(seen[0]!.id).toBe((await t.server.db.workPools.get(pool.id))?.last_status_event_id);
    expect((await t.server.request("POST", "/work_pools/p/workers/filter", { limit: 1 })).body.map((w: { name: string }) => w.name)).toEqual(["w2"]);
  });

  it("leaves a paused pool PAUSED; refuses a heartbeat without a name (422) or pool (404)", async () => {
    await createPool(t.server, { name: "p", is_paused: true, type: "process" });
    await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "w" });
    expect((await t.server.request("GET", "/work_pools/p")).body.status).toBe("PAUSED");
    const nameless = await t.server.request("POST", "/work_pools/p/workers/heartbeat");
    expect(nameless.status).toBe(422);
    expect(nameless.body.detail[0]).toMatchObject({ loc: ["body", "name"], type: "missing" });
    expect(await t.server.request("POST", "/work_pools/nope/workers/heartbeat", { name: "w" })).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
  });

  it("filters workers by status and deletes them by name", async () => {
    const pool = await createPool(t.server, { name: "p" });
    await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "online" });
    await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "gone" });
    await t.server.db.workers.markOffline({ now: addSeconds(now(), 3600) });
    await t.server.request("POST", "/work_pools/p/workers/heartbeat", { name: "online" });
    const byStatus = async (status: string) =>
      (await t.server.request("POST", "/work_pools/p/workers/filter", { workers: { status: { any_: [status] } } })).body.map((w: { name: string }) => w.name);
    expect(await byStatus("ONLINE")).toEqual(["online"]);
    expect(await byStatus("OFFLINE")).toEqual(["gone"]);
    expect((await t.server.request("POST", "/work_pools/p/workers/filter", { workers: { status: { any_: ["LOST"] } } })).status).toBe(422);
    expect((await t.server.request("DELETE", "/work_pools/p/workers/gone")).status).toBe(204);
    expect(await t.server.request("DELETE", "/work_pools/p/workers/gone")).toMatchObject({ status: 404, body: { detail: "Worker not found." } });
    expect((await t.server.db.workers.read(pool.id)).map((w) => w.name)).toEqual(["online"]);
    expect((await t.server.request("POST", "/work_pools/nope/workers/filter")).status).toBe(404);
  });
});

describeApi("work pools API: scheduled flow runs", (t) => {
  /** Pools A and B; A has queues AA (priority 2) and AB (3) besides its default; runs due over -2h..+2h. */
  async function setup() {
    const f = await flow(t.server);
    const a = await createPool(t.server, { name: "A", type: "process" });
    const b = await createPool(t.server, { name: "B", type: "process" });
    const aa = await createQueue(t.server, "A", { name: "AA" });
    const ab = await createQueue(t.server, "A", { name: "AB" });
    const runs: Record<string, string[]> = { AA: [], AB: [], B: [] };
    for (const [key, queue] of [
      ["AA", aa.id],
      ["AB", ab.id],
      ["B", b.default_queue_id],
    ] as const) {
      await seedRun(t.server, f, { work_queue_id: queue }, "RUNNING");
      for (const hours of [2, 1, 0, -1, -2]) runs[key]!.push((await seedRun(t.server, f, { work_queue_id: queue }, "SCHEDULED", hours * 3600 - 1)).id);
    }
    return { f, a, b, aa, ab, runs };
  }

  const poll = (pool: string, body?: unknown) => t.server.request("POST", `/work_pools/${enc(pool)}/get_scheduled_flow_runs`, body);
  const ids = (response: { body: { flow_run: { id: string } }[] }) => response.body.map((r) => r.flow_run.id);

  it("returns the pool's scheduled runs by queue priority, then due time, as WorkerFlowRunResponses, leaving them SCHEDULED", async () => {
    const { a, aa, runs } = await setup();
    const response = await poll("A");
    expect(response.status).toBe(200);
    expect(ids(response)).toEqual([...[...runs.AA!].reverse(), ...[...runs.AB!].reverse()]);
    expect(response.body[0]).toMatchObject({ work_pool_id: a.id, work_queue_id: aa.id, flow_run: { state_type: "SCHEDULED", work_queue_id: aa.id } });
    expect(response.body[0].flow_run).not.toHaveProperty("work_pool_name");
    for (const id of ids(response)) {
      const run = (await t.server.request("GET", `/flow_runs/${id}`)).body;
      expect(run.state_type).toBe("SCHEDULED");
      expect((await t.server.db.flowRuns.readStates(id)).map((s) => s.type)).toEqual(["SCHEDULED"]);
    }
  });

  it("narrows by queue names, due times and limit", async () => {
    const { runs } = await setup();
    expect(ids(await poll("A", { work_queue_names: ["AB"] }))).toEqual([...runs.AB!].reverse());
    expect(await poll("A", { work_queue_names: ["AA", "AB"] })).toMatchObject({ body: { length: 10 } });
    expect((await poll("A", { limit: 7 })).body).toHaveLength(7);
    expect((await poll("A", { limit: 0 })).body).toEqual([]);
    expect((await poll("A", { scheduled_before: now() })).body).toHaveLength(6);
    expect((await poll("A", { scheduled_after: now() })).body).toHaveLength(4);
    expect((await poll("A", { scheduled_before: addSeconds(now(), -3600), scheduled_after: now() })).body).toEqual([]);
    expect((await poll("B")).body).toHaveLength(5);
  });

  it("answers 404 for unknown pools and queues, and 422 for bad bodies", async () => {
    await setup();
    expect(await poll("nope")).toMatchObject({ status: 404, body: { detail: 'Work pool "nope" not found.' } });
    expect(await poll("A", { work_queue_names: ["AA", "BA"] })).toMatchObject({ status: 404, body: { detail: "Work pool queue 'A/BA' not found." } });
    // B's default queue is not one of A's.
    expect((await poll("A", { work_queue_names: ["default", "AA"] })).status).toBe(200);
    expect((await poll("A", { limit: -1 })).status).toBe(422);
    expect((await poll("A", { scheduled_before: "yesterday" })).status).toBe(422);
  });

  it("passes over paused pools, queues and deployments", async () => {
    const { f, aa, runs } = await setup();
    await t.server.request("PATCH", "/work_pools/A/queues/AA", { is_paused: true });
    expect(ids(await poll("A"))).toEqual([...runs.AB!].reverse());
    expect((await poll("A", { work_queue_names: ["AA"] })).body).toEqual([]);
    await t.server.request("PATCH", "/work_pools/A/queues/AA", { is_paused: false });
    const { row: paused } = await t.server.db.deployments.create({ name: "paused", flow_id: f, work_queue_id: aa.id, paused: true });
    const ofPaused = await seedRun(t.server, f, { work_queue_id: aa.id, deployment_id: paused.id }, "SCHEDULED", -7200);
    expect(ids(await poll("A"))).not.toContain(ofPaused.id);
    await t.server.request("PATCH", "/work_pools/A", { is_paused: true });
    expect((await poll("A")).body).toEqual([]);
  });

  it("honours the pool's and the queues' concurrency limits (PENDING and RUNNING runs hold slots)", async () => {
    const { aa, runs } = await setup();
    await t.server.request("PATCH", "/work_pools/A/queues/AA", { concurrency_limit: 3 });
    // AA has one RUNNING run: two of its runs fit, earliest first.
    expect(ids(await poll("A", { work_queue_names: ["AA"] }))).toEqual([runs.AA![4], runs.AA![3]]);
    await seedRun(t.server, await flow(t.server), { work_queue_id: aa.id }, "PENDING");
    expect(ids(await poll("A", { work_queue_names: ["AA"] }))).toEqual([runs.AA![4]]);
    // The pool has a RUNNING run in AA and one in AB, and the PENDING one: two slots left, AA first.
    await t.server.request("PATCH", "/work_pools/A", { concurrency_limit: 5 });
    expect(ids(await poll("A"))).toEqual([runs.AA![4], runs.AB![4]]);
    await t.server.request("PATCH", "/work_pools/A", { concurrency_limit: 3 });
    expect((await poll("A")).body).toEqual([]);
  });

  it("marks the polled queues polled and READY, and their deployments READY, after answering", async () => {
    const { f, a, aa, ab } = await setup();
    const { row: deployment } = await t.server.db.deployments.create({ name: "d", flow_id: f, work_queue_id: aa.id });
    const { row: elsewhere } = await t.server.db.deployments.create({ name: "e", flow_id: f, work_queue_id: ab.id });
    const seen = collect(t.server);
    const before = now();
    await poll("A", { work_queue_names: ["AA"] });
    await pollsRecorded(t.server);
    const queues = (await t.server.request("POST", "/work_pools/A/queues/filter")).body;
    const byName = Object.fromEntries(queues.map((q: { name: string }) => [q.name, q]));
    expect(byName.AA).toMatchObject({ status: "READY" });
    expect(byName.AA.last_polled >= before).toBe(true);
    expect(byName.AB).toMatchObject({ status: "NOT_READY", last_polled: null });
    expect(byName.default).toMatchObject({ last_polled: null });
    expect(await t.server.db.deployments.get(deployment.id)).toMatchObject({ status: "READY" });
    expect(await t.server.db.deployments.get(elsewhere.id)).toMatchObject({ status: "NOT_READY" });
    expect(seen.map((e) => e.event).sort()).toEqual(["prefect.deployment.ready", "prefect.work-queue.ready"]);
    const queueEvent = seen.find((e) => e.event === "prefect.work-queue.ready")!;
    expect(queueEvent.resource["prefect.resource.id"]).toBe(`prefect.work-queue.${aa.id}`);
    expect(queueEvent.related?.[0]).toMatchObject({ "prefect.resource.id": `prefect.work-pool.${a.id}` });
    const deploymentEvent = seen.find((e) => e.event === "prefect.deployment.ready")!;
    expect(deploymentEvent.resource).toEqual({ "prefect.resource.id": `prefect.deployment.${deployment.id}`, "prefect.resource.name": "d" });
    expect(deploymentEvent.related?.map((r) => r["prefect.resource.role"])).toEqual(["flow", "work-queue", "work-pool"]);

    // Polling the whole pool marks every queue of it, paused ones too; what is READY stays so, quietly.
    await t.server.request("PATCH", "/work_pools/A/queues/AB", { is_paused: true });
    seen.length = 0;
    await poll("A");
    await pollsRecorded(t.server);
    const after = (await t.server.request("POST", "/work_pools/A/queues/filter")).body;
    for (const queue of after) expect(queue.last_polled).not.toBeNull();
    expect(Object.fromEntries(after.map((q: { name: string; status: string }) => [q.name, q.status]))).toEqual({ default: "READY", AA: "READY", AB: "PAUSED" });
    expect(seen.map((e) => e.event).sort()).toEqual(["prefect.deployment.ready", "prefect.work-queue.ready"]);
    expect(await t.server.db.deployments.get(elsewhere.id)).toMatchObject({ status: "READY" });
  });

  it("lets many workers poll at once, and only one of them move a run to PENDING", async () => {
    const { runs } = await setup();
    const polls = await Promise.all(Array.from({ length: 6 }, () => poll("A", { work_queue_names: ["AA"], limit: 2 })));
    for (const response of polls) expect(ids(response)).toEqual([runs.AA![4], runs.AA![3]]);
    const target = runs.AA![4]!;
    const proposals = await Promise.all(
      polls.map(() => t.server.request("POST", `/flow_runs/${target}/set_state`, { state: { type: "PENDING" } })),
    );
    expect(proposals.filter((p) => p.body.status === "ACCEPT")).toHaveLength(1);
    expect(proposals.filter((p) => p.body.status === "ABORT")).toHaveLength(5);
    await pollsRecorded(t.server);
    expect(ids(await poll("A", { work_queue_names: ["AA"], limit: 2 }))).toEqual([runs.AA![3], runs.AA![2]]);
  });
});

describeApi("work pools API: concurrency status", (t) => {
  async function setup() {
    const f = await flow(t.server);
    const pool = await createPool(t.server, { name: "concurrency-pool", type: "test", concurrency_limit: 10 });
    const qa = await createQueue(t.server, "concurrency-pool", { name: "queue-a", concurrency_limit: 5 });
    const qb = await createQueue(t.server, "concurrency-pool", { name: "queue-b" });
    const running = [await seedRun(t.server, f, { work_queue_id: qa.id }, "RUNNING"), await seedRun(t.server, f, { work_queue_id: qa.id }, "RUNNING")];
    const pending = await seedRun(t.server, f, { work_queue_id: qb.id }, "PENDING");
    await seedRun(t.server, f, { work_queue_id: qb.id }, "CANCELLING");
    await seedRun(t.server, f, { work_queue_id: qa.id }, "COMPLETED");
    return { pool, qa, qb, running, pending };
  }
  const status = (body?: unknown, name = "concurrency-pool") => t.server.request("POST", `/work_pools/${enc(name)}/concurrency_status`, body);

  it("shows the pool's slots per queue, with the runs holding them", async () => {
    const { qa, qb, running, pending } = await setup();
    const response = await status();
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ active_slots: 3, concurrency_limit: 10, count: 3, limit: 200, pages: 1, page: 1 });
    const byName = Object.fromEntries(response.body.queues.map((q: { queue_name: string }) => [q.queue_name, q]));
    expect(byName["queue-a"]).toMatchObject({ queue_id: qa.id, active_slots: 2, concurrency_limit: 5, flow_run_count: 2 });
    expect(byName["queue-a"].flow_runs.map((r: { id: string }) => r.id)).toEqual(running.map((r) => r.id).sort());
    expect(byName["queue-a"].flow_runs[0]).toMatchObject({ state_type: "RUNNING", state_name: "Running" });
    expect(typeof byName["queue-a"].flow_runs[0].time_in_current_state).toBe("number");
    expect(byName["queue-b"]).toMatchObject({ queue_id: qb.id, active_slots: 1, concurrency_limit: null });
    expect(byName["queue-b"].flow_runs.map((r: { id: string }) => r.id)).toEqual([pending.id]);
    expect(byName.default).toMatchObject({ active_slots: 0, flow_runs: [] });
  });

  it("pages the queues and caps the runs shown per queue", async () => {
    await setup();
    const first = await status({ page: 1, limit: 1 });
    expect(first.body).toMatchObject({ page: 1, limit: 1, count: 3, pages: 3, active_slots: 3 });
    expect(first.body.queues).toHaveLength(1);
    const second = await status({ page: 2, limit: 1 });
    expect(second.body.queues[0].queue_id).not.toBe(first.body.queues[0].queue_id);
    expect((await status({ page: 999, limit: 10 })).body).toMatchObject({ queues: [], page: 999, active_slots: 3 });
    const capped = (await status({ flow_run_limit: 0 })).body.queues.find((q: { queue_name: string }) => q.queue_name === "queue-a");
    expect(capped).toMatchObject({ flow_runs: [], active_slots: 2, flow_run_count: 2 });
    expect((await status({ flow_run_limit: 201 })).status).toBe(422);
    expect((await status({ page: 0 })).status).toBe(422);
  });

  it("answers 404 for an unknown pool, and zeros for an empty one", async () => {
    expect(await status(undefined, "it's gone")).toMatchObject({ status: 404, body: { detail: `Work pool "it's gone" not found.` } });
    await createPool(t.server, { name: "empty" });
    expect((await status(undefined, "empty")).body).toMatchObject({ active_slots: 0, concurrency_limit: null, count: 1, page: 1 });
  });
});
