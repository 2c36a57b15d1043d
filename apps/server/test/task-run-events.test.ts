import { randomUUID } from "node:crypto";
import { beforeEach, expect, it } from "vitest";
import { addSeconds, type EventCreate, type FlowRun, InvalidError, type Timestamp } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { recordTaskRunEvents } from "../src/features/task-runs/service.js";

const T0 = "2026-03-01T12:00:00.000000Z" as Timestamp;
const at = (seconds: number) => addSeconds(T0, seconds);

const STATE_NAMES = { PENDING: "Pending", RUNNING: "Running", COMPLETED: "Completed", FAILED: "Failed" } as const;
type Step = keyof typeof STATE_NAMES;

interface TaskRunEventOptions {
  readonly taskRunId: string;
  readonly flowRunId?: string | null;
  readonly type: Step;
  readonly occurred: Timestamp;
  readonly id?: string;
  readonly from?: Step | null;
  /** Overrides (or, with undefined, removes) fields of payload.task_run. */
  readonly taskRun?: Record<string, unknown>;
  readonly validatedState?: Record<string, unknown>;
}

/** A `prefect.task-run.<State>` event as Prefect 3.x's task engine emits it (emit_task_run_state_change_event). */
function taskRunEvent(o: TaskRunEventOptions): EventCreate {
  const name = STATE_NAMES[o.type];
  const running = o.type !== "PENDING";
  const final = o.type === "COMPLETED" || o.type === "FAILED";
  const taskRun: Record<string, unknown> = {
    name: "add-1",
    task_key: "add-5f3b1c",
    dynamic_key: "0",
    empirical_policy: { max_retries: 0, retry_delay_seconds: 0.0, retries: 0, retry_delay: 0 },
    tags: ["math"],
    labels: { "prefect.flow.id": "f" },
    task_inputs: { x: [], y: [{ input_type: "task_run", id: "00000000-0000-4000-8000-000000000099" }] },
    run_count: running ? 1 : 0,
    flow_run_run_count: 1,
    expected_start_time: at(0),
    ...(running ? { start_time: at(1) } : {}),
    ...(final ? { end_time: o.occurred } : {}),
    total_run_time: final ? 0.25 : 0.0,
  };
  for (const [key, value] of Object.entries(o.taskRun ?? {})) {
    if (value === undefined) delete taskRun[key];
    else taskRun[key] = value;
  }
  const flowRunId = o.flowRunId === undefined ? null : o.flowRunId;
  return {
    id: o.id ?? randomUUID(),
    occurred: o.occurred,
    event: `prefect.task-run.${name}`,
    resource: {
      "prefect.resource.id": `prefect.task-run.${o.taskRunId}`,
      "prefect.resource.name": String(taskRun.name ?? ""),
      "prefect.run-count": String(taskRun.run_count ?? 0),
      "prefect.state-message": "",
      "prefect.state-name": name,
      "prefect.state-timestamp": o.occurred,
      "prefect.state-type": o.type,
      "prefect.orchestration": "client",
    },
    related: [
      ...(flowRunId ? [{ "prefect.resource.id": `prefect.flow-run.${flowRunId}`, "prefect.resource.role": "flow-run", "prefect.resource.name": "parent" }] : []),
      { "prefect.resource.id": "prefect.tag.math", "prefect.resource.role": "tag" },
    ],
    payload: {
      intended: { from: o.from ?? null, to: o.type },
      initial_state: o.from ? { type: o.from, name: STATE_NAMES[o.from], message: "", state_details: {} } : null,
      validated_state: { type: o.type, name, message: "", state_details: final ? { untrackable_result: false } : {}, data: null, ...o.validatedState },
      task_run: taskRun,
    },
  };
}

