import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidError, NotFoundError, type WorkPool } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const TEMPLATE = {
  job_configuration: { command: "{{ command }}", env: { IMAGE: "{{image}}" } },
  variables: { properties: { command: { type: "string" }, image: { type: "string" } } },
};

describeEachBackend("work pools", (t) => {
  describe("create", () => {
    it("creates a pool with Prefect's defaults", async () => {
      const pool = await t.db.workPools.create({ name: "My Test Pool" });
      expect(pool).toMatchObject({
        name: "My Test Pool",
        type: "prefect-agent",
        description: null,
        is_paused: false,
        concurrency_limit: null,
        base_job_template: {},
        status: "NOT_READY",
        storage_configuration: { bundle_upload_step: null, bundle_execution_step: null, default_result_storage_block_id: null },
      });
      expect(await t.db.workPools.get(pool.id)).toEqual(pool);
    });

    it("creates a pool with options; a paused pool starts PAUSED", async () => {
      const pool = await t.db.workPools.create({
        name: "k8s",
        type: "kubernetes",
        description: "cluster",
        is_paused: true,
        concurrency_limit: 5,
        base_job_template: TEMPLATE,
        storage_configuration: { bundle_upload_step: { step: 1 } },
      });
      expect(pool).toMatchObject({ type: "kubernetes", description: "cluster", is_paused: true, concurrency_limit: 5, status: "PAUSED" });
      expect((await t.db.workPools.getByName("k8s"))?.base_job_template).toEqual(TEMPLATE);
      expect((await t.db.workPools.get(pool.id))?.storage_configuration.bundle_upload_step).toEqual({ step: 1 });
    });

    it("keeps the type as given", async () => {
      for (const type of ["PROCESS", "K8S", "AGENT"]) {
        expect((await t.db.workPools.create({ name: `typed-${type}`, type })).type).toBe(type);
      }
    });

    it("creates the pool's default queue with priority 1 and points at it", async () => {
      const pool = await t.db.workPools.create({ name: "pool" });
      const queue = await t.db.workQueues.get(pool.default_queue_id!);
      expect(queue).toMatchObject({ name: "default", priority: 1, work_pool_id: pool.id, work_pool_name: "pool", is_paused: false });
      expect((await t.db.workQueues.read(pool.id)).map((q) => q.id)).toEqual([pool.default_queue_id]);
    });

    it("refuses a name that is taken", async () => {
      await t.db.workPools.create({ name: "dup" });
      await expect(t.db.workPools.create({ name: "dup" })).rejects.toBeInstanceOf(AlreadyExistsError);
      expect(await t.db.workPools.count()).toBe(1);
      expect(await t.db.workQueues.read((await t.db.workPools.getByName("dup"))!.id)).toHaveLength(1);
    });

    it("refuses names Prefect refuses", async () => {
      for (const name of ["hi/there", "hi%there", "a&b", "a>b", "a<b", "", "  ", "' '", '""']) {
        await expect(t.db.workPools.create({ name })).rejects.toBeInstanceOf(InvalidError);
      }
      expect(await t.db.workPools.count()).toBe(0);
    });

    it("refuses a negative concurrency limit and a template with undeclared variables", async () => {
      await expect(t.db.workPools.create({ name: "neg", concurrency_limit: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workPools.create({ name: "half", base_job_template: { job_configuration: { a: 1 } } })).rejects.toThrow(
        /must contain both a `job_configuration` key and a `variables` key/,
      );
      await expect(
        t.db.workPools.create({ name: "undeclared", base_job_template: { job_configuration: { c: "{{ missing }}" }, variables: { properties: { x: {} } } } }),
      ).rejects.toThrow(/undeclared variable\(s\): missing/);
    });
  });

  describe("read and count", () => {
    let a: WorkPool;
    let b: WorkPool;
    let c: WorkPool;
    const setup = async () => {
      c = await t.db.workPools.create({ name: "c", type: "process" });
      a = await t.db.workPools.create({ name: "a", type: "kubernetes" });
      b = await t.db.workPools.create({ name: "b", type: "process" });
    };

    it("reads pools by name, with offset and limit", async () => {
      await setup();
      expect((await t.db.workPools.read()).map((p) => p.name)).toEqual(["a", "b", "c"]);
      expect((await t.db.workPools.read({ offset: 1 })).map((p) => p.name)).toEqual(["b", "c"]);
      expect((await t.db.workPools.read({ limit: 1, offset: 1 })).map((p) => p.name)).toEqual(["b"]);
      expect(await t.db.workPools.read({ limit: 0 })).toEqual([]);
    });

    it("filters by id, name and type", async () => {
      await setup();
      const names = async (work_pools: Parameters<typeof t.db.workPools.read>[0]) => (await t.db.workPools.read(work_pools)).map((p) => p.name);
      expect(await names({ work_pools: { id: { any_: [a.id, c.id] } } })).toEqual(["a", "c"]);
      expect(await names({ work_pools: { name: { any_: ["b", "nope"] } } })).toEqual(["b"]);
      expect(await names({ work_pools: { type: { any_: ["process"] } } })).toEqual(["b", "c"]);
      expect(await names({ work_pools: { type: { any_: ["process"] }, name: { any_: ["c"] } } })).toEqual(["c"]);
      expect(await names({ work_pools: { operator: "or_", type: { any_: ["kubernetes"] }, name: { any_: ["c"] } } })).toEqual(["a", "c"]);
      expect(await names({ work_pools: { name: { any_: [] } } })).toEqual([]);
      expect(b.type).toBe("process");
    });

    it("counts pools, filtered", async () => {
      await setup();
      expect(await t.db.workPools.count()).toBe(3);
      expect(await t.db.workPools.count({ work_pools: { name: { any_: ["not-my-work-pool"] } } })).toBe(0);
      expect(await t.db.workPools.count({ work_pools: { type: { any_: ["process"] } } })).toBe(2);
    });

    it("returns null for an unknown id or name and refuses a malformed id", async () => {
      expect(await t.db.workPools.get("00000000-0000-4000-8000-000000000000")).toBeNull();
      expect(await t.db.workPools.getByName("missing")).toBeNull();
      await expect(t.db.workPools.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("refuses an unknown filter field", async () => {
      await expect(t.db.workPools.read({ work_pools: { nme: {} } as never })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("update", () => {
    it("changes only the fields given", async () => {
      const pool = await t.db.workPools.create({ name: "p", type: "process", description: "d", concurrency_limit: 2 });
      const updated = await t.db.workPools.update(pool.id, { concurrency_limit: 5, base_job_template: TEMPLATE });
      expect(updated).toMatchObject({ description: "d", concurrency_limit: 5, base_job_template: TEMPLATE, is_paused: false, status: "NOT_READY" });
      expect(updated.updated > pool.updated).toBe(true);
      expect(await t.db.workPools.get(pool.id)).toEqual(updated);
      expect(await t.db.workPools.update(pool.id, { concurrency_limit: 0 })).toMatchObject({ concurrency_limit: 0 });
      expect(await t.db.workPools.update(pool.id, { concurrency_limit: null, description: null })).toMatchObject({ concurrency_limit: null, description: null });
      const storage = { bundle_upload_step: { a: 1 }, bundle_execution_step: null, default_result_storage_block_id: null };
      expect((await t.db.workPools.update(pool.id, { storage_configuration: storage })).storage_configuration).toEqual(storage);
    });

    it("refuses a negative limit and an unknown pool", async () => {
      const pool = await t.db.workPools.create({ name: "p" });
      await expect(t.db.workPools.update(pool.id, { concurrency_limit: -5 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workPools.update("00000000-0000-4000-8000-000000000000", { description: "x" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("pausing makes the pool PAUSED, unpausing NOT_READY, or READY with an online worker", async () => {
      const pool = await t.db.workPools.create({ name: "p", type: "process" });
      const paused = await t.db.workPools.update(pool.id, { is_paused: true });
      expect(paused).toMatchObject({ is_paused: true, status: "PAUSED" });
      expect(paused.last_transitioned_status_at).not.toBeNull();
      expect(paused.last_status_event_id).not.toBeNull();
      expect(await t.db.workPools.update(pool.id, { is_paused: false })).toMatchObject({ is_paused: false, status: "NOT_READY" });

      await t.db.workPools.update(pool.id, { is_paused: true });
      await t.db.workers.heartbeat(pool.id, { name: "w" });
      expect((await t.db.workPools.get(pool.id))?.status).toBe("PAUSED");
      const resumed = await t.db.workPools.update(pool.id, { is_paused: false });
      expect(resumed.status).toBe("READY");
      expect(resumed.last_status_event_id).not.toBe(paused.last_status_event_id);
    });

    it("leaves the status of agent pools alone", async () => {
      const pool = await t.db.workPools.create({ name: "agents", is_paused: true });
      expect(pool.status).toBe("NOT_READY");
      expect(await t.db.workPools.update(pool.id, { is_paused: false })).toMatchObject({ is_paused: false, status: "NOT_READY" });
    });
  });

  describe("delete", () => {
    it("deletes the pool with its queues and workers", async () => {
      const pool = await t.db.workPools.create({ name: "doomed" });
      const queue = await t.db.workQueues.create(pool.id, { name: "extra" });
      await t.db.workers.heartbeat(pool.id, { name: "w" });
      await t.db.workPools.delete(pool.id);
      expect(await t.db.workPools.get(pool.id)).toBeNull();
      expect(await t.db.workQueues.get(pool.default_queue_id!)).toBeNull();
      expect(await t.db.workQueues.get(queue.id)).toBeNull();
      expect(await t.db.workers.read(pool.id)).toEqual([]);
      await expect(t.db.workPools.delete(pool.id)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("keeps the pool's runs, without their queue", async () => {
      const pool = await t.db.workPools.create({ name: "doomed" });
      const { row: flow } = await t.db.flows.create({ name: "f" });
      const { row: run } = await t.db.flowRuns.create({ flow_id: flow.id, work_queue_id: pool.default_queue_id });
      await t.db.workPools.delete(pool.id);
      expect((await t.db.flowRuns.get(run.id))?.work_queue_id).toBeNull();
    });

    it("leaves other pools alone", async () => {
      const keep = await t.db.workPools.create({ name: "keep" });
      const doomed = await t.db.workPools.create({ name: "doomed" });
      await t.db.workPools.delete(doomed.id);
      expect(await t.db.workPools.get(keep.id)).toEqual(keep);
      expect(await t.db.workQueues.read(keep.id)).toHaveLength(1);
    });
  });

  describe("active slots", () => {
    it("counts PENDING and RUNNING runs of every queue in the pool, paused ones included", async () => {
      const pool = await t.db.workPools.create({ name: "p" });
      const other = await t.db.workPools.create({ name: "other" });
      const paused = await t.db.workQueues.create(pool.id, { name: "paused", is_paused: true });
      const { row: flow } = await t.db.flows.create({ name: "f" });
      for (const [queue, type] of [
        [pool.default_queue_id!, "RUNNING"],
        [pool.default_queue_id!, "PENDING"],
        [paused.id, "RUNNING"],
        [pool.default_queue_id!, "CANCELLING"],
        [pool.default_queue_id!, "COMPLETED"],
        [pool.default_queue_id!, "SCHEDULED"],
        [other.default_queue_id!, "RUNNING"],
      ] as const) {
        await t.db.flowRuns.create({ flow_id: flow.id, work_queue_id: queue, state: { type } });
      }
      expect(await t.db.workPools.countActiveSlots([pool.id, other.id])).toEqual(
        new Map([
          [pool.id, 3],
          [other.id, 1],
        ]),
      );
      expect(await t.db.workQueues.countActiveSlots([pool.default_queue_id!, paused.id])).toEqual(
        new Map([
          [pool.default_queue_id!, 2],
          [paused.id, 1],
        ]),
      );
      expect(await t.db.workPools.countActiveSlots([])).toEqual(new Map());
    });
  });
});
