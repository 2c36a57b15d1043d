/**
 * What the work pool and work queue routes need beyond plain reads and writes: changes reported with
 * the row as it was, polls that report what became READY, legacy queue polls, slot holders.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { addSeconds, InvalidError, NotFoundError, now, type StateType, type WorkPool } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

describeEachBackend("work pools: changes, polls and slots", (t) => {
  let pool: WorkPool;
  let flowId: string;
  beforeEach(async () => {
    pool = await t.db.workPools.create({ name: "pool", type: "process" });
    flowId = (await t.db.flows.create({ name: "f" })).row.id;
  });

  const run = async (fields: Record<string, unknown>, type: StateType = "SCHEDULED") =>
    (await t.db.flowRuns.create({ flow_id: flowId, state: { type }, ...fields })).row;

  describe("changes", () => {
    it("reports a pool as it was and as it is", async () => {
      const { previous, current } = await t.db.workPools.change(pool.id, { is_paused: true, description: "d" });
      expect(previous).toEqual(pool);
      expect(current).toMatchObject({ is_paused: true, status: "PAUSED", description: "d" });
      expect(current.last_status_event_id).not.toBeNull();
      const again = await t.db.workPools.change(pool.id, { is_paused: false });
      expect(again.previous).toEqual(current);
      expect(again.current.status).toBe("NOT_READY");
      await expect(t.db.workPools.change(MISSING, {})).rejects.toBeInstanceOf(NotFoundError);
    });

    it("reports a queue as it was and as it is", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "A" });
      const { previous, current } = await t.db.workQueues.change(queue.id, { name: "B", priority: 1 });
      expect(previous).toEqual(queue);
      expect(current).toMatchObject({ name: "B", priority: 1 });
      await expect(t.db.workQueues.change(MISSING, { name: "x" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("returns what a delete removed", async () => {
      const extra = await t.db.workQueues.create(pool.id, { name: "extra" });
      const deleted = await t.db.workPools.delete(pool.id);
      expect(deleted.pool).toEqual(pool);
      expect(deleted.queues.map((q) => q.id)).toEqual([pool.default_queue_id, extra.id]);
      await expect(t.db.workPools.delete(pool.id)).rejects.toBeInstanceOf(NotFoundError);

      const other = await t.db.workPools.create({ name: "other" });
      const queue = await t.db.workQueues.create(other.id, { name: "q" });
      expect(await t.db.workQueues.delete(queue.id)).toEqual(queue);
    });

    it("keeps a legacy queue's filter, changes and clears it", async () => {
      const deployment = (await t.db.deployments.create({ name: "d", flow_id: flowId })).row.id;
      const queue = await t.db.workQueues.create(pool.id, { name: "tagged", filter: { tags: ["a"], deployment_ids: [deployment] } });
      expect(queue.filter).toEqual({ tags: ["a"], deployment_ids: [deployment] });
      expect((await t.db.workQueues.update(queue.id, { filter: { tags: ["b"] } })).filter).toEqual({ tags: ["b"], deployment_ids: null });
      expect((await t.db.workQueues.update(queue.id, { description: "x" })).filter).toEqual({ tags: ["b"], deployment_ids: null });
      expect((await t.db.workQueues.update(queue.id, { filter: null })).filter).toBeNull();
      await expect(t.db.workQueues.create(pool.id, { name: "bad", filter: { deployment_ids: ["nope"] } })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("heartbeats", () => {
    it("tells which heartbeat made the pool READY", async () => {
      const first = await t.db.workers.recordHeartbeat(pool.id, { name: "w1" });
      expect(first.worker).toMatchObject({ name: "w1", status: "ONLINE" });
      expect(first.readied?.previous).toEqual(pool);
      expect(first.readied?.current).toMatchObject({ status: "READY" });
      expect(first.readied?.current.last_status_event_id).not.toBeNull();
      expect((await t.db.workers.recordHeartbeat(pool.id, { name: "w2" })).readied).toBeNull();
      await expect(t.db.workers.recordHeartbeat(MISSING, { name: "w" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("makes the pool READY once when many workers beat at once", async () => {
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => t.db.workers.recordHeartbeat(pool.id, { name: `w${i}` })));
      expect(results.filter((r) => r.readied !== null)).toHaveLength(1);
      expect(await t.db.workers.read(pool.id)).toHaveLength(8);
      expect((await t.db.workPools.get(pool.id))?.status).toBe("READY");
    });
  });

  describe("reads across pools", () => {
    it("reads every pool's queues by name, filtered and paged", async () => {
      const other = await t.db.workPools.create({ name: "other" });
      await t.db.workQueues.create(other.id, { name: "b" });
      await t.db.workQueues.create(pool.id, { name: "a" });
      const all = await t.db.workQueues.readAll();
      expect(all.map((q) => `${q.work_pool_name}/${q.name}`)).toEqual(["pool/a", "other/b", expect.stringMatching(/\/default$/), expect.stringMatching(/\/default$/)]);
      expect((await t.db.workQueues.readAll({ work_queues: { name: { any_: ["default"] } } })).map((q) => q.work_pool_name).sort()).toEqual(["other", "pool"]);
      expect((await t.db.workQueues.readAll({ limit: 1, offset: 1 })).map((q) => q.name)).toEqual(["b"]);
      expect(await t.db.workQueues.count(pool.id)).toBe(2);
      expect(await t.db.workQueues.count(MISSING)).toBe(0);
    });
  });

  describe("polls", () => {
    it("marks polled queues and reports those that became READY", async () => {
      const a = await t.db.workQueues.create(pool.id, { name: "A" });
      const paused = await t.db.workQueues.create(pool.id, { name: "P", is_paused: true });
      const at = now();
      const readied = await t.db.workQueues.markPolled([a.id, paused.id, a.id, MISSING], { now: at });
      expect(readied.map((q) => q.id)).toEqual([a.id]);
      expect(readied[0]).toMatchObject({ status: "READY", last_polled: at, work_pool_name: "pool" });
      expect(await t.db.workQueues.get(paused.id)).toMatchObject({ status: "PAUSED", last_polled: at });
      const later = addSeconds(at, 5);
      expect(await t.db.workQueues.markPolled([a.id], { now: later })).toEqual([]);
      expect((await t.db.workQueues.get(a.id))?.last_polled).toBe(later);
      expect(await t.db.workQueues.markPolled([])).toEqual([]);
    });

    it("marks the deployments of polled queues READY and reports those that were not", async () => {
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      const queued = (await t.db.deployments.create({ name: "queued", flow_id: flowId, work_queue_id: pool.default_queue_id })).row.id;
      const elsewhere = (await t.db.deployments.create({ name: "elsewhere", flow_id: flowId, work_queue_id: other.id })).row.id;
      const at = now();
      expect(await t.db.workQueues.markDeploymentsPolled([pool.default_queue_id!], { now: at })).toEqual([queued]);
      expect(await t.db.deployments.get(queued)).toMatchObject({ status: "READY", last_polled: at });
      expect(await t.db.deployments.get(elsewhere)).toMatchObject({ status: "NOT_READY", last_polled: null });
      expect(await t.db.workQueues.markDeploymentsPolled([pool.default_queue_id!, other.id])).toEqual([elsewhere]);
      expect(await t.db.workQueues.markDeploymentsPolled([])).toEqual([]);
    });

    it("marks concurrently without losing a mark", async () => {
      const queues = [pool.default_queue_id!];
      for (const name of "ABCD") queues.push((await t.db.workQueues.create(pool.id, { name })).id);
      const marks = await Promise.all(Array.from({ length: 6 }, (_, i) => t.db.workQueues.markPolled(i % 2 ? queues : [...queues].reverse())));
      expect(marks.flat().map((q) => q.id).sort()).toEqual([...queues].sort());
      for (const queue of await t.db.workQueues.read(pool.id)) expect(queue.status).toBe("READY");
    });
  });

  describe("legacy queue runs", () => {
    it("returns SCHEDULED runs carrying the queue's name, by due time, changing nothing", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "legacy" });
      const start = now();
      const late = await run({ work_queue_name: "legacy", next_scheduled_start_time: addSeconds(start, 10) });
      const early = await run({ work_queue_name: "legacy", next_scheduled_start_time: addSeconds(start, -10) });
      const future = await run({ work_queue_name: "legacy", next_scheduled_start_time: addSeconds(start, 3600) });
      await run({ work_queue_name: "legacy" }, "RUNNING");
      await run({ work_queue_name: "elsewhere", next_scheduled_start_time: start });
      // Only the name counts: a run in the queue but without its name is not one of them.
      await run({ work_queue_id: queue.id, next_scheduled_start_time: start });

      const runs = await t.db.workQueues.getRuns(queue.id);
      expect(runs.map((r) => r.id)).toEqual([early.id, late.id, future.id]);
      expect(runs[0]).toMatchObject({ state_type: "SCHEDULED", state: { type: "SCHEDULED" } });
      expect((await t.db.workQueues.getRuns(queue.id, { scheduledBefore: addSeconds(start, 60) })).map((r) => r.id)).toEqual([early.id, late.id]);
      expect((await t.db.workQueues.getRuns(queue.id, { limit: 1 })).map((r) => r.id)).toEqual([early.id]);
      expect(await t.db.workQueues.getRuns(queue.id, { limit: 0 })).toEqual([]);
      expect((await t.db.flowRuns.get(early.id))?.state_type).toBe("SCHEDULED");
    });

    it("leaves as many runs as the queue's limit has free (PENDING, RUNNING and CANCELLING hold slots); none when paused", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "legacy", concurrency_limit: 4 });
      for (const type of ["PENDING", "RUNNING", "CANCELLING", "COMPLETED"] as const) await run({ work_queue_name: "legacy" }, type);
      for (let i = 0; i < 3; i++) await run({ work_queue_name: "legacy", next_scheduled_start_time: addSeconds(now(), i) });
      expect(await t.db.workQueues.getRuns(queue.id)).toHaveLength(1);
      expect(await t.db.workQueues.getRuns(queue.id, { limit: 5 })).toHaveLength(1);
      await t.db.workQueues.update(queue.id, { concurrency_limit: 2 });
      expect(await t.db.workQueues.getRuns(queue.id)).toEqual([]);
      await t.db.workQueues.update(queue.id, { concurrency_limit: null, is_paused: true });
      expect(await t.db.workQueues.getRuns(queue.id)).toEqual([]);
      await t.db.workQueues.update(queue.id, { is_paused: false });
      expect(await t.db.workQueues.getRuns(queue.id)).toHaveLength(3);
    });

    it("refuses an unknown queue and a negative limit", async () => {
      await expect(t.db.workQueues.getRuns(MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.workQueues.getRuns(pool.default_queue_id!, { limit: -1 })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("slot holders", () => {
    it("lists a pool's PENDING and RUNNING runs by id, per queue as asked", async () => {
      const a = await t.db.workQueues.create(pool.id, { name: "a", is_paused: true });
      const other = await t.db.workPools.create({ name: "other" });
      const held = [
        await run({ work_queue_id: a.id }, "RUNNING"),
        await run({ work_queue_id: a.id }, "PENDING"),
        await run({ work_queue_id: a.id }, "RUNNING"),
        await run({ work_queue_id: pool.default_queue_id }, "PENDING"),
      ];
      for (const type of ["CANCELLING", "SCHEDULED", "COMPLETED"] as const) await run({ work_queue_id: a.id }, type);
      await run({ work_queue_id: other.default_queue_id }, "RUNNING");

      const holders = await t.db.workPools.readSlotHolders(pool.id);
      expect(holders.map((h) => h.id)).toEqual(held.map((r) => r.id).sort());
      const first = holders.find((h) => h.id === held[0]!.id);
      expect(first).toMatchObject({ work_queue_id: a.id, state_type: "RUNNING", state_name: "Running", name: held[0]!.name });
      expect(first?.state_timestamp).toBe(held[0]!.state_timestamp);

      const capped = await t.db.workPools.readSlotHolders(pool.id, { workQueueIds: [a.id], perQueueLimit: 2 });
      expect(capped.map((h) => h.id)).toEqual(
        held
          .slice(0, 3)
          .map((r) => r.id)
          .sort()
          .slice(0, 2),
      );
      expect(await t.db.workPools.readSlotHolders(pool.id, { workQueueIds: [] })).toEqual([]);
      expect(await t.db.workPools.readSlotHolders(pool.id, { perQueueLimit: 0 })).toEqual([]);
      expect(await t.db.workPools.countSlotHoldersByQueue(pool.id)).toEqual(
        new Map([
          [a.id, 3],
          [pool.default_queue_id!, 1],
        ]),
      );
    });

    it("lists a queue's PENDING, RUNNING and CANCELLING runs, and those without a queue carrying its name", async () => {
      const queue = await t.db.workQueues.create(pool.id, { name: "q" });
      const held = [
        await run({ work_queue_id: queue.id }, "RUNNING"),
        await run({ work_queue_id: queue.id }, "CANCELLING"),
        await run({ work_queue_name: "q" }, "PENDING"),
      ];
      await run({ work_queue_id: queue.id }, "SCHEDULED");
      await run({ work_queue_id: pool.default_queue_id, work_queue_name: "q" }, "RUNNING");
      const ids = held.map((r) => r.id).sort();
      expect((await t.db.workQueues.readSlotHolders(queue.id)).map((h) => h.id)).toEqual(ids);
      expect((await t.db.workQueues.readSlotHolders(queue.id, { limit: 1, offset: 1 })).map((h) => h.id)).toEqual([ids[1]]);
      expect(await t.db.workQueues.countSlotHolders(queue.id)).toBe(3);
      expect(await t.db.workQueues.countActiveSlots([queue.id], { includeCancelling: true })).toEqual(new Map([[queue.id, 2]]));
      expect(await t.db.workQueues.countActiveSlots([queue.id])).toEqual(new Map([[queue.id, 1]]));
    });
  });
});
