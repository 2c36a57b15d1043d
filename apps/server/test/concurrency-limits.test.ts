import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { describeApi } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const NOT_FOUND = { status: 404, body: { detail: "Concurrency limit not found" } };

describeApi(
  "tag concurrency limits (v1) API",
  (t) => {
    const create = (tag: string, limit: number) => t.server.request("POST", "/concurrency_limits/", { tag, concurrency_limit: limit });
    const byTag = async (tag: string) => (await t.server.request("GET", `/concurrency_limits/tag/${encodeURIComponent(tag)}`)).body;
    const increment = (names: string[], taskRunId: string) => t.server.request("POST", "/concurrency_limits/increment", { names, task_run_id: taskRunId });
    const decrement = (names: string[], taskRunId: string) => t.server.request("POST", "/concurrency_limits/decrement", { names, task_run_id: taskRunId });
    const v2Slots = async (tag: string) => (await t.server.request("GET", `/v2/concurrency_limits/tag:${encodeURIComponent(tag)}`)).body.active_slots as number;

    it("creates a tag limit (201) kept as the global limit `tag:<tag>`, and updates its limit on a second create (200)", async () => {
      const created = await create("database", 2);
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.any(String),
        created: expect.any(String),
        updated: expect.any(String),
        tag: "database",
        concurrency_limit: 2,
        active_slots: [],
      });
      expect(await t.server.request("GET", `/concurrency_limits/${created.body.id}`)).toMatchObject({ status: 200, body: { id: created.body.id, tag: "database" } });
      expect(await byTag("database")).toMatchObject({ id: created.body.id, concurrency_limit: 2 });
      expect(await t.server.request("GET", "/v2/concurrency_limits/tag:database")).toMatchObject({
        status: 200,
        body: { id: created.body.id, name: "tag:database", limit: 2, active: true, active_slots: 0 },
      });

      const again = await create("database", 5);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ id: created.body.id, concurrency_limit: 5 });
      expect(await byTag("database")).toMatchObject({ concurrency_limit: 5 });

      // A global limit named `tag:<tag>` is a tag limit too.
      const v2 = await t.server.request("POST", "/v2/concurrency_limits/", { name: "tag:api", limit: 3 });
      expect(await byTag("api")).toMatchObject({ id: v2.body.id, tag: "api", concurrency_limit: 3, active_slots: [] });
    });

    it("publishes the global limit's lifecycle events", async () => {
      const seen: ReceivedEvent[] = [];
      t.server.context.events.subscribe((events) => seen.push(...events));
      const created = await create("evented", 1);
      await create("evented", 4);
      await t.server.request("DELETE", "/concurrency_limits/tag/evented");
      expect(seen.map((e) => e.event)).toEqual(["prefect.concurrency-limit.created", "prefect.concurrency-limit.updated", "prefect.concurrency-limit.deleted"]);
      expect(seen[1]!.resource).toEqual({ "prefect.resource.id": `prefect.concurrency-limit.${created.body.id}`, "prefect.resource.name": "tag:evented" });
      expect(seen[1]!.payload).toEqual({ name: "tag:evented", limit: 4, active: true, slot_decay_per_second: 0 });
    });

    it("answers 404 'Concurrency limit not found' for unknown ids and tags, and 404 'Not Found' for ids that are not UUIDs", async () => {
      await t.server.request("POST", "/v2/concurrency_limits/", { name: "global", limit: 1 });
      const global = await t.server.request("GET", "/v2/concurrency_limits/global");
      expect(await t.server.request("GET", `/concurrency_limits/${MISSING}`)).toMatchObject(NOT_FOUND);
      // A global limit that is not a tag limit is no v1 limit.
      expect(await t.server.request("GET", `/concurrency_limits/${global.body.id}`)).toMatchObject(NOT_FOUND);
      expect(await t.server.request("GET", "/concurrency_limits/tag/nope")).toMatchObject(NOT_FOUND);
      expect(await t.server.request("DELETE", `/concurrency_limits/${MISSING}`)).toMatchObject(NOT_FOUND);
      expect(await t.server.request("DELETE", "/concurrency_limits/tag/nope")).toMatchObject(NOT_FOUND);
      expect(await t.server.request("POST", "/concurrency_limits/tag/nope/reset", {})).toMatchObject(NOT_FOUND);
      expect(await t.server.request("GET", "/concurrency_limits/not-a-uuid")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
      expect((await t.server.request("GET", "/v2/concurrency_limits/global")).status).toBe(200);
    });

    it("answers bad bodies with 422, writing nothing", async () => {
      const missing = await t.server.request("POST", "/concurrency_limits/", { tag: "x" });
      expect(missing.status).toBe(422);
      expect(missing.body.detail).toEqual([expect.objectContaining({ loc: ["body", "concurrency_limit"], msg: "Field required" })]);
      expect((await t.server.request("POST", "/concurrency_limits/", { tag: "x", concurrency_limit: 1, extra: 1 })).status).toBe(422);
      expect((await t.server.request("POST", "/concurrency_limits/", { tag: "x", concurrency_limit: 1.5 })).status).toBe(422);
      // Characters a limit name cannot hold, and negative limits.
      expect((await create("a/b", 1)).status).toBe(422);
      expect((await create("y", -1)).status).toBe(422);
      expect((await increment(["x"], "not-a-uuid")).status).toBe(422);
      expect((await t.server.request("POST", "/concurrency_limits/decrement", { names: ["x"] })).status).toBe(422);
      expect((await t.server.request("POST", "/concurrency_limits/filter", { limit: 500 })).status).toBe(422);
      expect((await t.server.request("POST", "/concurrency_limits/tag/x/reset", { slot_override: ["nope"] })).status).toBe(422);
      expect((await t.server.request("POST", "/concurrency_limits/filter", {})).body).toEqual([]);
    });

    it("filters tag limits by tag with limit and offset, leaving other global limits out", async () => {
      for (const tag of ["c", "a", "b"]) await create(tag, 1);
      await t.server.request("POST", "/v2/concurrency_limits/", { name: "not-a-tag", limit: 1 });
      const tags = async (body: Record<string, unknown>) => (await t.server.request("POST", "/concurrency_limits/filter", body)).body.map((l: { tag: string }) => l.tag);
      expect(await tags({})).toEqual(["a", "b", "c"]);
      expect(await tags({ limit: 1, offset: 1 })).toEqual(["b"]);
      expect(await tags({ offset: 3 })).toEqual([]);
    });

    it("takes a slot on every tag's limit for a task run, all or nothing, and lists the task runs holding them", async () => {
      const db = await create("db", 2);
      const api = await create("api", 1);
      const [first, second, third] = [randomUUID(), randomUUID(), randomUUID()];

      const taken = await increment(["db", "api", "untagged"], first);
      expect(taken.status).toBe(200);
      expect(taken.body).toEqual([
        { id: db.body.id, name: "db", limit: 2 },
        { id: api.body.id, name: "api", limit: 1 },
      ]);
      expect((await byTag("db")).active_slots).toEqual([first]);
      expect((await t.server.request("GET", `/concurrency_limits/${api.body.id}`)).body.active_slots).toEqual([first]);
      expect((await t.server.request("POST", "/concurrency_limits/filter", {})).body.find((l: { tag: string }) => l.tag === "db").active_slots).toEqual([first]);

      // `api` is full: the call is refused and takes nothing on `db`.
      const refused = await increment(["db", "api"], second);
      expect(refused).toMatchObject({ status: 423, body: { detail: "Concurrency limit for the api tag has been reached" } });
      expect(refused.headers.get("retry-after")).toBe("10");
      expect((await byTag("db")).active_slots).toEqual([first]);
      expect(await v2Slots("db")).toBe(1);

      expect((await increment(["db"], third)).status).toBe(200);
      expect((await byTag("db")).active_slots.sort()).toEqual([first, third].sort());

      const released = await decrement(["db", "api"], first);
      expect(released.status).toBe(200);
      // Prefect names the global limits by their own names here.
      expect(released.body.map((l: { name: string }) => l.name).sort()).toEqual(["tag:api", "tag:db"]);
      expect((await byTag("db")).active_slots).toEqual([third]);
      expect((await byTag("api")).active_slots).toEqual([]);
      expect([await v2Slots("db"), await v2Slots("api")]).toEqual([1, 0]);
      // Releasing again frees nothing.
      await decrement(["db", "api"], first);
      expect([await v2Slots("db"), await v2Slots("api")]).toEqual([1, 0]);
      expect(await increment([], second)).toMatchObject({ status: 200, body: [] });
    });

    it("refuses a limit of 0 with 423 (the task would deadlock), taking nothing", async () => {
      await create("open", 5);
      await create("closed", 0);
      const refused = await increment(["open", "closed"], randomUUID());
      expect(refused).toMatchObject({
        status: 423,
        body: { detail: 'The concurrency limit on tag "closed" is 0 and will deadlock if the task tries to run again.' },
      });
      expect(refused.headers.get("retry-after")).toBeNull();
      expect(await v2Slots("open")).toBe(0);
    });

    it("resets a limit's slots to the task runs given, dropping the leases it had", async () => {
      await create("reset-me", 3);
      await create("other", 3);
      const [holder, both, kept1, kept2] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      await increment(["reset-me"], holder);
      await increment(["reset-me", "other"], both);
      expect(await v2Slots("reset-me")).toBe(2);

      const reset = await t.server.request("POST", "/concurrency_limits/tag/reset-me/reset", { slot_override: [kept1, kept2, kept1] });
      expect(reset).toMatchObject({ status: 200, body: null });
      expect((await byTag("reset-me")).active_slots.sort()).toEqual([kept1, kept2].sort());
      expect(await v2Slots("reset-me")).toBe(2);
      // The old holders no longer hold a slot here; `both` still holds its slot on `other`.
      expect((await byTag("other")).active_slots).toEqual([both]);
      await decrement(["reset-me", "other"], both);
      await decrement(["reset-me"], holder);
      expect([await v2Slots("reset-me"), await v2Slots("other")]).toEqual([2, 0]);

      await decrement(["reset-me"], kept1);
      expect((await byTag("reset-me")).active_slots).toEqual([kept2]);
      expect((await t.server.request("POST", "/concurrency_limits/tag/reset-me/reset", {})).status).toBe(200);
      expect((await byTag("reset-me")).active_slots).toEqual([]);
      expect(await v2Slots("reset-me")).toBe(0);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });

    it("deletes by id and by tag (200), dropping its leases but not their slots on other limits", async () => {
      const gone = await create("gone", 2);
      await create("stays", 2);
      await create("by-tag", 2);
      const run = randomUUID();
      await increment(["gone", "stays"], run);

      const deleted = await t.server.request("DELETE", `/concurrency_limits/${gone.body.id}`);
      expect(deleted).toMatchObject({ status: 200, body: null });
      expect(await t.server.request("GET", `/concurrency_limits/${gone.body.id}`)).toMatchObject(NOT_FOUND);
      expect((await t.server.request("GET", "/v2/concurrency_limits/tag:gone")).status).toBe(404);
      // The run's lease still gives back its slot on `stays`.
      expect((await byTag("stays")).active_slots).toEqual([run]);
      await decrement(["gone", "stays"], run);
      expect(await v2Slots("stays")).toBe(0);

      await increment(["by-tag"], run);
      expect((await t.server.request("DELETE", "/concurrency_limits/tag/by-tag")).status).toBe(200);
      expect(await t.server.request("GET", "/concurrency_limits/tag/by-tag")).toMatchObject(NOT_FOUND);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });
  },
  { PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED: "false" },
);

