import { addSeconds, FlowRunFilter, now, type TaskRun, type Timestamp } from "@prefect/db";
import { expect, it } from "vitest";
import { type EventShape, openEventsIn, taskRunEvents, waitFor } from "./support/events.js";
import { describeApi, type ServerContext } from "./support/server.js";

/**
 * What a Prefect 3.x client sends for
 *
 *     @task
 *     def add(x, y): return x + y
 *
 *     @flow
 *     def my_flow():
 *         add(1, 2)
 *         add(3, 4)
 *
 * after creating the flow and its flow run over HTTP: each task run's Pending, Running and Completed
 * events over `/api/events/in`, one frame each, checkpointed with pings.
 */
async function replayFlowWithTwoTasks(t: ServerContext) {
  const flowResponse = await t.server.request("POST", "/flows/", { name: "my-flow", tags: [], labels: {} });
  expect(flowResponse.status).toBe(201);
  const flow = flowResponse.body as { id: string; name: string };
  const flowRun = (await t.server.db.flowRuns.create({ flow_id: flow.id, name: "crimson-otter", state: { type: "RUNNING" } })).row;

  const base = now();
  const at = (ms: number) => addSeconds(base, ms / 1000) as Timestamp;
  const tasks = [
    { taskRunId: crypto.randomUUID(), dynamicKey: "0", name: "add-0", start: 0 },
    { taskRunId: crypto.randomUUID(), dynamicKey: "1", name: "add-1", start: 100 },
  ].map((task) => ({
    ...task,
    events: taskRunEvents({
      taskRunId: task.taskRunId,
      flowRunId: flowRun.id,
      flowId: flow.id,
      flowName: flow.name,
      flowRunName: flowRun.name,
      taskName: task.name,
      taskKey: "__main__.add-3f1a9c0b",
      dynamicKey: task.dynamicKey,
      tags: ["math"],
      // Running and Completed a few hundred microseconds apart, as a quick task is.
      steps: [
        { type: "PENDING", occurred: at(task.start) },
        { type: "RUNNING", occurred: at(task.start + 1.5) },
        { type: "COMPLETED", occurred: at(task.start + 1.75) },
      ],
    }),
  }));

  const socket = await openEventsIn(t.server.url);
  for (const task of tasks) {
    for (const event of task.events) socket.send(event);
    await socket.ping();
  }
  return { flow, flowRun, tasks, socket };
}

const flowRunCriteria = (flowRunId: string) => ({ flow_runs: FlowRunFilter.parse({ id: { any_: [flowRunId] } }) });

