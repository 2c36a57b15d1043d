import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addSeconds,
  type Database,
  type Flow,
  type FlowRunCreate,
  InvalidError,
  now,
  openDatabase,
  type Repositories,
  type ScheduledFlowRunQuery,
  type StateType,
  type WorkerFlowRun,
  type WorkPool,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

describeEachBackend("locking scheduled flow runs", (t) => {
  let flow: Flow;
  let pool: WorkPool;
  let queue: string;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
    pool = await t.db.workPools.create({ name: "pool", type: "process" });
    queue = pool.default_queue_id!;
  });

  const run = async (type: StateType, input: Partial<FlowRunCreate> = {}) =>
    (await t.db.flowRuns.create({ flow_id: flow.id, work_queue_id: queue, state: { type }, ...input })).row;

  /** `count` SCHEDULED runs, due from `start` back, one second apart. */
  const schedule = async (count: number, input: Partial<FlowRunCreate> = {}, start = now()) => {
    const created: string[] = [];
    for (let i = 0; i < count; i++) created.push((await run("SCHEDULED", { next_scheduled_start_time: addSeconds(start, -i), ...input })).id);
    return created;
  };

  const ids = (runs: readonly WorkerFlowRun[]) => runs.map((r) => r.flow_run.id);
  const stateOf = async (id: string) => (await t.db.flowRuns.get(id))?.state_type;

  /** Locks runs in one transaction and moves the first `move` of them (all by default) to PENDING there. */
  const lockAndMove = (db: Database, query: ScheduledFlowRunQuery, move = Number.POSITIVE_INFINITY) =>
    db.transaction(async (tx: Repositories) => {
      const locked = await tx.workerRuns.lockScheduledFlowRuns(query);
      for (const r of locked.slice(0, move)) await tx.flowRuns.setState(r.flow_run.id, { type: "PENDING" });
      return ids(locked.slice(0, move));
    });

  it("returns the runs getScheduledFlowRuns would, in the same order, and writes nothing", async () => {
    const other = await t.db.workQueues.create(pool.id, { name: "other", priority: 1 });
    await schedule(4);
    await schedule(3, { work_queue_id: other.id });
    await schedule(2, {}, addSeconds(now(), 3600));
    const before = await t.db.flowRuns.read({ sort: "ID_DESC" });
    const queries: ScheduledFlowRunQuery[] = [{}, { limit: 5 }, { workQueueNames: ["default"] }, { scheduledBefore: now() }, { workPoolNames: ["elsewhere"] }];
    for (const query of queries) {
      const expected = await t.db.workerRuns.getScheduledFlowRuns(query);
      const locked = await t.db.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns(query));
      expect(locked).toEqual(expected);
    }
    expect((await t.db.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns({ limit: 5 }))).map((r) => r.work_queue_id)).toEqual([
      ...Array(3).fill(other.id),
      ...Array(2).fill(queue),
    ]);
    expect(await t.db.flowRuns.read({ sort: "ID_DESC" })).toEqual(before);
  });

  it("needs a transaction, and refuses a bad query", async () => {
    await schedule(1);
    await expect(t.db.workerRuns.lockScheduledFlowRuns()).rejects.toBeInstanceOf(InvalidError);
    await expect(t.db.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns({ limit: -1 }))).rejects.toBeInstanceOf(InvalidError);
  });

  it("leaves each pool, queue and deployment as many runs as its limit has free slots", async () => {
    const limitedQueue = await t.db.workQueues.create(pool.id, { name: "limited", concurrency_limit: 2 });
    await run("RUNNING", { work_queue_id: limitedQueue.id });
    await schedule(3, { work_queue_id: limitedQueue.id });
    const lock = (query: ScheduledFlowRunQuery = {}) => t.db.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns(query));
    expect(await lock({ workQueueNames: ["limited"] })).toHaveLength(1);

    const deployment = (await t.db.deployments.create({ name: "limited", flow_id: flow.id, concurrency_limit: 2 })).row.id;
    await run("PENDING", { deployment_id: deployment });
    await schedule(3, { deployment_id: deployment });
    expect(await lock({ workQueueNames: ["default"] })).toHaveLength(1);

    await t.db.workPools.update(pool.id, { concurrency_limit: 4 });
    // Two runs in use: two free slots, taken by queue priority (the default queue first).
    const locked = await lock();
    expect(locked.map((r) => r.work_queue_id)).toEqual([queue, limitedQueue.id]);
    await t.db.workPools.update(pool.id, { concurrency_limit: 2 });
    expect(await lock()).toEqual([]);
  });

  it("hands out what the locker moved only once, and frees what it left SCHEDULED when its transaction ends", async () => {
    const runs = await schedule(4);
    // Runs due first come first: the oldest due time is the last created.
    const due = [...runs].reverse();
    expect(await lockAndMove(t.db, { limit: 2 }, 1)).toEqual([due[0]]);
    expect(await stateOf(due[0]!)).toBe("PENDING");
    expect(await stateOf(due[1]!)).toBe("SCHEDULED");
    expect(await lockAndMove(t.db, { limit: 2 })).toEqual([due[1], due[2]]);
    expect(await lockAndMove(t.db, {})).toEqual([due[3]]);
    expect(await lockAndMove(t.db, {})).toEqual([]);
  });

  it("undoes the locker's moves when its transaction rolls back", async () => {
    await schedule(3);
    await expect(
      t.db.transaction(async (tx) => {
        for (const r of await tx.workerRuns.lockScheduledFlowRuns()) await tx.flowRuns.setState(r.flow_run.id, { type: "PENDING" });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await t.db.workerRuns.getScheduledFlowRuns()).toHaveLength(3);
  });

  describe("concurrent lockers", () => {
    const extra: Database[] = [];
    afterEach(async () => {
      await Promise.all(extra.splice(0).map((db) => db.close()));
    });

    /** This database and, where the backend allows, more connections to it. */
    const connections = async (): Promise<Database[]> => {
      if (t.backend === "sqlite-memory") return [t.db];
      for (let i = 0; i < 3; i++) extra.push(await openDatabase(t.db.config, { migrate: false }));
      return [t.db, ...extra];
    };

    /** `count` lockers at once, spread over the connections, each moving what it locked to PENDING. */
    const lockAll = async (count: number, each: number, queries: readonly ScheduledFlowRunQuery[] = [{}]) => {
      const dbs = await connections();
      const results = await Promise.all(Array.from({ length: count }, (_, i) => lockAndMove(dbs[i % dbs.length]!, { ...queries[i % queries.length], limit: each })));
      return results.flat();
    };

    it("never hand out a run twice: 200 due runs, 20 lockers taking 15 each", async () => {
      const second = await t.db.workQueues.create(pool.id, { name: "second" });
      const runs = [...(await schedule(120)), ...(await schedule(80, { work_queue_id: second.id }))];
      const locked = await lockAll(20, 15);
      expect(locked).toHaveLength(200);
      expect(new Set(locked).size).toBe(200);
      expect([...locked].sort()).toEqual([...runs].sort());
      for (const id of runs.slice(0, 20)) expect((await t.db.flowRuns.readStates(id)).map((s) => s.type)).toEqual(["SCHEDULED", "PENDING"]);
      expect(await t.db.workerRuns.getScheduledFlowRuns()).toEqual([]);
    });

    it("never exceed a pool's limit together", async () => {
      await t.db.workPools.update(pool.id, { concurrency_limit: 5 });
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      await schedule(30);
      await schedule(30, { work_queue_id: other.id });
      expect(await lockAll(20, 3, [{ workQueueNames: ["default"] }, { workQueueNames: ["other"] }])).toHaveLength(5);
      expect(await t.db.workPools.countActiveSlots([pool.id])).toEqual(new Map([[pool.id, 5]]));
    });

    it("never exceed a queue's limit together", async () => {
      const limited = await t.db.workQueues.create(pool.id, { name: "limited", concurrency_limit: 4, priority: 1 });
      const start = now();
      await schedule(40, { work_queue_id: limited.id }, start);
      const middle = addSeconds(start, -19.5);
      expect(await lockAll(20, 2, [{ scheduledBefore: middle }, { scheduledAfter: middle }])).toHaveLength(4);
      expect(await t.db.workQueues.countActiveSlots([limited.id])).toEqual(new Map([[limited.id, 4]]));
    });

    it("never exceed a deployment's limit together, and leave runs without limits to the others", async () => {
      const other = await t.db.workQueues.create(pool.id, { name: "other" });
      const deployment = (await t.db.deployments.create({ name: "limited", flow_id: flow.id, concurrency_limit: 3 })).row.id;
      await schedule(20, { deployment_id: deployment });
      await schedule(20, { deployment_id: deployment, work_queue_id: other.id });
      const free = await schedule(10, { work_queue_id: other.id });
      const locked = await lockAll(20, 2, [{ workQueueNames: ["default"] }, { workQueueNames: ["other"] }]);
      expect(locked).toHaveLength(13);
      expect(locked.filter((id) => free.includes(id))).toHaveLength(10);
      expect(await t.db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deployment] }, state: { type: { any_: ["PENDING"] } } } })).toBe(3);
    });

    if (t.backend === "postgres") {
      it("pass over the runs another open transaction holds (PostgreSQL: SKIP LOCKED)", async () => {
        const runs = await schedule(4);
        const other = (await connections())[1]!;
        let release: () => void = () => undefined;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let first: string[] = [];
        const holder = t.db.transaction(async (tx) => {
          first = ids(await tx.workerRuns.lockScheduledFlowRuns({ limit: 2 }));
          await held;
        });
        // Wait until the holder has its runs; then a second locker gets the other two at once.
        for (let i = 0; i < 500 && first.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(first).toHaveLength(2);
        const second = ids(await other.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns({ limit: 2 })));
        expect(second).toHaveLength(2);
        expect([...first, ...second].sort()).toEqual([...runs].sort());
        release();
        await holder;
        // The holder moved nothing: all four are free again.
        expect(await t.db.transaction((tx) => tx.workerRuns.lockScheduledFlowRuns())).toHaveLength(4);
      });
    }
  });
});