describeApi("tag concurrency limits with task runs", (t) => {
  const flowRun = async () => {
    const flow = await t.server.request("POST", "/flows/", { name: "etl" });
    const run = await t.server.request("POST", "/flow_runs/", { flow_id: flow.body.id });
    await t.server.request("POST", `/flow_runs/${run.body.id}/set_state`, { state: { type: "RUNNING" } });
    return run.body.id as string;
  };
  const taskRun = async (flowRunId: string, tags: string[]) =>
    (await t.server.request("POST", "/task_runs/", { flow_run_id: flowRunId, task_key: "t", dynamic_key: randomUUID(), tags })).body.id as string;
  const setState = (id: string, type: string) => t.server.request("POST", `/task_runs/${id}/set_state`, { state: { type } });
  const holders = async (tag: string) => (await t.server.request("GET", `/concurrency_limits/tag/${tag}`)).body.active_slots as string[];

  it("counts task runs' slots taken by orchestration, shown through both APIs, and refuses the API's increment when full", async () => {
    await t.server.request("POST", "/concurrency_limits/", { tag: "db", concurrency_limit: 1 });
    const flow = await flowRun();
    const first = await taskRun(flow, ["db"]);
    const second = await taskRun(flow, ["db"]);

    expect((await setState(first, "RUNNING")).body).toMatchObject({ status: "ACCEPT" });
    expect(await holders("db")).toEqual([first]);
    expect((await t.server.request("GET", "/v2/concurrency_limits/tag:db")).body.active_slots).toBe(1);

    const waiting = await setState(second, "RUNNING");
    expect(waiting.body).toMatchObject({ status: "WAIT", details: { type: "wait_details" } });
    expect((await t.server.request("POST", "/concurrency_limits/increment", { names: ["db"], task_run_id: randomUUID() })).status).toBe(423);

    expect((await setState(first, "COMPLETED")).body).toMatchObject({ status: "ACCEPT" });
    expect(await holders("db")).toEqual([]);
    expect((await setState(second, "RUNNING")).body).toMatchObject({ status: "ACCEPT" });
    expect(await holders("db")).toEqual([second]);
  });

  it("frees a slot the API gave a task run when orchestration moves the run out of RUNNING", async () => {
    await t.server.request("POST", "/concurrency_limits/", { tag: "gpu", concurrency_limit: 2 });
    const flow = await flowRun();
    const run = await taskRun(flow, ["gpu"]);
    expect((await t.server.request("POST", "/concurrency_limits/increment", { names: ["gpu"], task_run_id: run })).status).toBe(200);
    // Already holding its slot, the run takes no second one entering RUNNING.
    expect((await setState(run, "RUNNING")).body).toMatchObject({ status: "ACCEPT" });
    expect((await t.server.request("GET", "/v2/concurrency_limits/tag:gpu")).body.active_slots).toBe(1);
    expect((await setState(run, "COMPLETED")).body).toMatchObject({ status: "ACCEPT" });
    expect(await holders("gpu")).toEqual([]);
    expect((await t.server.request("GET", "/v2/concurrency_limits/tag:gpu")).body.active_slots).toBe(0);
    expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
  });
});
