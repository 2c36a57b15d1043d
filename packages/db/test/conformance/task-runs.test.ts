import { beforeEach, describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  type Flow,
  FlowFilter,
  type FlowRun,
  FlowRunFilter,
  InvalidError,
  NotFoundError,
  type RunCriteria,
  type TaskRun,
  type TaskRunCreate,
  TaskRunFilter,
  type TaskRunSort,
  type Timestamp,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const flowFilter = (f: z.input<typeof FlowFilter>) => FlowFilter.parse(f);
const runFilter = (f: z.input<typeof FlowRunFilter>) => FlowRunFilter.parse(f);
const taskFilter = (f: z.input<typeof TaskRunFilter>) => TaskRunFilter.parse(f);

const T1 = "2024-01-01T00:00:00.000001Z" as Timestamp;
const T2 = "2024-01-02T00:00:00.000000Z" as Timestamp;
const T3 = "2024-01-03T00:00:00.000000Z" as Timestamp;
const MISSING = "00000000-0000-4000-8000-000000000000";
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describeEachBackend("task runs", (t) => {
  let flow: Flow;
  let flowRun: FlowRun;
  let keys = 0;

  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
    flowRun = (await t.db.flowRuns.create({ flow_id: flow.id, name: "parent" })).row;
  });

  const create = async (input: Partial<TaskRunCreate> = {}) =>
    (await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: `task-${++keys}`, dynamic_key: "0", ...input })).row;

  describe("create and read", () => {
    it("creates a run without a state", async () => {
      const run = await create({ name: "bare" });
      expect(run).toMatchObject({ name: "bare", flow_run_id: flowRun.id, state: null, state_id: null, state_type: null, state_name: null, state_timestamp: null });
      expect(await t.db.taskRuns.get(run.id)).toEqual(run);
    });

    it("creates a run with its first state and points at it", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1, message: "queued", data: { ref: "x" } } });
      expect(run.state).toMatchObject({ type: "PENDING", name: "Pending", timestamp: T1, message: "queued", data: { ref: "x" } });
      expect(run).toMatchObject({ state_id: run.state?.id, state_type: "PENDING", state_name: "Pending", state_timestamp: T1 });
      expect(await t.db.taskRuns.get(run.id)).toEqual(run);
      expect(await t.db.taskRuns.readStates(run.id)).toEqual([{ ...run.state, task_run_id: run.id }]);
    });

    it("reads back every field as created", async () => {
      const run = await create({
        name: "full",
        task_key: "my_module.my_task",
        dynamic_key: "3",
        cache_key: "ck",
        cache_expiration: T3,
        task_version: "v2",
        flow_run_run_count: 2,
        task_inputs: { x: [{ input_type: "parameter", name: "x" }] },
        empirical_policy: { retries: 1, retry_delay: 5 },
        tags: ["t1"],
        labels: { a: "b" },
        run_count: 1,
        total_run_time: 0.75,
        expected_start_time: T1,
        next_scheduled_start_time: T2,
        start_time: "2024-01-01T00:00:00.123456Z",
        end_time: T3,
      });
      expect(await t.db.taskRuns.get(run.id)).toEqual(run);
      expect(run.start_time).toBe("2024-01-01T00:00:00.123456Z");
    });

    it("gives a run a random two-word name by default", async () => {
      expect((await create()).name).toMatch(/^[a-z]+-[a-z]+$/);
    });

    it("returns the existing run for the same flow run, task key and dynamic key", async () => {
      const first = await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "k", dynamic_key: "0", name: "first", state: { type: "PENDING" } });
      const again = await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "k", dynamic_key: "0", name: "second", state: { type: "RUNNING" } });
      expect(first.created).toBe(true);
      expect(again.created).toBe(false);
      expect(again.row).toEqual(first.row);
      expect(await t.db.taskRuns.readStates(first.row.id)).toHaveLength(1);
    });

    it("creates a new run when the dynamic key or the flow run differs", async () => {
      const other = (await t.db.flowRuns.create({ flow_id: flow.id })).row;
      const a = await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "k", dynamic_key: "0" });
      const b = await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "k", dynamic_key: "1" });
      const c = await t.db.taskRuns.create({ flow_run_id: other.id, task_key: "k", dynamic_key: "0" });
      expect([a.created, b.created, c.created]).toEqual([true, true, true]);
      expect(new Set([a.row.id, b.row.id, c.row.id]).size).toBe(3);
    });

    it("creates a background task run (no flow run) every time, without upsert", async () => {
      const a = await t.db.taskRuns.create({ flow_run_id: null, task_key: "bg", dynamic_key: "0" });
      const b = await t.db.taskRuns.create({ task_key: "bg", dynamic_key: "0" });
      expect([a.created, b.created]).toEqual([true, true]);
      expect(b.row.id).not.toBe(a.row.id);
      expect((await t.db.taskRuns.get(a.row.id))?.flow_run_id).toBeNull();
    });

    it("refuses an unknown flow_run_id", async () => {
      await expect(create({ flow_run_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ flow_run_id: MISSING, state: { type: "PENDING" } })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.taskRuns.count()).toBe(0);
    });

    it("refuses malformed input", async () => {
      await expect(create({ task_key: "" })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ flow_run_id: "nope" })).rejects.toBeInstanceOf(InvalidError);
    });

    it("returns null for an unknown id and refuses a malformed one", async () => {
      expect(await t.db.taskRuns.get(MISSING)).toBeNull();
      await expect(t.db.taskRuns.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("finds, updates and deletes a run addressed by its id in upper case", async () => {
      const run = await create();
      const upper = run.id.toUpperCase();
      expect((await t.db.taskRuns.get(upper))?.id).toBe(run.id);
      expect((await t.db.taskRuns.update(upper, { name: "renamed" })).name).toBe("renamed");
      await t.db.taskRuns.delete(upper);
      expect(await t.db.taskRuns.get(run.id)).toBeNull();
    });
  });

  describe("update and delete", () => {
    it("updates the given fields and the updated timestamp", async () => {
      const run = await create({ name: "before", task_inputs: { a: [] } });
      const updated = await t.db.taskRuns.update(run.id, { name: "after", cache_key: "ck", cache_expiration: T2, flow_run_run_count: 4 });
      expect(updated).toMatchObject({ name: "after", cache_key: "ck", cache_expiration: T2, flow_run_run_count: 4, task_inputs: { a: [] } });
      expect(updated.updated > run.updated).toBe(true);
      expect(await t.db.taskRuns.get(run.id)).toEqual(updated);
    });

    it("refuses to update an unknown or malformed id", async () => {
      await expect(t.db.taskRuns.update(MISSING, { name: "x" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.taskRuns.update("nope", { name: "x" })).rejects.toBeInstanceOf(InvalidError);
    });

    it("deletes a run with its states", async () => {
      const run = await create({ state: { type: "RUNNING" } });
      await t.db.taskRuns.delete(run.id);
      expect(await t.db.taskRuns.get(run.id)).toBeNull();
      expect(await t.db.taskRuns.getState(run.state_id!)).toBeNull();
    });

    it("refuses to delete an unknown or malformed id", async () => {
      await expect(t.db.taskRuns.delete(MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.taskRuns.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("is deleted with its flow run", async () => {
      const run = await create({ state: { type: "COMPLETED" } });
      await t.db.flowRuns.delete(flowRun.id);
      expect(await t.db.taskRuns.get(run.id)).toBeNull();
      expect(await t.db.taskRuns.getState(run.state_id!)).toBeNull();
    });

    it("clears parent_task_run_id of its subflow runs when deleted", async () => {
      const run = await create();
      const { row: subflow } = await t.db.flowRuns.create({ flow_id: flow.id, parent_task_run_id: run.id });
      await t.db.taskRuns.delete(run.id);
      expect((await t.db.flowRuns.get(subflow.id))?.parent_task_run_id).toBeNull();
    });
  });

  describe("states", () => {
    it("inserts a state and moves the run's pointer to it, with the bookkeeping given", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T1 } });
      const state = await t.db.taskRuns.setState(run.id, { type: "RUNNING", timestamp: T2 }, { run_count: 1, start_time: T2 });
      expect(state).toMatchObject({ task_run_id: run.id, type: "RUNNING", name: "Running", timestamp: T2 });
      const read = await t.db.taskRuns.get(run.id);
      expect(read).toMatchObject({ state_id: state.id, state_type: "RUNNING", state_name: "Running", state_timestamp: T2, run_count: 1, start_time: T2 });
      expect(read?.state?.id).toBe(state.id);
    });

    it("moves a state at a taken timestamp on by one microsecond, repeatedly", async () => {
      const run = await create({ state: { type: "PENDING", timestamp: T2 } });
      const second = await t.db.taskRuns.setState(run.id, { type: "RUNNING", timestamp: T2 });
      const third = await t.db.taskRuns.setState(run.id, { type: "COMPLETED", timestamp: T2 });
      expect([second.timestamp, third.timestamp]).toEqual(["2024-01-02T00:00:00.000001Z", "2024-01-02T00:00:00.000002Z"]);
    });

    it("refuses a state for an unknown run", async () => {
      await expect(t.db.taskRuns.setState(MISSING, { type: "RUNNING" })).rejects.toBeInstanceOf(NotFoundError);
    });

    it("reads a run's states in timestamp order, gets and deletes one", async () => {
      const run = await create();
      const done = await t.db.taskRuns.setState(run.id, { type: "COMPLETED", timestamp: T3 });
      const pending = await t.db.taskRuns.setState(run.id, { type: "PENDING", timestamp: T1 });
      expect((await t.db.taskRuns.readStates(run.id)).map((s) => s.type)).toEqual(["PENDING", "COMPLETED"]);
      expect(await t.db.taskRuns.getState(done.id)).toEqual(done);
      await t.db.taskRuns.deleteState(pending.id);
      expect((await t.db.taskRuns.readStates(run.id)).map((s) => s.id)).toEqual([done.id]);
      await expect(t.db.taskRuns.deleteState(pending.id)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("reads the run with its state inside a transaction with getForUpdate", async () => {
      const run = await create({ state: { type: "PENDING" } });
      expect(await t.db.transaction((tx) => tx.taskRuns.getForUpdate(run.id))).toEqual(run);
      expect(await t.db.transaction((tx) => tx.taskRuns.getForUpdate(MISSING))).toBeNull();
    });
  });

  describe("state cache", () => {
    const completed = async () => {
      const run = await create();
      return t.db.taskRuns.setState(run.id, { type: "COMPLETED" });
    };

    it("caches a state and finds it by key", async () => {
      const state = await completed();
      const entry = await t.db.taskRuns.cacheState({ cache_key: "k", cache_expiration: T3, task_run_state_id: state.id });
      expect(entry).toMatchObject({ cache_key: "k", cache_expiration: T3, task_run_state_id: state.id });
      expect(await t.db.taskRuns.findCachedState("k", T2)).toMatchObject({ id: entry.id, task_run_state_id: state.id });
      expect(await t.db.taskRuns.findCachedState("other", T2)).toBeNull();
    });

    it("returns the newest entry that has not expired", async () => {
      const [a, b, c] = [await completed(), await completed(), await completed()];
      await t.db.taskRuns.cacheState({ cache_key: "k", cache_expiration: T3, task_run_state_id: a.id });
      await t.db.taskRuns.cacheState({ cache_key: "k", cache_expiration: T3, task_run_state_id: b.id });
      await t.db.taskRuns.cacheState({ cache_key: "k", cache_expiration: T1, task_run_state_id: c.id });
      expect((await t.db.taskRuns.findCachedState("k", T2))?.task_run_state_id).toBe(b.id);
    });

    it("ignores expired entries, expiry included", async () => {
      const state = await completed();
      await t.db.taskRuns.cacheState({ cache_key: "k", cache_expiration: T2, task_run_state_id: state.id });
      expect(await t.db.taskRuns.findCachedState("k", "2024-01-01T23:59:59.999999Z" as Timestamp)).not.toBeNull();
      expect(await t.db.taskRuns.findCachedState("k", T2)).toBeNull();
      expect(await t.db.taskRuns.findCachedState("k", T3)).toBeNull();
    });

    it("never expires an entry without an expiration", async () => {
      const state = await completed();
      await t.db.taskRuns.cacheState({ cache_key: "k", task_run_state_id: state.id });
      expect((await t.db.taskRuns.findCachedState("k", "9999-01-01T00:00:00.000000Z" as Timestamp))?.cache_expiration).toBeNull();
    });

    it("stores the state id in lower case", async () => {
      const state = await completed();
      await t.db.taskRuns.cacheState({ cache_key: "k", task_run_state_id: state.id.toUpperCase() });
      expect((await t.db.taskRuns.findCachedState("k"))?.task_run_state_id).toBe(state.id);
    });

    it("refuses a malformed state id", async () => {
      await expect(t.db.taskRuns.cacheState({ cache_key: "k", task_run_state_id: "nope" })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("filters", () => {
    let otherRun: FlowRun;
    let extract: TaskRun;
    let transform: TaskRun;
    let load: TaskRun;

    beforeEach(async () => {
      const otherFlow = (await t.db.flows.create({ name: "other", tags: ["ops"] })).row;
      otherRun = (await t.db.flowRuns.create({ flow_id: otherFlow.id, name: "other-run", tags: ["x"] })).row;
      extract = await create({ name: "extract-users", tags: ["io", "db"], start_time: T1, expected_start_time: T1, state: { type: "COMPLETED" } });
      transform = await create({ name: "transform-users", tags: ["cpu"], start_time: T2, end_time: T3, expected_start_time: T2, state: { type: "FAILED", name: "Crashed hard" } });
      load = await create({ flow_run_id: otherRun.id, name: "LOAD-users", expected_start_time: T3, state: { type: "RUNNING" } });
      await create({ flow_run_id: null, name: "background" });
      await t.db.flowRuns.create({ flow_id: flow.id, name: "subflow", parent_task_run_id: transform.id });
    });

    const names = async (criteria: RunCriteria) => (await t.db.taskRuns.read(criteria)).map((r) => r.name).sort();
    const matching = (filter: z.input<typeof TaskRunFilter>) => names({ task_runs: taskFilter(filter) });

    it("reads every run without criteria", async () => {
      expect(await names({})).toEqual(["LOAD-users", "background", "extract-users", "transform-users"]);
    });

    it("filters by id any_ and not_any_", async () => {
      expect(await matching({ id: { any_: [extract.id, load.id] } })).toEqual(["LOAD-users", "extract-users"]);
      expect(await matching({ id: { not_any_: [extract.id, load.id] } })).toEqual(["background", "transform-users"]);
    });

    it("filters by name any_ and like_ (case-insensitive)", async () => {
      expect(await matching({ name: { any_: ["background"] } })).toEqual(["background"]);
      expect(await matching({ name: { like_: "load" } })).toEqual(["LOAD-users"]);
      expect(await matching({ name: { like_: "-USERS" } })).toEqual(["LOAD-users", "extract-users", "transform-users"]);
    });

    it("filters by tags all_, any_ and is_null_", async () => {
      expect(await matching({ tags: { all_: ["io", "db"] } })).toEqual(["extract-users"]);
      expect(await matching({ tags: { any_: ["db", "cpu"] } })).toEqual(["extract-users", "transform-users"]);
      expect(await matching({ tags: { is_null_: true } })).toEqual(["LOAD-users", "background"]);
    });

    it("filters by state type and name", async () => {
      expect(await matching({ state: { type: { any_: ["COMPLETED", "RUNNING"] } } })).toEqual(["LOAD-users", "extract-users"]);
      expect(await matching({ state: { type: { not_any_: ["COMPLETED"] } } })).toEqual(["LOAD-users", "transform-users"]);
      expect(await matching({ state: { name: { any_: ["Crashed hard"] } } })).toEqual(["transform-users"]);
      expect(await matching({ state: { name: { not_any_: ["Crashed hard"] } } })).toEqual(["LOAD-users", "extract-users"]);
    });

    it.each([
      ["start_time", { before_: T1 }, ["extract-users"]],
      ["start_time", { after_: "2024-01-01T00:00:00.000002Z" }, ["transform-users"]],
      ["start_time", { is_null_: true }, ["LOAD-users", "background"]],
      ["end_time", { after_: T3, before_: T3 }, ["transform-users"]],
      ["end_time", { is_null_: false }, ["transform-users"]],
      ["expected_start_time", { after_: T2 }, ["LOAD-users", "transform-users"]],
      ["expected_start_time", { is_null_: true }, ["background"]],
    ] as const)("filters by %s %o (bounds inclusive)", async (column, criterion, expected) => {
      expect(await matching({ [column]: criterion })).toEqual(expected);
    });

    it("filters by subflow_runs exists_", async () => {
      expect(await matching({ subflow_runs: { exists_: true } })).toEqual(["transform-users"]);
      expect(await matching({ subflow_runs: { exists_: false } })).toEqual(["LOAD-users", "background", "extract-users"]);
    });

    it("filters by flow_run_id any_ and is_null_", async () => {
      expect(await matching({ flow_run_id: { any_: [otherRun.id] } })).toEqual(["LOAD-users"]);
      expect(await matching({ flow_run_id: { is_null_: true } })).toEqual(["background"]);
      expect(await matching({ flow_run_id: { is_null_: false } })).toEqual(["LOAD-users", "extract-users", "transform-users"]);
      expect(await matching({ flow_run_id: { operator: "or_", any_: [otherRun.id], is_null_: true } })).toEqual(["LOAD-users", "background"]);
    });

    it("combines criteria with and_ by default and with or_ when asked", async () => {
      expect(await matching({ name: { any_: ["background"] }, tags: { all_: ["io"] } })).toEqual([]);
      expect(await matching({ operator: "or_", name: { any_: ["background"] }, tags: { all_: ["io"] } })).toEqual(["background", "extract-users"]);
    });

    it("keeps runs whose flow run matches flow_runs", async () => {
      expect(await names({ flow_runs: runFilter({ tags: { all_: ["x"] } }) })).toEqual(["LOAD-users"]);
      expect(await names({ flow_runs: runFilter({ name: { any_: ["parent"] } }) })).toEqual(["extract-users", "transform-users"]);
    });

    it("keeps runs whose flow matches flows", async () => {
      expect(await names({ flows: flowFilter({ tags: { all_: ["ops"] } }) })).toEqual(["LOAD-users"]);
      expect(await names({ flows: flowFilter({ name: { any_: ["etl"] } }), task_runs: taskFilter({ tags: { any_: ["cpu"] } }) })).toEqual(["transform-users"]);
    });

    it("counts with the same criteria", async () => {
      expect(await t.db.taskRuns.count()).toBe(4);
      expect(await t.db.taskRuns.count({ task_runs: taskFilter({ flow_run_id: { any_: [flowRun.id] } }) })).toBe(2);
      expect(await t.db.taskRuns.count({ flows: flowFilter({ name: { any_: ["other"] } }) })).toBe(1);
    });
  });

  describe("sorts", () => {
    beforeEach(async () => {
      // id order: b < d < a < c
      await create({ id: uuid(3), name: "a", expected_start_time: T1, next_scheduled_start_time: T3, end_time: T1 });
      await create({ id: uuid(1), name: "b", expected_start_time: T3 });
      await create({ id: uuid(4), name: "c", next_scheduled_start_time: T1, end_time: T3 });
      await create({ id: uuid(2), name: "d", expected_start_time: T2, next_scheduled_start_time: T2, end_time: T2 });
    });

    const sorted = async (sort?: TaskRunSort, page: { limit?: number; offset?: number } = {}) =>
      (await t.db.taskRuns.read({ sort, ...page })).map((r) => r.name);

    it.each([
      ["ID_DESC", ["c", "a", "d", "b"]],
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
      expect(await sorted("NAME_DESC", { limit: 2 })).toEqual(["d", "c"]);
      expect(await sorted("NAME_DESC", { limit: 2, offset: 1 })).toEqual(["c", "b"]);
      expect(await sorted("NAME_DESC", { offset: 3 })).toEqual(["a"]);
    });
  });
});
