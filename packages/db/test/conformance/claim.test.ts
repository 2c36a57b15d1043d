import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addSeconds,
  type Database,
  type Flow,
  type FlowRunCreate,
  InvalidError,
  now,
  openDatabase,
  type ScheduledFlowRunQuery,
  type StateType,
  type WorkerFlowRun,
  type WorkPool,
  type WorkQueue,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const HOUR = 3600;
const PENDING = { type: "PENDING" } as const;

describeEachBackend("scheduled flow runs", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
  });

  const run = async (queue: WorkQueue | string, type: StateType, input: Partial<FlowRunCreate> = {}) =>
    (
      await t.db.flowRuns.create({
        flow_id: flow.id,
        work_queue_id: typeof queue === "string" ? queue : queue.id,
        state: { type },
        ...input,
      })
    ).row;

  const ids = (runs: readonly WorkerFlowRun[]) => runs.map((r) => r.flow_run.id);
  const stateOf = async (id: string) => (await t.db.flowRuns.get(id))?.state_type;

  /**
   * Prefect's fixture: pools A, B, C with queues AA..CC (priorities 2, 3, 4 after each default queue),
   * each holding one RUNNING and one PENDING run and five SCHEDULED runs due from an hour ago to three
   * hours from now.
   */
  describe("in Prefect's three pools", () => {
    let base: string;
    const pools: Record<string, WorkPool> = {};
    const queues: Record<string, WorkQueue> = {};

    beforeEach(async () => {
      base = now();
      for (const p of "ABC") {
        pools[p] = await t.db.workPools.create({ name: p });
        for (const q of "ABC") queues[p + q] = await t.db.workQueues.create(pools[p]!.id, { name: p + q });
      }
      for (const queue of Object.values(queues)) {
        await run(queue, "RUNNING");
        await run(queue, "PENDING");
        for (let hours = 3; hours >= -1; hours--) await run(queue, "SCHEDULED", { next_scheduled_start_time: addSeconds(base, hours * HOUR) });
      }
    });

    const nameOf = (queueId: string) => Object.entries(queues).find(([, q]) => q.id === queueId)![0];

    it("returns every scheduled run, by queue priority and then due time, without changing anything", async () => {
      const runs = await t.db.workerRuns.getScheduledFlowRuns();
      expect(runs).toHaveLength(45);
      const key = (r: WorkerFlowRun) => [queues[nameOf(r.work_queue_id)]!.priority, r.flow_run.next_scheduled_start_time!] as const;
      const sorted = [...runs].sort((a, b) => {
        const [pa, ta] = key(a);
        const [pb, tb] = key(b);
        return pa - pb || (ta < tb ? -1 : ta > tb ? 1 : 0);
      });
      expect(ids(runs)).toEqual(ids(sorted));
      expect(runs.every((r) => r.flow_run.state_type === "SCHEDULED" && r.flow_run.state?.type === "SCHEDULED")).toBe(true);
      for (const r of runs) {
        expect(r.work_pool_id).toBe(pools[nameOf(r.work_queue_id)[0]!]!.id);
        expect(r.flow_run).toEqual(await t.db.flowRuns.get(r.flow_run.id));
      }
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toEqual(runs);
    });

    it("applies the limit to the same order", async () => {
      const all = await t.db.workerRuns.getScheduledFlowRuns();
      for (const limit of [100, 12, 1, 0]) {
        expect(ids(await t.db.workerRuns.getScheduledFlowRuns({ limit }))).toEqual(ids(all.slice(0, limit)));
      }
    });

    it("bounds the due time inclusively", async () => {
      const count = async (query: Parameters<typeof t.db.workerRuns.getScheduledFlowRuns>[0]) => (await t.db.workerRuns.getScheduledFlowRuns(query)).length;
      for (const [hours, expected] of [[100, 45], [3, 45], [1, 27], [-1, 9], [-10, 0]] as const) {
        expect(await count({ scheduledBefore: addSeconds(base, hours * HOUR) })).toBe(expected);
      }
      for (const [hours, expected] of [[-100, 45], [-1, 45], [0, 36], [2, 18], [10, 0]] as const) {
        expect(await count({ scheduledAfter: addSeconds(base, hours * HOUR) })).toBe(expected);
      }
      expect(await count({ scheduledBefore: addSeconds(base, -HOUR), scheduledAfter: addSeconds(base, HOUR) })).toBe(0);
      expect(await count({ scheduledBefore: now() })).toBe(18);
      expect(await count({ scheduledAfter: now() })).toBe(27);
    });

    it("selects by pool and queue names", async () => {
      const pick = async (workPoolNames: string[] | null, workQueueNames: string[] | null) =>
        t.db.workerRuns.getScheduledFlowRuns({ workPoolNames, workQueueNames });
      expect(await pick(["A"], null)).toHaveLength(15);
      expect(await pick(["A", "B"], null)).toHaveLength(30);
      const aa = await pick(null, ["AA"]);
      expect(aa).toHaveLength(5);
      expect(aa.every((r) => r.work_queue_id === queues.AA!.id && r.work_pool_id === pools.A!.id)).toBe(true);
      expect(await pick(null, ["AA", "BA", "CB"])).toHaveLength(15);
      expect(await pick(["A"], ["AA"])).toHaveLength(5);
      expect(await pick(["A", "B", "C"], ["AA"])).toHaveLength(5);
      expect(await pick(["B"], ["AA"])).toHaveLength(0);
      expect(await pick([], null)).toHaveLength(0);
    });

    it("takes queues in priority order, across pools", async () => {
      const runs = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"] });
      expect(runs.map((r) => nameOf(r.work_queue_id))).toEqual([...Array(5).fill("AA"), ...Array(5).fill("AB"), ...Array(5).fill("AC")]);
      const two = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A", "B"] });
      expect(two.slice(0, 10).every((r) => ["AA", "BA"].includes(nameOf(r.work_queue_id)))).toBe(true);
      expect(two.slice(10, 20).every((r) => ["AB", "BB"].includes(nameOf(r.work_queue_id)))).toBe(true);
      expect(two.slice(20).every((r) => ["AC", "BC"].includes(nameOf(r.work_queue_id)))).toBe(true);
    });

    it("passes over paused queues and pools", async () => {
      await t.db.workQueues.update(queues.AA!.id, { is_paused: true });
      expect(await t.db.workerRuns.getScheduledFlowRuns({ workQueueNames: ["AA"] })).toHaveLength(0);
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toHaveLength(40);
      await t.db.workPools.update(pools.B!.id, { is_paused: true });
      expect(await t.db.workerRuns.getScheduledFlowRuns({ workQueueNames: ["BA"] })).toHaveLength(0);
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toHaveLength(25);
    });

    it("leaves each queue as many runs as its limit has free slots", async () => {
      for (const [limit, expected] of [[10, 5], [5, 3], [2, 0], [0, 0]] as const) {
        await t.db.workQueues.update(queues.AA!.id, { concurrency_limit: limit });
        expect(await t.db.workerRuns.getScheduledFlowRuns({ workQueueNames: ["AA"] })).toHaveLength(expected);
      }
    });

    it("leaves each pool as many runs as its limit has free slots, counting all its queues", async () => {
      for (const [limit, expected] of [[20, 5], [10, 4], [7, 1], [2, 0]] as const) {
        await t.db.workPools.update(pools.A!.id, { concurrency_limit: limit });
        expect(await t.db.workerRuns.getScheduledFlowRuns({ workQueueNames: ["AA"] })).toHaveLength(expected);
      }
      for (const [limit, expected] of [[25, 15], [16, 10], [7, 1], [2, 0]] as const) {
        await t.db.workPools.update(pools.A!.id, { concurrency_limit: limit });
        expect(await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"] })).toHaveLength(expected);
      }
    });

    it("fills a pool's free slots by queue priority", async () => {
      await t.db.workPools.update(pools.A!.id, { concurrency_limit: 13 });
      const runs = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"] });
      expect(runs.map((r) => nameOf(r.work_queue_id))).toEqual([...Array(5).fill("AA"), ...Array(2).fill("AB")]);
    });

    it("applies queue and pool limits together", async () => {
      await t.db.workQueues.update(queues.AA!.id, { concurrency_limit: 4 });
      await t.db.workPools.update(pools.A!.id, { concurrency_limit: 10 });
      const runs = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"] });
      expect(runs.map((r) => nameOf(r.work_queue_id))).toEqual(["AA", "AA", "AB", "AB"]);
    });

    it("claims the runs it would return, moving them to the state given", async () => {
      const expected = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"], limit: 7 });
      const claimed = await t.db.workerRuns.claimScheduledFlowRuns({ workPoolNames: ["A"], limit: 7, state: { type: "PENDING", state_details: { by: "test" } } });
      expect(ids(claimed)).toEqual(ids(expected));
      expect(claimed.map((c) => [c.work_pool_id, c.work_queue_id])).toEqual(expected.map((e) => [e.work_pool_id, e.work_queue_id]));
      for (const c of claimed) {
        expect(c.flow_run).toMatchObject({ state_type: "PENDING", state_name: "Pending", state: { type: "PENDING", name: "Pending", state_details: { by: "test" } } });
        expect(c.flow_run.state_id).toBe(c.flow_run.state?.id);
        expect(await t.db.flowRuns.get(c.flow_run.id)).toEqual(c.flow_run);
        const history = await t.db.flowRuns.readStates(c.flow_run.id);
        expect(history.map((s) => s.type)).toEqual(["SCHEDULED", "PENDING"]);
      }
      const rest = await t.db.workerRuns.getScheduledFlowRuns({ workPoolNames: ["A"] });
      expect(rest).toHaveLength(8);
      expect(ids(rest).some((id) => ids(claimed).includes(id))).toBe(false);
    });

    it("counts what it claimed against the limits at once", async () => {
      await t.db.workPools.update(pools.A!.id, { concurrency_limit: 10 });
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ workPoolNames: ["A"], state: PENDING })).toHaveLength(4);
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ workPoolNames: ["A"], state: PENDING })).toHaveLength(0);
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ workPoolNames: ["B"], limit: 3, state: PENDING })).toHaveLength(3);
    });

    it("claims nothing with a limit of 0, and refuses a negative limit", async () => {
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ limit: 0, state: PENDING })).toEqual([]);
      await expect(t.db.workerRuns.claimScheduledFlowRuns({ limit: -1, state: PENDING })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.workerRuns.getScheduledFlowRuns({ limit: -1 })).rejects.toBeInstanceOf(InvalidError);
    });

    it("claims inside a caller's transaction, and undoes the claim with it", async () => {
      await expect(
        t.db.transaction(async (tx) => {
          expect(await tx.workerRuns.claimScheduledFlowRuns({ limit: 5, state: PENDING })).toHaveLength(5);
          throw new Error("roll back");
        }),
      ).rejects.toThrow("roll back");
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toHaveLength(45);
    });
  });

  describe("which runs qualify", () => {
    let pool: WorkPool;
    let queue: string;
    beforeEach(async () => {
      pool = await t.db.workPools.create({ name: "pool" });
      queue = pool.default_queue_id!;
    });

    it("only SCHEDULED runs in a queue, not awaiting an in-process retry", async () => {
      const due = addSeconds(now(), -60);
      const plain = await run(queue, "SCHEDULED", { next_scheduled_start_time: due });
      const retry = await run(queue, "SCHEDULED", { next_scheduled_start_time: due, empirical_policy: { retry_type: "reschedule" } });
      await run(queue, "SCHEDULED", { next_scheduled_start_time: due, empirical_policy: { retry_type: "in_process" } });
      for (const type of ["PENDING", "RUNNING", "COMPLETED", "PAUSED", "CANCELLING"] as const) await run(queue, type);
      await t.db.flowRuns.create({ flow_id: flow.id, state: { type: "SCHEDULED" }, next_scheduled_start_time: due });
      expect(ids(await t.db.workerRuns.getScheduledFlowRuns()).sort()).toEqual([plain.id, retry.id].sort());
    });

    it("counts neither CANCELLING nor finished runs against limits", async () => {
      await t.db.workPools.update(pool.id, { concurrency_limit: 2 });
      for (const type of ["CANCELLING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"] as const) await run(queue, type);
      for (let i = 0; i < 3; i++) await run(queue, "SCHEDULED", { next_scheduled_start_time: now() });
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toHaveLength(2);
    });

    it("passes over runs of paused deployments", async () => {
      const live = (await t.db.deployments.create({ name: "live", flow_id: flow.id })).row.id;
      const paused = (await t.db.deployments.create({ name: "paused", flow_id: flow.id, paused: true })).row.id;
      const ofLive = await run(queue, "SCHEDULED", { deployment_id: live, next_scheduled_start_time: now() });
      await run(queue, "SCHEDULED", { deployment_id: paused, next_scheduled_start_time: now() });
      const unknown = await run(queue, "SCHEDULED", { deployment_id: randomUUID(), next_scheduled_start_time: now() });
      expect(ids(await t.db.workerRuns.getScheduledFlowRuns()).sort()).toEqual([ofLive.id, unknown.id].sort());
      expect(ids(await t.db.workerRuns.claimScheduledFlowRuns({ state: PENDING })).sort()).toEqual([ofLive.id, unknown.id].sort());
    });

    it("leaves a deployment as many runs as its limit has free slots, across queues", async () => {
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      const deployment = (await t.db.deployments.create({ name: "limited", flow_id: flow.id, concurrency_limit: 3 })).row.id;
      await run(other, "RUNNING", { deployment_id: deployment });
      await run(queue, "CANCELLING", { deployment_id: deployment });
      const start = now();
      for (let i = 0; i < 3; i++) await run(queue, "SCHEDULED", { deployment_id: deployment, next_scheduled_start_time: addSeconds(start, i) });
      const lateQueued = await run(other, "SCHEDULED", { deployment_id: deployment, next_scheduled_start_time: addSeconds(start, -10) });
      const free = await run(other, "SCHEDULED", { next_scheduled_start_time: addSeconds(start, 5) });
      const picked = await t.db.workerRuns.getScheduledFlowRuns();
      // Two slots are free; queue priority decides which runs of the deployment get them.
      expect(picked.filter((r) => r.flow_run.deployment_id === deployment)).toHaveLength(2);
      expect(ids(picked)).toContain(free.id);
      expect(ids(picked)).not.toContain(lateQueued.id);
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ state: PENDING })).toHaveLength(3);
      expect(await t.db.workerRuns.claimScheduledFlowRuns({ state: PENDING })).toHaveLength(0);
    });

    it("dates the new state after the run's current one", async () => {
      const future = addSeconds(now(), HOUR);
      const scheduled = await run(queue, "SCHEDULED", { next_scheduled_start_time: now() });
      await t.db.flowRuns.setState(scheduled.id, { type: "SCHEDULED", timestamp: future });
      const [claimed] = await t.db.workerRuns.claimScheduledFlowRuns({ state: { type: "PENDING", name: "Submitting", message: "m" } });
      expect(claimed?.flow_run.state).toMatchObject({ type: "PENDING", name: "Submitting", message: "m" });
      expect(claimed!.flow_run.state!.timestamp > future).toBe(true);
      expect((await t.db.flowRuns.readStates(scheduled.id)).map((s) => s.type)).toEqual(["SCHEDULED", "SCHEDULED", "PENDING"]);
    });
  });

  describe("concurrent claims", () => {
    const extra: Database[] = [];
    afterEach(async () => {
      await Promise.all(extra.splice(0).map((db) => db.close()));
    });

    /** Databases to claim from: this one and, where the backend allows, more connections to it. */
    const claimers = async (): Promise<Database[]> => {
      if (t.backend === "sqlite-memory") return [t.db];
      for (let i = 0; i < 3; i++) extra.push(await openDatabase(t.db.config, { migrate: false }));
      return [t.db, ...extra];
    };

    /**
     * `count` claims at once, spread over the claimers, each asking for `each` runs; claim `i` selects
     * with `queries[i % queries.length]`. Claimers that select different runs under the same limit are
     * what a limit must hold against: each one alone sees free slots.
     */
    const claimAll = async (count: number, each: number, queries: readonly ScheduledFlowRunQuery[] = [{}]) => {
      const dbs = await claimers();
      const results = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          dbs[i % dbs.length]!.workerRuns.claimScheduledFlowRuns({ ...queries[i % queries.length], limit: each, state: PENDING }),
        ),
      );
      return results.flatMap(ids);
    };

    /** `count` runs due at `start` and every second before it. */
    const schedule = async (queue: string, count: number, input: Partial<FlowRunCreate> = {}, start = now()) => {
      const created: string[] = [];
      for (let i = 0; i < count; i++) created.push((await run(queue, "SCHEDULED", { next_scheduled_start_time: addSeconds(start, -i), ...input })).id);
      return created;
    };

    it("never hands out a run twice: 200 due runs, 20 claimers asking for 15 each", async () => {
      const a = await t.db.workPools.create({ name: "a" });
      const b = await t.db.workPools.create({ name: "b" });
      const bq = await t.db.workQueues.create(b.id, { name: "second" });
      const runs = [...(await schedule(a.default_queue_id!, 100)), ...(await schedule(b.default_queue_id!, 60)), ...(await schedule(bq.id, 40))];
      const claimed = await claimAll(20, 15);
      expect(claimed).toHaveLength(200);
      expect(new Set(claimed).size).toBe(200);
      expect([...claimed].sort()).toEqual([...runs].sort());
      for (const id of runs.slice(0, 20)) {
        expect(await stateOf(id)).toBe("PENDING");
        expect(await t.db.flowRuns.readStates(id)).toHaveLength(2);
      }
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toEqual([]);
    });

    it("never exceeds a pool's limit together", async () => {
      const pool = await t.db.workPools.create({ name: "limited", concurrency_limit: 5 });
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      await schedule(pool.default_queue_id!, 30);
      await schedule(other.id, 30);
      expect(await claimAll(20, 3, [{ workQueueNames: ["default"] }, { workQueueNames: ["other"] }])).toHaveLength(5);
      expect(await t.db.workPools.countActiveSlots([pool.id])).toEqual(new Map([[pool.id, 5]]));
    });

    it("never exceeds a queue's limit together", async () => {
      const pool = await t.db.workPools.create({ name: "pool" });
      const limited = await t.db.workQueues.create(pool.id, { name: "limited", concurrency_limit: 5, priority: 1 });
      const start = now();
      await schedule(limited.id, 60, {}, start);
      const middle = addSeconds(start, -29.5);
      expect(await claimAll(20, 2, [{ scheduledBefore: middle }, { scheduledAfter: middle }])).toHaveLength(5);
      expect(await t.db.workQueues.countActiveSlots([limited.id])).toEqual(new Map([[limited.id, 5]]));
    });

    it("never exceeds a deployment's limit together", async () => {
      const pool = await t.db.workPools.create({ name: "pool" });
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      const deployment = (await t.db.deployments.create({ name: "limited", flow_id: flow.id, concurrency_limit: 5 })).row.id;
      await schedule(pool.default_queue_id!, 30, { deployment_id: deployment });
      await schedule(other.id, 30, { deployment_id: deployment });
      const free = await schedule(other.id, 10);
      const claimed = await claimAll(20, 2, [{ workQueueNames: ["default"] }, { workQueueNames: ["other"] }]);
      expect(claimed).toHaveLength(15);
      expect(claimed.filter((id) => free.includes(id))).toHaveLength(10);
      expect(await t.db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deployment] }, state: { type: { any_: ["PENDING"] } } } })).toBe(5);
    });
  });
});
