import { randomUUID } from "node:crypto";
import { beforeEach, expect, it } from "vitest";
import { addSeconds, type FlowRun, InvalidError, type StateType, type TaskRunChange, type Timestamp } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const T0 = "2026-03-01T12:00:00.000000Z" as Timestamp;
const at = (seconds: number) => addSeconds(T0, seconds);

/** A change as the server reads it from a `prefect.task-run.<State>` event: the columns sent and the state. */
function change(taskRunId: string, flowRunId: string | null, type: StateType, seconds: number, columns: Record<string, unknown> = {}): TaskRunChange {
  const eventId = randomUUID();
  const name = type.charAt(0) + type.slice(1).toLowerCase();
  return {
    eventId,
    columns: {
      id: taskRunId,
      flow_run_id: flowRunId,
      task_key: "add",
      dynamic_key: "0",
      state_id: eventId,
      state_type: type,
      state_name: name,
      state_timestamp: at(seconds),
      ...columns,
    },
    state: { id: eventId, type, name, timestamp: at(seconds), message: null, data: null, state_details: { task_run_id: taskRunId, flow_run_id: flowRunId } },
  };
}

describeEachBackend("task-run recorder", (t) => {
  let flowRun: FlowRun;

  beforeEach(async () => {
    const flow = (await t.db.flows.create({ name: "arithmetic" })).row;
    flowRun = (await t.db.flowRuns.create({ flow_id: flow.id, name: "parent" })).row;
  });

  it("writes a task run with its columns, Prefect's defaults for the others, and every state", async () => {
    const id = randomUUID();
    const changes = [change(id, flowRun.id, "PENDING", 0, { tags: ["math"] }), change(id, flowRun.id, "RUNNING", 1, { run_count: 1, start_time: at(1) })];
    expect(await t.db.taskRuns.recordChanges(changes)).toEqual(changes.map((c) => ({ event_id: c.eventId, task_run_id: id })));
    const run = await t.db.taskRuns.get(id);
    expect(run).toMatchObject({ flow_run_id: flowRun.id, task_key: "add", state_type: "RUNNING", run_count: 1, start_time: at(1), tags: [] });
    expect(run?.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(run?.empirical_policy).toMatchObject({ max_retries: 0, retry_delay_seconds: 0, retries: null, retry_delay: null });
    expect((await t.db.taskRuns.readStates(id)).map((s) => s.type)).toEqual(["PENDING", "RUNNING"]);
  });

  it("moves a run forward only, records a change twice as once, and joins runs sharing a natural key", async () => {
    const id = randomUUID();
    const pending = change(id, flowRun.id, "PENDING", 0);
    const running = change(id, flowRun.id, "RUNNING", 1);
    await t.db.taskRuns.recordChanges([running]);
    await t.db.taskRuns.recordChanges([pending, running]);
    expect(await t.db.taskRuns.get(id)).toMatchObject({ state_type: "RUNNING", state_id: running.state.id });
    expect(await t.db.taskRuns.readStates(id)).toHaveLength(2);
    const other = change(randomUUID(), flowRun.id, "COMPLETED", 2);
    expect(await t.db.taskRuns.recordChanges([other])).toEqual([{ event_id: other.eventId, task_run_id: id }]);
    expect(await t.db.taskRuns.count()).toBe(1);
  });

  it("writes a batch of many task runs, with their natural keys, in several statements as one", async () => {
    const first = Array.from({ length: 37 }, (_, i) => change(randomUUID(), flowRun.id, "PENDING", 0, { dynamic_key: String(i) }));
    const recorded = await t.db.taskRuns.recordChanges(first);
    expect(recorded).toEqual(first.map((c) => ({ event_id: c.eventId, task_run_id: c.columns.id })));
    // The same runs again under other ids: each joins the run its natural key names.
    const again = first.map((_, i) => change(randomUUID(), flowRun.id, "RUNNING", 1, { dynamic_key: String(i) }));
    expect(await t.db.taskRuns.recordChanges(again)).toEqual(again.map((c, i) => ({ event_id: c.eventId, task_run_id: first[i]!.columns.id })));
    expect(await t.db.taskRuns.count()).toBe(37);
    for (const c of first) expect(await t.db.taskRuns.get(c.columns.id as string)).toMatchObject({ state_type: "RUNNING" });
  });

  it("writes a batch atomically: a change for an unknown flow run fails the whole batch", async () => {
    const id = randomUUID();
    const orphan = change(randomUUID(), randomUUID(), "PENDING", 0, { task_key: "orphan" });
    await expect(t.db.taskRuns.recordChanges([change(id, flowRun.id, "PENDING", 0), orphan])).rejects.toBeInstanceOf(InvalidError);
    expect(await t.db.taskRuns.count()).toBe(0);
  });
});
