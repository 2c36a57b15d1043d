import { beforeEach, describe, expect, it } from "vitest";
import { AlreadyExistsError, addSeconds, InvalidError, NotFoundError, now, type WorkPool, type WorkQueue } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

describeEachBackend("work queues", (t) => {
  let pool: WorkPool;
  beforeEach(async () => {
    pool = await t.db.workPools.create({ name: "pool" });
  });

  const priorities = async () => Object.fromEntries((await t.db.workQueues.read(pool.id)).map((q) => [q.name, q.priority]));

  describe("create", () => {
    it("creates a queue with Prefect's defaults, after the default queue", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      expect(queue).toMatchObject({
        name: "A",
        work_pool_id: pool.id,
        work_pool_name: "pool",
        description: "",
        is_paused: false,
        concurrency_limit: null,
        priority: 2,
        status: "NOT_READY",
        last_polled: null,
        filter: null,
      });
      expect(await t.db.workQueues.get(queue.id)).toEqual(queue);
    });

    it("creates a queue with options", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A", is_paused: true, concurrency_limit: 5, description: "d" });
      expect(queue).toMatchObject({ is_paused: true, concurrency_limit: 5, description: "d", status: "PAUSED" });
    });

    it("gives new queues the next priorities", async () => {
      for (const name of "ABC") await t.db.workQueues.create(pool.id, { name });
      expect(await priorities()).toEqual({ default: 1, A: 2, B: 3, C: 4 });
    });

    it("takes the first free priority when there is a gap", async () => {
      await t.db.workQueues.create(pool.id, { name: "A", priority: 5 });
      expect((await t.db.workQueues.create(pool.id, { name: "B" })).priority).toBe(2);
    });

    it("moves the queue holding a priority given to a new one", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A", priority: 1 });
      expect(queue.priority).toBe(1);
      expect((await t.db.workQueues.get(pool.default_queue_id!))?.priority).toBe(2);
    });

    it("refuses a name the pool already has, but not one another pool has", async () => {
      await t.db.workQueues.create(pool.id, { name: "A" });
      await expect(t.db.workQueues.create(pool.id, { name: "A" })).rejects.toBeInstanceOf(AlreadyExistsError);
      const other = await t.db.workPools.create({ name: "other" });
      expect((await t.db.workQueues.create(other.id, { name: "A" })).work_pool_id).toBe(other.id);
    });

    it("refuses bad names, priorities and limits, and unknown pools", async () => {
      for (const name of ["hi/there", "hi%there", ""]) {
        await expect(t.db.workQueues.create(pool.id, { name })).rejects.toBeInstanceOf(InvalidError);
      }
      await expect(t.db.workQueues.create(pool.id, { name: "A", priority: 0 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workQueues.create(pool.id, { name: "A", concurrency_limit: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workQueues.create(MISSING, { name: "A" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("keeps priorities distinct when queues are created concurrently", async () => {
      await Promise.all([..."ABCDEFGH"].map((name) => t.db.workQueues.create(pool.id, { name })));
      const taken = Object.values(await priorities());
      expect(new Set(taken).size).toBe(9);
    });
  });

  describe("read", () => {
    let queues: Record<string, WorkQueue>;
    beforeEach(async () => {
      queues = {};
      for (const name of ["marvin", "Marvin-robot", "sad-marvin", "a_b", "axb"]) queues[name] = await t.db.workQueues.create(pool.id, { name });
    });
    const names = async (work_queues?: Parameters<typeof t.db.workQueues.read>[1]) => (await t.db.workQueues.read(pool.id, work_queues)).map((q) => q.name);

    it("reads the pool's queues by priority, with offset and limit", async () => {
      await t.db.workQueues.update(queues.axb!.id, { priority: 1 });
      expect(await names()).toEqual(["axb", "default", "marvin", "Marvin-robot", "sad-marvin", "a_b"]);
      expect(await names({ limit: 2 })).toEqual(["axb", "default"]);
      expect(await names({ offset: 4 })).toEqual(["sad-marvin", "a_b"]);
      expect(await t.db.workQueues.read((await t.db.workPools.create({ name: "empty" })).id, { work_queues: { name: { any_: ["marvin"] } } })).toEqual([]);
    });

    it("filters by id and name", async () => {
      expect(await names({ work_queues: { id: { any_: [queues.marvin!.id, pool.default_queue_id!] } } })).toEqual(["default", "marvin"]);
      expect(await names({ work_queues: { name: { any_: ["sad-marvin", "nope"] } } })).toEqual(["sad-marvin"]);
    });

    it("filters by case-insensitive name prefixes, wildcards taken literally", async () => {
      expect(await names({ work_queues: { name: { startswith_: ["marvin"] } } })).toEqual(["marvin", "Marvin-robot"]);
      expect(await names({ work_queues: { name: { startswith_: ["MARVIN-", "sad"] } } })).toEqual(["Marvin-robot", "sad-marvin"]);
      expect(await names({ work_queues: { name: { startswith_: ["a_"] } } })).toEqual(["a_b"]);
      expect(await names({ work_queues: { name: { startswith_: ["%"] } } })).toEqual([]);
    });

    it("reads a queue by pool name and queue name", async () => {
      expect((await t.db.workQueues.getByName("pool", "marvin"))?.id).toBe(queues.marvin!.id);
      expect(await t.db.workQueues.getByName("pool", "missing")).toBeNull();
      expect(await t.db.workQueues.getByName("missing", "marvin")).toBeNull();
      expect(await t.db.workQueues.get(MISSING)).toBeNull();
    });
  });

  describe("update", () => {
    it("changes only the fields given", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A", concurrency_limit: 3, description: "d" });
      const updated = await t.db.workQueues.update(queue.id, { name: "B", concurrency_limit: 0 });
      expect(updated).toMatchObject({ name: "B", concurrency_limit: 0, description: "d", priority: 2 });
      expect(updated.updated > queue.updated).toBe(true);
      expect(await t.db.workQueues.update(queue.id, { concurrency_limit: null })).toMatchObject({ concurrency_limit: null });
      await expect(t.db.workQueues.update(queue.id, { concurrency_limit: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workQueues.update(MISSING, { name: "x" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("renames and reprioritises the default queue", async () => {
      await t.db.workQueues.create(pool.id, { name: "New Queue" });
      expect(await t.db.workQueues.update(pool.default_queue_id!, { name: "New Name", priority: 2 })).toMatchObject({ name: "New Name", priority: 2 });
      expect(await priorities()).toEqual({ "New Name": 2, "New Queue": 3 });
    });

    it("refuses a name another queue of the pool has", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      await expect(t.db.workQueues.update(queue.id, { name: "default" })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("pausing makes the queue PAUSED; unpausing NOT_READY, or READY when polled in the last minute", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      expect(await t.db.workQueues.update(queue.id, { is_paused: true })).toMatchObject({ is_paused: true, status: "PAUSED" });
      expect(await t.db.workQueues.update(queue.id, { is_paused: false })).toMatchObject({ is_paused: false, status: "NOT_READY" });
      await t.db.workQueues.update(queue.id, { is_paused: true });
      expect(await t.db.workQueues.update(queue.id, { is_paused: false, last_polled: now() })).toMatchObject({ status: "READY" });
      await t.db.workQueues.update(queue.id, { is_paused: true, last_polled: addSeconds(now(), -120) });
      expect(await t.db.workQueues.update(queue.id, { is_paused: false })).toMatchObject({ status: "NOT_READY" });
    });

    it("leaves the status of an unpaused queue alone when it is unpaused again", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      await t.db.workQueues.markPolled([queue.id]);
      expect(await t.db.workQueues.update(queue.id, { is_paused: false })).toMatchObject({ status: "READY" });
    });
  });

  describe("priorities", () => {
    let queues: Record<string, WorkQueue>;
    beforeEach(async () => {
      queues = { A: await t.db.workQueues.update(pool.default_queue_id!, { name: "A" }) };
      for (const name of "BCDE") queues[name] = await t.db.workQueues.create(pool.id, { name });
    });

    it.each([
      [{ A: 2 }, { A: 2, B: 3, C: 4, D: 5, E: 6 }],
      [{ A: 5 }, { B: 2, C: 3, D: 4, E: 6, A: 5 }],
      [{ E: 1 }, { E: 1, A: 2, B: 3, C: 4, D: 5 }],
      [{ C: 10 }, { A: 1, B: 2, D: 4, E: 5, C: 10 }],
    ])("moving %j gives %j", async (moves, expected) => {
      for (const [name, priority] of Object.entries(moves)) await t.db.workQueues.update(queues[name]!.id, { priority });
      expect(await priorities()).toEqual(expected);
    });

    it("keeps priorities as they are when a queue is deleted", async () => {
      await t.db.workQueues.delete(queues.C!.id);
      expect(await priorities()).toEqual({ A: 1, B: 2, D: 4, E: 5 });
    });
  });

  describe("delete", () => {
    it("deletes a queue; its runs stay, without a queue", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      const { row: flow } = await t.db.flows.create({ name: "f" });
      const { row: run } = await t.db.flowRuns.create({ flow_id: flow.id, work_queue_id: queue.id });
      await t.db.workQueues.delete(queue.id);
      expect(await t.db.workQueues.get(queue.id)).toBeNull();
      expect((await t.db.flowRuns.get(run.id))?.work_queue_id).toBeNull();
      await expect(t.db.workQueues.delete(queue.id)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("refuses to delete a pool's default queue", async () => {
      await expect(t.db.workQueues.delete(pool.default_queue_id!)).rejects.toThrow(/Can't delete a pool's default queue/);
      await expect(t.db.workQueues.delete(pool.default_queue_id!)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.workQueues.get(pool.default_queue_id!)).not.toBeNull();
    });
  });

  describe("polling", () => {
    it("marks polled queues READY with last_polled now; paused queues stay PAUSED", async () => {
      const a = await t.db.workQueues.create(pool.id, { name: "A" });
      const paused = await t.db.workQueues.create(pool.id, { name: "P", is_paused: true });
      const at = now();
      await t.db.workQueues.markPolled([a.id, paused.id], { now: at });
      expect(await t.db.workQueues.get(a.id)).toMatchObject({ status: "READY", last_polled: at });
      expect(await t.db.workQueues.get(paused.id)).toMatchObject({ status: "PAUSED", last_polled: at });
      expect((await t.db.workQueues.get(pool.default_queue_id!))?.status).toBe("NOT_READY");
      await t.db.workQueues.markPolled([]);
    });

    it("marks queues NOT_READY that were not polled within the timeout", async () => {
      const stale = await t.db.workQueues.create(pool.id, { name: "stale" });
      const fresh = await t.db.workQueues.create(pool.id, { name: "fresh" });
      const never = await t.db.workQueues.create(pool.id, { name: "never" });
      const start = now();
      await t.db.workQueues.markPolled([stale.id], { now: start });
      await t.db.workQueues.markPolled([fresh.id], { now: addSeconds(start, 50) });
      const marked = await t.db.workQueues.markNotReady({ now: addSeconds(start, 61), lastPolledTimeoutSeconds: 60 });
      expect(marked).toEqual([stale.id]);
      expect((await t.db.workQueues.get(stale.id))?.status).toBe("NOT_READY");
      expect((await t.db.workQueues.get(fresh.id))?.status).toBe("READY");
      expect((await t.db.workQueues.get(never.id))?.status).toBe("NOT_READY");
      expect(await t.db.workQueues.markNotReady({ now: addSeconds(start, 61) })).toEqual([]);
    });

    it("marks the deployments of polled queues READY, and stale ones NOT_READY", async () => {
      const { row: flow } = await t.db.flows.create({ name: "f" });
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      const queueId = pool.default_queue_id!;
      for (const [name, work_queue_id] of [["polled", queueId], ["elsewhere", other.id], ["unqueued", null]] as const) {
        await t.db.deployments.create({ name, flow_id: flow.id, work_queue_id });
      }
      const start = now();
      await t.db.workQueues.markDeploymentsPolled([queueId], { now: start });
      const stale = addSeconds(start, 61);
      // The queue itself was polled recently: its deployment stays READY.
      await t.db.workQueues.markPolled([queueId], { now: addSeconds(start, 30) });
      expect(await t.db.workQueues.markDeploymentsNotReady({ now: stale })).toEqual([]);
      // Neither polled within the minute: NOT_READY.
      const marked = await t.db.workQueues.markDeploymentsNotReady({ now: addSeconds(start, 120) });
      expect(marked).toHaveLength(1);
      expect(await t.db.workQueues.markDeploymentsNotReady({ now: addSeconds(start, 120) })).toEqual([]);
    });
  });
});