describeApi("task runs from a Prefect client's events", (t) => {
  const completedRuns = (flowRunId: string) =>
    waitFor(async () => {
      const runs = await t.server.db.taskRuns.read({ ...flowRunCriteria(flowRunId), sort: "EXPECTED_START_TIME_ASC" });
      return runs.length === 2 && runs.every((r) => r.state_type === "COMPLETED") ? runs : undefined;
    }, "two completed task runs");

  it("records both task runs and all their states, and stores the events", async () => {
    const { flow, flowRun, tasks, socket } = await replayFlowWithTwoTasks(t);
    const runs = await completedRuns(flowRun.id);

    for (const [i, task] of tasks.entries()) {
      const run = runs[i]!;
      const [pending, running, completed] = task.events as [EventShape, EventShape, EventShape];
      expect(run).toMatchObject({
        id: task.taskRunId,
        flow_run_id: flowRun.id,
        name: task.name,
        task_key: "__main__.add-3f1a9c0b",
        dynamic_key: task.dynamicKey,
        tags: ["math"],
        labels: {},
        empirical_policy: { max_retries: 0, retry_delay_seconds: 0, retries: 0, retry_delay: 0, retry_jitter_factor: null },
        task_inputs: { x: [], y: [] },
        run_count: 1,
        flow_run_run_count: 1,
        expected_start_time: pending.occurred,
        start_time: running.occurred,
        end_time: completed.occurred,
        state_id: completed.id,
        state_type: "COMPLETED",
        state_name: "Completed",
        state_timestamp: completed.occurred,
      });
      expect(run.total_run_time).toBeCloseTo(0.00025, 9);
      expect(run.state).toMatchObject({ id: completed.id, type: "COMPLETED", timestamp: completed.occurred });

      const states = await t.server.db.taskRuns.readStates(task.taskRunId);
      expect(states.map((s) => [s.id, s.type, s.name, s.timestamp])).toEqual([
        [pending.id, "PENDING", "Pending", pending.occurred],
        [running.id, "RUNNING", "Running", running.occurred],
        [completed.id, "COMPLETED", "Completed", completed.occurred],
      ]);
      expect(states[2]).toMatchObject({
        task_run_id: task.taskRunId,
        data: { storage_key: `/tmp/results/${completed.id}`, serializer: { type: "pickle" } },
        state_details: { task_run_id: task.taskRunId, flow_run_id: flowRun.id, untrackable_result: false, retriable: false },
      });
    }

    // The events themselves, for the UI's event feed.
    const ids = tasks.flatMap((task) => task.events.map((e) => e.id));
    await waitFor(async () => (await t.server.db.events.count({ id: { id: ids } })) === ids.length, "the six events stored");
    const occurred = { since: addSeconds(now(), -3600), until: addSeconds(now(), 3600) };
    const page = await t.server.request("POST", "/events/filter", { filter: { occurred, related: { id: [`prefect.flow.${flow.id}`] }, order: "ASC" } });
    expect(page.body.events.map((e: EventShape) => e.event)).toEqual([
      "prefect.task-run.Pending",
      "prefect.task-run.Running",
      "prefect.task-run.Completed",
      "prefect.task-run.Pending",
      "prefect.task-run.Running",
      "prefect.task-run.Completed",
    ]);
    await socket.close();
  });

  it("ends the same when a reconnecting client resends its events late, out of order and twice", async () => {
    const { flow, flowRun, tasks, socket } = await replayFlowWithTwoTasks(t);
    const before = await completedRuns(flowRun.id);
    const states = await Promise.all(tasks.map((task) => t.server.db.taskRuns.readStates(task.taskRunId)));
    await socket.close();

    const again = await openEventsIn(t.server.url);
    const resent = tasks.flatMap((task) => [...task.events].reverse());
    for (const event of [...resent, ...resent]) again.send(event);
    // A third task's first event, sent last: once it is recorded, so is everything sent before it.
    const sentinelId = crypto.randomUUID();
    const [sentinel] = taskRunEvents({
      taskRunId: sentinelId,
      flowRunId: flowRun.id,
      flowId: flow.id,
      flowName: flow.name,
      flowRunName: flowRun.name,
      taskName: "sentinel",
      taskKey: "__main__.sentinel",
      dynamicKey: "0",
      steps: [{ type: "PENDING", occurred: now() }],
    });
    again.send(sentinel);
    await again.ping();
    await waitFor(async () => (await t.server.db.taskRuns.get(sentinelId)) ?? undefined, "the sentinel task run");
    const after = await t.server.db.taskRuns.read({ ...flowRunCriteria(flowRun.id), sort: "EXPECTED_START_TIME_ASC" });
    expect(after.filter((r) => r.id !== sentinelId)).toEqual(before);
    expect(await Promise.all(tasks.map((task) => t.server.db.taskRuns.readStates(task.taskRunId)))).toEqual(states);
    await again.close();
  });

  it("moves a task run forward only, whatever order its events arrive in", async () => {
    const flow = (await t.server.db.flows.create({ name: "ordering" })).row;
    const flowRun = (await t.server.db.flowRuns.create({ flow_id: flow.id })).row;
    const taskRunId = crypto.randomUUID();
    const base = now();
    const [pending, running, completed] = taskRunEvents({
      taskRunId,
      flowRunId: flowRun.id,
      flowId: flow.id,
      flowName: flow.name,
      flowRunName: flowRun.name,
      taskName: "late",
      taskKey: "late-task",
      dynamicKey: "0",
      steps: [
        { type: "PENDING", occurred: base },
        { type: "RUNNING", occurred: addSeconds(base, 0.000001) },
        { type: "COMPLETED", occurred: addSeconds(base, 0.000002) },
      ],
    }) as [EventShape, EventShape, EventShape];
    const socket = await openEventsIn(t.server.url);
    for (const event of [completed, pending, running]) socket.send(event);
    await socket.ping();
    const states = await waitFor(async () => {
      const found = await t.server.db.taskRuns.readStates(taskRunId);
      return found.length === 3 ? found : undefined;
    }, "three states");
    expect(states.map((s) => s.type)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
    const run: TaskRun | null = await t.server.db.taskRuns.get(taskRunId);
    expect(run).toMatchObject({ state_type: "COMPLETED", state_id: completed.id, end_time: completed.occurred });
    await socket.close();
  });
});