describeEachBackend("task-run recorder", (t) => {
  let flowRun: FlowRun;

  beforeEach(async () => {
    const flow = (await t.db.flows.create({ name: "arithmetic" })).row;
    flowRun = (await t.db.flowRuns.create({ flow_id: flow.id, name: "parent" })).row;
  });

  /** Pending, Running, Completed of one task run, a second apart. */
  const lifecycle = (taskRunId: string, overrides: Partial<TaskRunEventOptions> = {}) => [
    taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "PENDING", occurred: at(0), ...overrides }),
    taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "RUNNING", from: "PENDING", occurred: at(1), ...overrides }),
    taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "COMPLETED", from: "RUNNING", occurred: at(2), ...overrides }),
  ];

  it("turns a task's events into its task run and its states, as Prefect fills them", async () => {
    const taskRunId = randomUUID();
    const events = lifecycle(taskRunId);
    const result = await recordTaskRunEvents(t.db, events);
    expect(result.invalid).toEqual([]);
    expect(result.recorded).toEqual(events.map((e) => ({ event_id: e.id, task_run_id: taskRunId })));

    const run = await t.db.taskRuns.get(taskRunId);
    expect(run).toMatchObject({
      id: taskRunId,
      flow_run_id: flowRun.id,
      name: "add-1",
      task_key: "add-5f3b1c",
      dynamic_key: "0",
      cache_key: null,
      task_version: null,
      empirical_policy: { max_retries: 0, retry_delay_seconds: 0, retries: 0, retry_delay: 0, retry_jitter_factor: null },
      tags: ["math"],
      labels: { "prefect.flow.id": "f" },
      task_inputs: { x: [], y: [{ input_type: "task_run", id: "00000000-0000-4000-8000-000000000099" }] },
      run_count: 1,
      flow_run_run_count: 1,
      expected_start_time: at(0),
      start_time: at(1),
      end_time: at(2),
      total_run_time: 0.25,
      state_id: events[2]!.id,
      state_type: "COMPLETED",
      state_name: "Completed",
      state_timestamp: at(2),
    });
    expect(run!.state).toMatchObject({ id: events[2]!.id, type: "COMPLETED", name: "Completed", timestamp: at(2) });

    const states = await t.db.taskRuns.readStates(taskRunId);
    expect(states.map((s) => [s.id, s.type, s.name, s.timestamp])).toEqual([
      [events[0]!.id, "PENDING", "Pending", at(0)],
      [events[1]!.id, "RUNNING", "Running", at(1)],
      [events[2]!.id, "COMPLETED", "Completed", at(2)],
    ]);
    expect(states[2]).toMatchObject({
      task_run_id: taskRunId,
      message: "",
      data: null,
      state_details: { task_run_id: taskRunId, flow_run_id: flowRun.id, untrackable_result: false, deferred: false, pause_reschedule: false, cache_key: null },
    });
  });

  it("keeps microseconds: states a microsecond apart are ordered and the newest wins", async () => {
    const taskRunId = randomUUID();
    const a = taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "RUNNING", occurred: "2026-03-01T12:00:00.000001Z" as Timestamp });
    const b = taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "COMPLETED", occurred: "2026-03-01T12:00:00.000002Z" as Timestamp });
    await recordTaskRunEvents(t.db, [b]);
    await recordTaskRunEvents(t.db, [a]);
    expect(await t.db.taskRuns.get(taskRunId)).toMatchObject({ state_type: "COMPLETED", state_timestamp: "2026-03-01T12:00:00.000002Z" });
    expect((await t.db.taskRuns.readStates(taskRunId)).map((s) => s.timestamp)).toEqual(["2026-03-01T12:00:00.000001Z", "2026-03-01T12:00:00.000002Z"]);
  });

  it("only moves a run forward when events arrive out of order, one at a time or in one batch", async () => {
    const oneByOne = randomUUID();
    const events = lifecycle(oneByOne);
    for (const event of [...events].reverse()) await recordTaskRunEvents(t.db, [event]);
    const run = await t.db.taskRuns.get(oneByOne);
    expect(run).toMatchObject({ state_type: "COMPLETED", state_id: events[2]!.id, end_time: at(2), run_count: 1 });
    expect(await t.db.taskRuns.readStates(oneByOne)).toHaveLength(3);

    const batched = randomUUID();
    const batch = lifecycle(batched, { taskRun: { task_key: "other" } });
    await recordTaskRunEvents(t.db, [batch[2]!, batch[0]!, batch[1]!]);
    expect(await t.db.taskRuns.get(batched)).toMatchObject({ state_type: "COMPLETED", state_id: batch[2]!.id, task_key: "other" });
    expect((await t.db.taskRuns.readStates(batched)).map((s) => s.id)).toEqual(batch.map((e) => e.id));
  });

  it("is idempotent: events recorded twice, in one batch or again later, change nothing", async () => {
    const taskRunId = randomUUID();
    const events = lifecycle(taskRunId);
    await recordTaskRunEvents(t.db, [...events, ...events]);
    const first = await t.db.taskRuns.get(taskRunId);
    const states = await t.db.taskRuns.readStates(taskRunId);
    expect(states).toHaveLength(3);

    const again = await recordTaskRunEvents(t.db, events);
    expect(again.recorded.map((r) => r.task_run_id)).toEqual([taskRunId, taskRunId, taskRunId]);
    expect(await t.db.taskRuns.get(taskRunId)).toEqual(first);
    expect(await t.db.taskRuns.readStates(taskRunId)).toEqual(states);
    expect(await t.db.taskRuns.count()).toBe(1);
  });

  it("updates only the columns an event carries: a newer event without end_time keeps the stored one", async () => {
    const taskRunId = randomUUID();
    await recordTaskRunEvents(t.db, [
      taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "FAILED", occurred: at(2), taskRun: { cache_key: "k1", task_version: "v1" } }),
    ]);
    // A retry: Running again, later; the client left out end_time and task_version, and cleared cache_key.
    await recordTaskRunEvents(t.db, [
      taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: "RUNNING", occurred: at(3), taskRun: { run_count: 2, cache_key: null } }),
    ]);
    expect(await t.db.taskRuns.get(taskRunId)).toMatchObject({
      state_type: "RUNNING",
      run_count: 2,
      end_time: at(2),
      task_version: "v1",
      cache_key: null,
    });
  });

  it("records on the existing run of the same flow run, task key and dynamic key (its id wins)", async () => {
    const existing = (await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "add-5f3b1c", dynamic_key: "0", name: "via-rest", state: { type: "PENDING", timestamp: at(-1) } })).row;
    const eventRunId = randomUUID();
    const events = lifecycle(eventRunId);
    const result = await recordTaskRunEvents(t.db, events);
    expect(result.recorded.map((r) => r.task_run_id)).toEqual([existing.id, existing.id, existing.id]);
    expect(await t.db.taskRuns.get(eventRunId)).toBeNull();
    expect(await t.db.taskRuns.get(existing.id)).toMatchObject({ name: "add-1", state_type: "COMPLETED", state_id: events[2]!.id });
    const states = await t.db.taskRuns.readStates(existing.id);
    expect(states.map((s) => s.type)).toEqual(["PENDING", "PENDING", "RUNNING", "COMPLETED"]);
    expect(states[3]!.state_details).toMatchObject({ task_run_id: existing.id, flow_run_id: flowRun.id });
  });

  it("does not update a run that has no state timestamp yet (Prefect's `<` is never true against NULL)", async () => {
    const existing = (await t.db.taskRuns.create({ flow_run_id: flowRun.id, task_key: "add-5f3b1c", dynamic_key: "0", name: "stateless" })).row;
    const [pending] = lifecycle(randomUUID());
    await recordTaskRunEvents(t.db, [pending!]);
    expect(await t.db.taskRuns.get(existing.id)).toMatchObject({ name: "stateless", state_id: null });
    expect((await t.db.taskRuns.readStates(existing.id)).map((s) => s.id)).toEqual([pending!.id]);
  });

  it("records task runs without a flow run by id", async () => {
    const taskRunId = randomUUID();
    const events = lifecycle(taskRunId, { flowRunId: null });
    await recordTaskRunEvents(t.db, events.slice(0, 2));
    await recordTaskRunEvents(t.db, events.slice(2));
    expect(await t.db.taskRuns.get(taskRunId)).toMatchObject({ flow_run_id: null, state_type: "COMPLETED" });
    const states = await t.db.taskRuns.readStates(taskRunId);
    expect(states).toHaveLength(3);
    expect(states[0]!.state_details).toMatchObject({ flow_run_id: null, task_run_id: taskRunId });
  });

  it("coalesces events of one run that use different task run ids in one batch onto one row", async () => {
    const first = randomUUID();
    const second = randomUUID();
    const [pending] = lifecycle(first);
    const [, running, completed] = lifecycle(second);
    const result = await recordTaskRunEvents(t.db, [pending!, running!, completed!]);
    const ids = new Set(result.recorded.map((r) => r.task_run_id));
    expect(ids.size).toBe(1);
    const [only] = [...ids];
    expect(await t.db.taskRuns.count()).toBe(1);
    expect(await t.db.taskRuns.get(only!)).toMatchObject({ state_type: "COMPLETED" });
    expect(await t.db.taskRuns.readStates(only!)).toHaveLength(3);
  });

  it("fills what Prefect's models fill: a generated name, the full retry policy, timedelta strings", async () => {
    const taskRunId = randomUUID();
    await recordTaskRunEvents(t.db, [
      taskRunEvent({
        taskRunId,
        flowRunId: flowRun.id,
        type: "PENDING",
        occurred: at(0),
        taskRun: { name: undefined, empirical_policy: { max_retries: 2, retry_delay_seconds: 5 }, total_run_time: "PT1.5S", labels: undefined },
        validatedState: { name: undefined, message: undefined },
      }),
    ]);
    const run = await t.db.taskRuns.get(taskRunId);
    expect(run!.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(run).toMatchObject({
      empirical_policy: { max_retries: 2, retry_delay_seconds: 5, retries: 2, retry_delay: 5, retry_jitter_factor: null },
      total_run_time: 1.5,
      labels: null,
      state_name: "Pending",
    });
    expect((await t.db.taskRuns.readStates(taskRunId))[0]).toMatchObject({ name: "Pending", message: null });
  });

  it("reports unreadable events and records the others", async () => {
    const good = lifecycle(randomUUID());
    const noState = taskRunEvent({ taskRunId: randomUUID(), flowRunId: flowRun.id, type: "PENDING", occurred: at(0) });
    delete (noState.payload as Record<string, unknown>).validated_state;
    const badResource = { ...taskRunEvent({ taskRunId: randomUUID(), flowRunId: flowRun.id, type: "PENDING", occurred: at(0) }), resource: { "prefect.resource.id": "prefect.flow-run.x" } };
    const noKey = taskRunEvent({ taskRunId: randomUUID(), flowRunId: flowRun.id, type: "PENDING", occurred: at(0), taskRun: { task_key: undefined } });
    const badPolicy = taskRunEvent({ taskRunId: randomUUID(), flowRunId: flowRun.id, type: "PENDING", occurred: at(0), taskRun: { empirical_policy: { retries: "many" } } });
    const result = await recordTaskRunEvents(t.db, [...good, noState, badResource, noKey, badPolicy]);
    expect(result.recorded).toHaveLength(3);
    expect(result.invalid.map((i) => i.event_id)).toEqual([noState.id, badResource.id, noKey.id, badPolicy.id]);
    expect(result.invalid[0]!.message).toMatch(/validated_state/);
    expect(result.invalid[1]!.message).toMatch(/does not start with prefect\.task-run\./);
    expect(result.invalid[2]!.message).toMatch(/task_key: Field required/);
    expect(result.invalid[3]!.message).toMatch(/empirical_policy\.retries/);
    expect(await t.db.taskRuns.count()).toBe(1);
  });

  it("writes a batch atomically: an event for an unknown flow run fails the whole batch", async () => {
    const good = lifecycle(randomUUID());
    const orphan = taskRunEvent({ taskRunId: randomUUID(), flowRunId: randomUUID(), type: "PENDING", occurred: at(0), taskRun: { task_key: "orphan" } });
    await expect(recordTaskRunEvents(t.db, [...good, orphan])).rejects.toBeInstanceOf(InvalidError);
    expect(await t.db.taskRuns.count()).toBe(0);
    expect(await t.db.taskRuns.readStates(good[0]!.resource["prefect.resource.id"]!.slice("prefect.task-run.".length))).toEqual([]);
  });

  it("records many task runs with differing columns in one call (several statements, chunked)", async () => {
    const events: EventCreate[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 1100; i++) {
      const taskRunId = randomUUID();
      ids.push(taskRunId);
      const step: Step = i % 3 === 0 ? "PENDING" : i % 3 === 1 ? "RUNNING" : "COMPLETED";
      events.push(
        taskRunEvent({ taskRunId, flowRunId: flowRun.id, type: step, occurred: at(i), taskRun: { task_key: `task-${i}`, ...(i % 5 === 0 ? { task_version: null } : {}) } }),
      );
    }
    const result = await recordTaskRunEvents(t.db, events);
    expect(result.recorded).toHaveLength(1100);
    expect(await t.db.taskRuns.count()).toBe(1100);
    expect(await t.db.taskRuns.get(ids[1]!)).toMatchObject({ task_key: "task-1", state_type: "RUNNING", start_time: at(1), end_time: null });
    expect(await t.db.taskRuns.get(ids[1099]!)).toMatchObject({ task_key: "task-1099", state_type: "RUNNING" });
    expect(await t.db.taskRuns.get(ids[1097]!)).toMatchObject({ task_key: "task-1097", state_type: "COMPLETED", end_time: at(1097) });
  });

  it("takes part in the caller's transaction", async () => {
    const taskRunId = randomUUID();
    await expect(
      t.db.transaction(async (tx) => {
        await recordTaskRunEvents(tx, lifecycle(taskRunId));
        expect(await tx.taskRuns.get(taskRunId)).not.toBeNull();
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await t.db.taskRuns.get(taskRunId)).toBeNull();
  });
});
