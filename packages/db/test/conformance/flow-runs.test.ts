import { beforeEach, describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  AlreadyExistsError,
  type Flow,
  FlowFilter,
  type FlowRun,
  type FlowRunCreate,
  FlowRunFilter,
  type FlowRunSort,
  InvalidError,
  NotFoundError,
  type RunCriteria,
  StateTimestampTakenError,
  type TaskRun,
  TaskRunFilter,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";
import { openPostgresSession } from "../../src/testing/postgres.js";

const flowFilter = (f: z.input<typeof FlowFilter>) => FlowFilter.parse(f);
const runFilter = (f: z.input<typeof FlowRunFilter>) => FlowRunFilter.parse(f);
const taskFilter = (f: z.input<typeof TaskRunFilter>) => TaskRunFilter.parse(f);

const T1 = "2024-01-01T00:00:00.000001Z";
const T2 = "2024-01-02T00:00:00.000000Z";
const T3 = "2024-01-03T00:00:00.000000Z";
const MISSING = "00000000-0000-4000-8000-000000000000";
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describeEachBackend("flow runs", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
  });

  const create = async (input: Partial<FlowRunCreate> = {}) => (await t.db.flowRuns.create({ flow_id: flow.id, ...input })).row;

  describe("related rows", () => {
    it("names what a run points at, from its ids (related) or from the stored run (relatedOf)", async () => {
      await t.db.flows.update(flow.id, { tags: ["etl"] });
      const pool = await t.db.workPools.create({ name: "pool", type: "process" });
      const deployment = (await t.db.deployments.create({ name: "nightly", flow_id: flow.id, work_queue_id: pool.default_queue_id, tags: ["nightly"] })).row;
      const parent = await create();
      const task = (await t.db.taskRuns.create({ flow_run_id: parent.id, task_key: "k", dynamic_key: "0", tags: ["t"] })).row;
      const run = await create({ deployment_id: deployment.id, work_queue_id: pool.default_queue_id, parent_task_run_id: task.id });
      const expected = {
        flow: { id: flow.id, name: "etl", tags: ["etl"] },
        deployment: { id: deployment.id, name: "nightly", tags: ["nightly"] },
        workQueue: { id: pool.default_queue_id, name: "default", tags: [] },
        workPool: { id: pool.id, name: "pool", tags: [], type: "process" },
        parentTaskRun: { id: task.id, name: task.name, tags: ["t"] },
      };
      expect(await t.db.flowRuns.related(run)).toEqual(expected);
      expect(await t.db.flowRuns.relatedOf(run.id)).toEqual({
        ...expected,
        ids: { flow_id: flow.id, deployment_id: deployment.id, work_queue_id: pool.default_queue_id, parent_task_run_id: task.id },
        deploymentConcurrencyLimitId: null,
      });
      const limited = (await t.db.deployments.create({ name: "limited", flow_id: flow.id, concurrency_limit: 2 })).row;
      const limitedRun = await create({ deployment_id: limited.id });
      expect((await t.db.flowRuns.relatedOf(limitedRun.id))?.deploymentConcurrencyLimitId).toBe(limited.concurrency_limit_id);
      expect(limited.concurrency_limit_id).toEqual(expect.any(String));
      const bare = await create();
      expect(await t.db.flowRuns.relatedOf(bare.id)).toEqual({
        flow: { id: flow.id, name: "etl", tags: ["etl"] },
        deployment: null,
        workQueue: null,
        workPool: null,
        parentTaskRun: null,
        ids: { flow_id: flow.id, deployment_id: null, work_queue_id: null, parent_task_run_id: null },
        deploymentConcurrencyLimitId: null,
      });
      expect(await t.db.flowRuns.relatedOf(MISSING)).toBeNull();
      await expect(t.db.flowRuns.relatedOf("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("create and read", () => {
    it("creates a run without a state", async () => {
      const run = await create({ name: "bare" });
      expect(run).toMatchObject({ name: "bare", flow_id: flow.id, state: null, state_id: null, state_type: null, state_name: null, state_timestamp: null });
      expect(await t.db.flowRuns.get(run.id)).toEqual(run);
    });

    it("creates a run with its first state and points at it", async () => {
      const run = await create({ state: { type: "SCHEDULED", name: "Late", timestamp: T1, message: "soon", data: { x: 1 }, state_details: { k: "v" } } });
      expect(run.state).toMatchObject({ type: "SCHEDULED", name: "Late", timestamp: T1, message: "soon", data: { x: 1 }, state_details: { k: "v" } });
      expect(run).toMatchObject({ state_id: run.state?.id, state_type: "SCHEDULED", state_name: "Late", state_timestamp: T1 });
      expect(await t.db.flowRuns.get(run.id)).toEqual(run);
      expect(await t.db.flowRuns.readStates(run.id)).toEqual([{ ...run.state, flow_run_id: run.id }]);
    });

    it("answers concurrent reads each with its own run, the same one twice or in capitals, and null for a missing one", async () => {
      const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => create({ name: `run-${i}`, state: i % 2 ? { type: "RUNNING" } : null })));
      const ids = [...runs.map((r) => r.id), runs[3]!.id, MISSING, runs[0]!.id.toUpperCase()];
      const read = await Promise.all(ids.map((id) => t.db.flowRuns.get(id)));
      expect(read).toEqual([...runs, runs[3], null, runs[0]]);
      const tasks = await Promise.all(runs.slice(0, 3).map((r) => t.db.taskRuns.create({ flow_run_id: r.id, task_key: "k", dynamic_key: "0" })));
      expect(await Promise.all([...tasks.map((task) => t.db.taskRuns.get(task.row.id)), t.db.taskRuns.get(MISSING)])).toEqual([...tasks.map((task) => task.row), null]);
      await expect(Promise.all([t.db.flowRuns.get(runs[1]!.id), t.db.flowRuns.get("not-a-uuid")])).rejects.toBeInstanceOf(InvalidError);
    });

    it("names the first state after its type by default", async () => {
      const run = await create({ state: { type: "RUNNING" } });
      expect(run.state_name).toBe("Running");
      expect((await t.db.flowRuns.get(run.id))?.state?.name).toBe("Running");
    });

    it("reads back every field as created", async () => {
      const pool = await t.db.workPools.create({ name: "pool" });
      const run = await create({
        name: "full",
        tags: ["a", "b"],
        labels: { team: "data", priority: 2, on: true },
        parameters: { n: 1, nested: { list: [1, "two"] } },
        context: { c: true },
        empirical_policy: { retries: 3 },
        deployment_id: uuid(1),
        deployment_version: "v1",
        work_queue_id: pool.default_queue_id,
        work_queue_name: "default",
        flow_version: "1.2.3",
        job_variables: { image: "python" },
        infrastructure_pid: "pid-1",
        created_by: { id: uuid(3), type: "DEPLOYMENT", display_value: "d" },
        auto_scheduled: true,
        run_count: 2,
        total_run_time: 1.5,
        expected_start_time: T1,
        next_scheduled_start_time: T2,
        start_time: T2,
        end_time: T3,
      });
      const read = await t.db.flowRuns.get(run.id);
      expect(read).toEqual(run);
      expect(read).toMatchObject({ auto_scheduled: true, total_run_time: 1.5, run_count: 2, labels: { team: "data", priority: 2, on: true } });
    });

    it("keeps microseconds of timestamps on a round trip", async () => {
      const run = await create({ start_time: "2024-05-06T07:08:09.123456Z", state: { type: "RUNNING", timestamp: "2024-05-06T07:08:09.000001Z" } });
      const read = await t.db.flowRuns.get(run.id);
      expect(read?.start_time).toBe("2024-05-06T07:08:09.123456Z");
      expect(read?.state?.timestamp).toBe("2024-05-06T07:08:09.000001Z");
      expect(read?.created).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      expect(read?.created).toBe(run.created);
    });

    it("stores timestamps given with an offset in canonical UTC form", async () => {
      const run = await create({ start_time: "2024-05-06T09:08:09.5+02:00" });
      expect(run.start_time).toBe("2024-05-06T07:08:09.500000Z");
      expect((await t.db.flowRuns.get(run.id))?.start_time).toBe("2024-05-06T07:08:09.500000Z");
    });

    it("gives a run a random two-word name by default", async () => {
      const run = await create();
      expect(run.name).toMatch(/^[a-z]+-[a-z]+$/);
    });

    it("returns the existing run for an idempotency key already used by the same flow", async () => {
      const first = await t.db.flowRuns.create({ flow_id: flow.id, idempotency_key: "k", name: "first", state: { type: "SCHEDULED" } });
      const again = await t.db.flowRuns.create({ flow_id: flow.id, idempotency_key: "k", name: "second", state: { type: "RUNNING" } });
      expect(first.created).toBe(true);
      expect(again.created).toBe(false);
      expect(again.row).toEqual(first.row);
      expect(await t.db.flowRuns.readStates(first.row.id)).toHaveLength(1);
      expect(await t.db.flowRuns.count()).toBe(1);
    });

    it("creates a new run for the same idempotency key on another flow", async () => {
      const other = (await t.db.flows.create({ name: "other" })).row;
      const first = await t.db.flowRuns.create({ flow_id: flow.id, idempotency_key: "k" });
      const second = await t.db.flowRuns.create({ flow_id: other.id, idempotency_key: "k" });
      expect(second.created).toBe(true);
      expect(second.row.id).not.toBe(first.row.id);
    });

    it("refuses the same explicit id twice", async () => {
      await create({ id: uuid(7) });
      await expect(create({ id: uuid(7) })).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(create({ id: uuid(7), state: { type: "PENDING" } })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("refuses an unknown flow_id", async () => {
      await expect(create({ flow_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ flow_id: MISSING, state: { type: "PENDING" } })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.flowRuns.count()).toBe(0);
    });

    it("refuses malformed input", async () => {
      await expect(create({ flow_id: "nope" })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ state: { type: "DONE" as "COMPLETED" } })).rejects.toBeInstanceOf(InvalidError);
    });

    it("returns null for an unknown id and refuses a malformed one", async () => {
      expect(await t.db.flowRuns.get(MISSING)).toBeNull();
      await expect(t.db.flowRuns.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("finds a run by its id in upper case", async () => {
      const run = await create();
      expect((await t.db.flowRuns.get(run.id.toUpperCase()))?.id).toBe(run.id);
    });
  });

  describe("update and delete", () => {
    it("updates the given fields and the updated timestamp", async () => {
      const run = await create({ name: "before", tags: ["x"], parameters: { a: 1 } });
      const updated = await t.db.flowRuns.update(run.id, { name: "after", tags: ["y"], job_variables: { cpu: 2 } });
      expect(updated).toMatchObject({ name: "after", tags: ["y"], parameters: { a: 1 }, job_variables: { cpu: 2 } });
      expect(updated.updated > run.updated).toBe(true);
      expect(await t.db.flowRuns.get(run.id)).toEqual(updated);
    });

    it("updates a run addressed by its id in upper case", async () => {
      const run = await create();
      expect((await t.db.flowRuns.update(run.id.toUpperCase(), { name: "renamed" })).name).toBe("renamed");
    });

    it("refuses to update an unknown or malformed id", async () => {
      await expect(t.db.flowRuns.update(MISSING, { name: "x" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.flowRuns.update("nope", { name: "x" })).rejects.toBeInstanceOf(InvalidError);
    });

    it("deletes a run with its states and task runs", async () => {
      const run = await create({ state: { type: "RUNNING" } });
      const { row: task } = await t.db.taskRuns.create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0", state: { type: "RUNNING" } });
      await t.db.flowRuns.delete(run.id);
      expect(await t.db.flowRuns.get(run.id)).toBeNull();
      expect(await t.db.flowRuns.getState(run.state_id!)).toBeNull();
      expect(await t.db.taskRuns.get(task.id)).toBeNull();
      expect(await t.db.taskRuns.getState(task.state_id!)).toBeNull();
    });

    it("deletes a run addressed by its id in upper case", async () => {
      const run = await create();
      await t.db.flowRuns.delete(run.id.toUpperCase());
      expect(await t.db.flowRuns.get(run.id)).toBeNull();
    });

    it("refuses to delete an unknown or malformed id", async () => {
      await expect(t.db.flowRuns.delete(MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.flowRuns.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("states", () => {
    it("inserts a state and moves the run's pointer to it", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      const state = await t.db.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T2, message: "go" });
      expect(state).toMatchObject({ flow_run_id: run.id, type: "RUNNING", name: "Running", timestamp: T2, message: "go" });
      const read = await t.db.flowRuns.get(run.id);
      expect(read).toMatchObject({ state_id: state.id, state_type: "RUNNING", state_name: "Running", state_timestamp: T2 });
      expect(read?.state).toEqual({ id: state.id, type: "RUNNING", name: "Running", timestamp: T2, message: "go", data: null, state_details: {}, result_artifact_id: null });
      expect(read!.updated > run.updated).toBe(true);
    });

    it("applies the bookkeeping fields given with a state", async () => {
      const run = await create({ empirical_policy: { retries: 1 } });
      await t.db.flowRuns.setState(
        run.id,
        { type: "COMPLETED", timestamp: T3 },
        { run_count: 1, start_time: T1, end_time: T3, total_run_time: 2.25, expected_start_time: T1, next_scheduled_start_time: null, empirical_policy: { retries: 2 } },
      );
      expect(await t.db.flowRuns.get(run.id)).toMatchObject({
        run_count: 1,
        start_time: T1,
        end_time: T3,
        total_run_time: 2.25,
        expected_start_time: T1,
        next_scheduled_start_time: null,
        empirical_policy: { retries: 2 },
      });
    });

    it("leaves bookkeeping fields that are not given alone", async () => {
      const run = await create({ start_time: T1, run_count: 3 });
      await t.db.flowRuns.setState(run.id, { type: "RUNNING" });
      expect(await t.db.flowRuns.get(run.id)).toMatchObject({ start_time: T1, run_count: 3 });
    });

    it("moves a state at a taken timestamp on by one microsecond, repeatedly", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      const second = await t.db.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T1 });
      const third = await t.db.flowRuns.setState(run.id, { type: "COMPLETED", timestamp: T1 });
      expect(second.timestamp).toBe("2024-01-01T00:00:00.000002Z");
      expect(third.timestamp).toBe("2024-01-01T00:00:00.000003Z");
      expect((await t.db.flowRuns.get(run.id))?.state_timestamp).toBe("2024-01-01T00:00:00.000003Z");
    });

    it("writes a final state with its transaction's other writes; at a taken timestamp PostgreSQL rolls them back, SQLite moves it on", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      const attempt = t.db.transaction(async (tx) => {
        await tx.flowRuns.update(run.id, { tags: ["before"] });
        return tx.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T1 }, {}, { final: true });
      });
      if (t.backend === "postgres") {
        await expect(attempt).rejects.toBeInstanceOf(StateTimestampTakenError);
        expect(await t.db.flowRuns.get(run.id)).toMatchObject({ state_type: "PENDING", tags: [] });
      } else {
        expect((await attempt).timestamp).toBe("2024-01-01T00:00:00.000002Z");
        expect(await t.db.flowRuns.get(run.id)).toMatchObject({ state_type: "RUNNING", tags: ["before"] });
      }
      const written = await t.db.transaction(async (tx) => {
        await tx.flowRuns.update(run.id, { tags: ["after"] });
        const state = await tx.flowRuns.setState(run.id, { type: "COMPLETED", timestamp: T2 }, { end_time: T2 }, { final: true });
        // What the transaction reads after it sees it.
        expect((await tx.flowRuns.get(run.id))?.state_id).toBe(state.id);
        return state;
      });
      expect(await t.db.flowRuns.get(run.id)).toMatchObject({ state_type: "COMPLETED", state_id: written.id, end_time: T2, tags: ["after"] });
      // Nested in a transaction that goes on, it commits with that transaction, or not at all.
      await expect(
        t.db.transaction(async (tx) => {
          await tx.transaction((inner) => inner.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T3 }, {}, { final: true }));
          throw new Error("the outer transaction fails");
        }),
      ).rejects.toThrow("the outer transaction fails");
      expect((await t.db.flowRuns.get(run.id))?.state_type).toBe("COMPLETED");
    });

    it("moves the run's times set from a taken timestamp along with the state", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      const T2 = "2024-01-01T00:00:05.000000Z";
      const running = await t.db.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T1 }, { start_time: T1, end_time: T2 });
      expect(running.timestamp).not.toBe(T1);
      expect(await t.db.flowRuns.get(run.id)).toMatchObject({ start_time: running.timestamp, end_time: T2 });
    });

    it("keeps timestamps of different runs independent", async () => {
      await create({ state: { type: "PENDING", timestamp: T1 } });
      const other = await create();
      expect((await t.db.flowRuns.setState(other.id, { type: "PENDING", timestamp: T1 })).timestamp).toBe(T1);
    });

    it("refuses a state for an unknown run", async () => {
      await expect(t.db.flowRuns.setState(MISSING, { type: "RUNNING" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.flowRuns.setState("nope", { type: "RUNNING" })).rejects.toBeInstanceOf(InvalidError);
    });

    it("sets a state on a run addressed by its id in upper case", async () => {
      const run = await create();
      const state = await t.db.flowRuns.setState(run.id.toUpperCase(), { type: "RUNNING" });
      expect(state.flow_run_id).toBe(run.id);
      expect(await t.db.flowRuns.readStates(run.id.toUpperCase())).toHaveLength(1);
    });

    it("reads a run's states in timestamp order", async () => {
      const run = await create();
      await t.db.flowRuns.setState(run.id, { type: "COMPLETED", timestamp: T3 });
      await t.db.flowRuns.setState(run.id, { type: "PENDING", timestamp: T1 });
      await t.db.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T2 });
      const states = await t.db.flowRuns.readStates(run.id);
      expect(states.map((s) => [s.type, s.timestamp])).toEqual([
        ["PENDING", T1],
        ["RUNNING", T2],
        ["COMPLETED", T3],
      ]);
    });

    it("reads no states of another run", async () => {
      const a = await create({ state: { type: "PENDING" } });
      const b = await create();
      expect(await t.db.flowRuns.readStates(b.id)).toEqual([]);
      expect(await t.db.flowRuns.readStates(a.id)).toHaveLength(1);
    });

    it("gets one state by id", async () => {
      const run = await create();
      const state = await t.db.flowRuns.setState(run.id, { type: "FAILED", message: "boom", data: ["r"], state_details: { retriable: false } });
      expect(await t.db.flowRuns.getState(state.id)).toEqual(state);
      expect(await t.db.flowRuns.getState(MISSING)).toBeNull();
    });

    it("deletes a state", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      await t.db.flowRuns.setState(run.id, { type: "RUNNING", timestamp: T2 });
      await t.db.flowRuns.deleteState(run.state_id!);
      expect((await t.db.flowRuns.readStates(run.id)).map((s) => s.type)).toEqual(["RUNNING"]);
      await expect(t.db.flowRuns.deleteState(run.state_id!)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("clears the run's pointer when its current state is deleted", async () => {
      const run = await create({ state: { type: "PENDING" } });
      await t.db.flowRuns.deleteState(run.state_id!);
      expect(await t.db.flowRuns.get(run.id)).toMatchObject({ state_id: null, state: null });
    });
  });

  describe("getForUpdate", () => {
    it("reads the run with its state inside a transaction", async () => {
      const run = await create({ state: { type: "PENDING" } });
      const locked = await t.db.transaction(async (tx) => {
        const read = await tx.flowRuns.getForUpdate(run.id);
        await tx.flowRuns.setState(run.id, { type: "RUNNING" });
        return read;
      });
      expect(locked).toEqual(run);
      expect((await t.db.flowRuns.get(run.id))?.state_type).toBe("RUNNING");
    });

    it("returns null for an unknown run", async () => {
      expect(await t.db.transaction((tx) => tx.flowRuns.getForUpdate(MISSING))).toBeNull();
    });

    it("waits for a writer that holds the run, then reads the run with the state and queue that writer left", async () => {
      const pool = await t.db.workPools.create({ name: "locked-pool", type: "process" });
      const run = await create({ state: { type: "PENDING" } });
      let release = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let locked = () => {};
      const lockTaken = new Promise<void>((resolve) => {
        locked = resolve;
      });
      const writer = t.db.transaction(async (tx) => {
        await tx.flowRuns.getForUpdate(run.id);
        await tx.flowRuns.setState(run.id, { type: "RUNNING" });
        await tx.flowRuns.update(run.id, { work_queue_id: pool.default_queue_id });
        locked();
        await held;
      });
      await lockTaken;
      const reader = t.db.transaction((tx) => tx.flowRuns.getForUpdate(run.id));
      if (t.config.backend === "postgres") {
        // The reader's statement waits for the writer's row lock before the writer commits.
        const session = await openPostgresSession(t.config.url);
        try {
          for (let waiting = 0; waiting === 0; ) {
            const [row] = await session.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            );
            waiting = row?.n ?? 0;
          }
        } finally {
          await session.close();
        }
      }
      release();
      await writer;
      const read = await reader;
      const current = await t.db.flowRuns.get(run.id);
      expect(current).toMatchObject({ state_type: "RUNNING", work_pool_id: pool.id });
      expect(read).toEqual(current);
    });
  });

  describe("filters", () => {
    let other: Flow;
    let redFox: FlowRun;
    let blueWhale: FlowRun;
    let greenFrog: FlowRun;
    let task: TaskRun;

    beforeEach(async () => {
      other = (await t.db.flows.create({ name: "other", tags: ["nightly"] })).row;
      redFox = await create({
        name: "red-fox",
        tags: ["a", "b"],
        deployment_id: uuid(1),
        work_queue_name: "q1",
        flow_version: "1.0",
        start_time: T1,
        expected_start_time: T1,
        idempotency_key: "k1",
        created_by: { id: uuid(11), type: "DEPLOYMENT" },
        state: { type: "RUNNING" },
      });
      blueWhale = await create({
        name: "blue-whale",
        tags: ["a"],
        flow_version: "2.0",
        start_time: T2,
        end_time: T3,
        expected_start_time: T2,
        idempotency_key: "k2",
        created_by: { id: uuid(12), type: "AUTOMATION" },
        state: { type: "COMPLETED" },
      });
      task = (await t.db.taskRuns.create({ flow_run_id: redFox.id, task_key: "spawn", dynamic_key: "0", name: "spawn-0" })).row;
      await create({
        flow_id: other.id,
        name: "red-panda",
        deployment_id: uuid(2),
        work_queue_name: "q2",
        expected_start_time: T3,
        next_scheduled_start_time: T3,
        parent_task_run_id: task.id,
        state: { type: "SCHEDULED", name: "Late" },
      });
      greenFrog = await create({ flow_id: other.id, name: "green-frog" });
    });

    const names = async (criteria: RunCriteria) => (await t.db.flowRuns.read(criteria)).map((r) => r.name).sort();
    const matching = (filter: z.input<typeof FlowRunFilter>) => names({ flow_runs: runFilter(filter) });

    it("reads every run without criteria", async () => {
      expect(await names({})).toEqual(["blue-whale", "green-frog", "red-fox", "red-panda"]);
    });

    it("filters by id any_ and not_any_", async () => {
      expect(await matching({ id: { any_: [redFox.id, greenFrog.id] } })).toEqual(["green-frog", "red-fox"]);
      expect(await matching({ id: { not_any_: [redFox.id, greenFrog.id] } })).toEqual(["blue-whale", "red-panda"]);
    });

    it("filters by name any_", async () => {
      expect(await matching({ name: { any_: ["blue-whale", "nope"] } })).toEqual(["blue-whale"]);
    });

    it("filters by name like_ as a case-insensitive substring", async () => {
      expect(await matching({ name: { like_: "RED" } })).toEqual(["red-fox", "red-panda"]);
      expect(await matching({ name: { like_: "d-p" } })).toEqual(["red-panda"]);
    });

    it("filters by tags all_, any_ and is_null_", async () => {
      expect(await matching({ tags: { all_: ["a", "b"] } })).toEqual(["red-fox"]);
      expect(await matching({ tags: { any_: ["b", "zzz"] } })).toEqual(["red-fox"]);
      expect(await matching({ tags: { any_: ["a"] } })).toEqual(["blue-whale", "red-fox"]);
      expect(await matching({ tags: { is_null_: true } })).toEqual(["green-frog", "red-panda"]);
      expect(await matching({ tags: { is_null_: false } })).toEqual(["blue-whale", "red-fox"]);
    });

    it("combines tag criteria with or_", async () => {
      expect(await matching({ tags: { operator: "or_", all_: ["b"], is_null_: true } })).toEqual(["green-frog", "red-fox", "red-panda"]);
    });

    it("filters by deployment_id any_ and is_null_", async () => {
      expect(await matching({ deployment_id: { any_: [uuid(1)] } })).toEqual(["red-fox"]);
      expect(await matching({ deployment_id: { is_null_: true } })).toEqual(["blue-whale", "green-frog"]);
      expect(await matching({ deployment_id: { is_null_: false } })).toEqual(["red-fox", "red-panda"]);
    });

    it("filters by work_queue_name any_ and is_null_", async () => {
      expect(await matching({ work_queue_name: { any_: ["q2"] } })).toEqual(["red-panda"]);
      expect(await matching({ work_queue_name: { is_null_: true } })).toEqual(["blue-whale", "green-frog"]);
    });

    it("filters by state type any_ and not_any_", async () => {
      expect(await matching({ state: { type: { any_: ["RUNNING", "COMPLETED"] } } })).toEqual(["blue-whale", "red-fox"]);
      expect(await matching({ state: { type: { not_any_: ["RUNNING"] } } })).toEqual(["blue-whale", "red-panda"]);
    });

    it("filters by state name any_ and not_any_", async () => {
      expect(await matching({ state: { name: { any_: ["Late"] } } })).toEqual(["red-panda"]);
      expect(await matching({ state: { name: { not_any_: ["Late", "Running"] } } })).toEqual(["blue-whale"]);
    });

    it("combines state type and name with or_", async () => {
      expect(await matching({ state: { operator: "or_", type: { any_: ["RUNNING"] }, name: { any_: ["Late"] } } })).toEqual(["red-fox", "red-panda"]);
    });

    it("filters by flow_version any_", async () => {
      expect(await matching({ flow_version: { any_: ["1.0"] } })).toEqual(["red-fox"]);
    });

    it.each([
      ["start_time", { before_: T1 }, ["red-fox"]],
      ["start_time", { after_: T2 }, ["blue-whale"]],
      ["start_time", { after_: "2024-01-01T00:00:00.000002Z" }, ["blue-whale"]],
      ["start_time", { after_: T1, before_: T2 }, ["blue-whale", "red-fox"]],
      ["start_time", { is_null_: true }, ["green-frog", "red-panda"]],
      ["end_time", { before_: T3 }, ["blue-whale"]],
      ["end_time", { after_: "2024-01-03T00:00:00.000001Z" }, []],
      ["end_time", { is_null_: false }, ["blue-whale"]],
      ["expected_start_time", { after_: T2 }, ["blue-whale", "red-panda"]],
      ["expected_start_time", { before_: "2024-01-01T00:00:00.000000Z" }, []],
      ["expected_start_time", { is_null_: true }, ["green-frog"]],
      ["next_scheduled_start_time", { before_: T3 }, ["red-panda"]],
      ["next_scheduled_start_time", { after_: T3, is_null_: false }, ["red-panda"]],
      ["next_scheduled_start_time", { is_null_: true }, ["blue-whale", "green-frog", "red-fox"]],
    ] as const)("filters by %s %o (bounds inclusive)", async (column, criterion, expected) => {
      expect(await matching({ [column]: criterion })).toEqual(expected);
    });

    it("filters by parent_task_run_id any_ and is_null_", async () => {
      expect(await matching({ parent_task_run_id: { any_: [task.id] } })).toEqual(["red-panda"]);
      expect(await matching({ parent_task_run_id: { is_null_: true } })).toEqual(["blue-whale", "green-frog", "red-fox"]);
      expect(await matching({ parent_task_run_id: { is_null_: false } })).toEqual(["red-panda"]);
    });

    it("filters by parent_flow_run_id any_ (runs started by a task of that run)", async () => {
      expect(await matching({ parent_flow_run_id: { any_: [redFox.id] } })).toEqual(["red-panda"]);
      expect(await matching({ parent_flow_run_id: { any_: [blueWhale.id] } })).toEqual([]);
    });

    it("filters by idempotency_key any_ and not_any_", async () => {
      expect(await matching({ idempotency_key: { any_: ["k1"] } })).toEqual(["red-fox"]);
      expect(await matching({ idempotency_key: { not_any_: ["k1"] } })).toEqual(["blue-whale"]);
    });

    it("filters by created_by id_, type_ and is_null_", async () => {
      expect(await matching({ created_by: { id_: [uuid(11)] } })).toEqual(["red-fox"]);
      expect(await matching({ created_by: { type_: ["AUTOMATION"] } })).toEqual(["blue-whale"]);
      expect(await matching({ created_by: { is_null_: true } })).toEqual(["green-frog", "red-panda"]);
      expect(await matching({ created_by: { is_null_: false } })).toEqual(["blue-whale", "red-fox"]);
    });

    it("combines criteria with and_ by default and with or_ when asked", async () => {
      expect(await matching({ name: { any_: ["red-fox"] }, flow_version: { any_: ["2.0"] } })).toEqual([]);
      expect(await matching({ operator: "or_", name: { any_: ["red-fox"] }, flow_version: { any_: ["2.0"] } })).toEqual(["blue-whale", "red-fox"]);
    });

    it("keeps runs whose flow matches flows", async () => {
      expect(await names({ flows: flowFilter({ name: { any_: ["other"] } }) })).toEqual(["green-frog", "red-panda"]);
      expect(await names({ flows: flowFilter({ tags: { all_: ["nightly"] } }), flow_runs: runFilter({ name: { like_: "red" } }) })).toEqual(["red-panda"]);
    });

    it("keeps runs that have task runs matching task_runs", async () => {
      expect(await names({ task_runs: taskFilter({ name: { any_: ["spawn-0"] } }) })).toEqual(["red-fox"]);
      expect(await names({ task_runs: taskFilter({ subflow_runs: { exists_: true } }) })).toEqual(["red-fox"]);
    });

    it("counts with the same criteria", async () => {
      expect(await t.db.flowRuns.count()).toBe(4);
      expect(await t.db.flowRuns.count({ flow_runs: runFilter({ name: { like_: "red" } }) })).toBe(2);
      expect(await t.db.flowRuns.count({ flows: flowFilter({ name: { any_: ["etl"] } }), flow_runs: runFilter({ tags: { any_: ["b"] } }) })).toBe(1);
      expect(await t.db.flowRuns.count({ task_runs: taskFilter({ name: { any_: ["spawn-0"] } }) })).toBe(1);
    });
  });

  describe("sorts", () => {
    beforeEach(async () => {
      // id order: b < d < a < c
      await create({ id: uuid(3), name: "a", start_time: T2, expected_start_time: T1, next_scheduled_start_time: T3, end_time: T1 });
      await create({ id: uuid(1), name: "b", expected_start_time: T3 });
      await create({ id: uuid(4), name: "c", next_scheduled_start_time: T1, end_time: T3 });
      await create({ id: uuid(2), name: "d", start_time: T1, expected_start_time: T2, next_scheduled_start_time: T2, end_time: T2 });
    });

    const sorted = async (sort?: FlowRunSort, page: { limit?: number; offset?: number } = {}) =>
      (await t.db.flowRuns.read({ sort, ...page })).map((r) => r.name);

    it.each([
      ["ID_DESC", ["c", "a", "d", "b"]],
      ["START_TIME_ASC", ["d", "a", "b", "c"]],
      ["START_TIME_DESC", ["c", "b", "a", "d"]],
      ["EXPECTED_START_TIME_ASC", ["a", "d", "b", "c"]],
      ["EXPECTED_START_TIME_DESC", ["c", "b", "d", "a"]],
      ["NAME_ASC", ["a", "b", "c", "d"]],
      ["NAME_DESC", ["d", "c", "b", "a"]],
      ["NEXT_SCHEDULED_START_TIME_ASC", ["c", "d", "a", "b"]],
      ["END_TIME_DESC", ["b", "c", "d", "a"]],
    ] as const)("sorts by %s with NULLs last ascending and first descending", async (sort, expected) => {
      expect(await sorted(sort)).toEqual(expected);
    });

    it("sorts by ID_DESC by default", async () => {
      expect(await sorted()).toEqual(["c", "a", "d", "b"]);
    });

    it("pages with limit and offset", async () => {
      expect(await sorted("NAME_ASC", { limit: 2 })).toEqual(["a", "b"]);
      expect(await sorted("NAME_ASC", { limit: 2, offset: 1 })).toEqual(["b", "c"]);
      expect(await sorted("NAME_ASC", { offset: 3 })).toEqual(["d"]);
      expect(await sorted("NAME_ASC", { offset: 10 })).toEqual([]);
      expect(await sorted("NAME_ASC", { limit: 0 })).toEqual([]);
    });
  });
});
