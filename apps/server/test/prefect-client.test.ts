/**
 * A replay of the calls a Prefect 3.x client makes to run one flow with two tasks (no deployment),
 * in order and with the bodies it sends, then the reads that show what the server made of them.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now } from "@prefect/db";
import { expect, it } from "vitest";
import { openEventsIn, taskRunEvents, waitFor } from "./support/events.js";
import { describeApi } from "./support/server.js";

/** The headers every request of a Prefect 3.x client carries. */
const CLIENT = { "user-agent": "prefect/3.8.3 (API 0.8.4)", "x-prefect-api-version": "0.8.4" };

/** A state as the client's `to_state_create()` sends it. */
function stateCreate(type: "PENDING" | "RUNNING" | "COMPLETED", details: Record<string, unknown> = {}) {
  const name = type.charAt(0) + type.slice(1).toLowerCase();
  return { type, name, message: null, data: null, state_details: details };
}

describeApi("a Prefect 3.x client running one flow with two tasks", (t) => {
  it("replays the client's calls and reads back the flow run, its task runs, their states and the logs", async () => {
    const request = (method: string, path: string, body?: unknown) => t.server.request(method, path, body, { headers: CLIENT });

    // 1. The client checks the server's version once per process.
    const version = await fetch(`${t.server.url}/api/admin/version`, { headers: CLIENT });
    expect(version.status).toBe(200);
    // The client reads the body with `res.json()` and compares major versions: a JSON string, "3.x.y".
    expect(await version.text(), "GET /admin/version must answer a JSON string").toMatch(/^"3\.\d+\.\d+[^"]*"$/);

    // 2. CSRF: with protection off the server answers 422 and the client stops asking.
    const csrf = await fetch(`${t.server.url}/api/csrf-token?client=${randomUUID()}`, { headers: CLIENT });
    expect(csrf.status).toBe(422);
    expect(await csrf.json()).toEqual({ detail: "CSRF protection is disabled." });

    // 3. The flow.
    const flow = await request("POST", "/flows/", { name: "my-flow", tags: [], labels: {} });
    expect(flow.status).toBe(201);

    // 4. The flow run, PENDING, with the body the client sends (exclude_unset).
    const created = await request("POST", "/flow_runs/", {
      flow_id: flow.body.id,
      flow_version: "3c3b8d0f1b2bd0a25a0b3f1b0a1d7c2e",
      parameters: { n: 2 },
      context: {},
      tags: [],
      parent_task_run_id: null,
      state: stateCreate("PENDING"),
      empirical_policy: { max_retries: 0, retry_delay_seconds: 0.0, retries: 0, retry_delay: 0, pause_keys: [], resuming: false, retry_type: null },
      labels: {},
      name: "crimson-hyena",
    });
    expect(created.status).toBe(201);
    const flowRunId: string = created.body.id;
    expect(created.body).toMatchObject({
      name: "crimson-hyena",
      flow_id: flow.body.id,
      state_type: "PENDING",
      state: { type: "PENDING", name: "Pending", state_details: { flow_run_id: flowRunId } },
      labels: { "prefect.flow.id": flow.body.id },
      parameters: { n: 2 },
      run_count: 0,
    });
    expect(created.body.expected_start_time).not.toBeNull();

    // 5. The engine reads the run (and the flow, for its events).
    expect((await request("GET", `/flow_runs/${flowRunId}`)).body).toMatchObject({ id: flowRunId, state_type: "PENDING" });
    expect((await request("GET", `/flows/${flow.body.id}`)).status).toBe(200);

    // 6. RUNNING, with a transition id.
    const running = await request("POST", `/flow_runs/${flowRunId}/set_state`, {
      state: stateCreate("RUNNING", { flow_run_id: flowRunId, transition_id: randomUUID() }),
      force: false,
    });
    expect(running.status).toBe(201);
    expect(running.body).toMatchObject({ status: "ACCEPT", details: { type: "accept_details" }, state: { type: "RUNNING", name: "Running" } });

    // 7. The two tasks, orchestrated by the client and reported as events over the websocket.
    const socket = await openEventsIn(t.server.url);
    const t0 = now();
    const tasks = ["extract", "load"].map((name, i) => ({
      id: randomUUID(),
      name: `${name}-${i}`,
      events: [] as ReturnType<typeof taskRunEvents>,
    }));
    for (const [i, task] of tasks.entries()) {
      task.events = taskRunEvents({
        taskRunId: task.id,
        flowRunId,
        flowId: flow.body.id,
        flowName: "my-flow",
        flowRunName: "crimson-hyena",
        taskName: task.name,
        taskKey: `__main__.${task.name}`,
        dynamicKey: String(i),
        steps: [
          { type: "PENDING", occurred: addSeconds(t0, i * 3) },
          { type: "RUNNING", occurred: addSeconds(t0, i * 3 + 1) },
          { type: "COMPLETED", occurred: addSeconds(t0, i * 3 + 2) },
        ],
      });
      for (const event of task.events) socket.send(event);
    }
    // The client checkpoints what it sent with a ping.
    await socket.ping();

    // 8. Logs, batched.
    const logs = await request("POST", "/logs/", [
      { name: "prefect.flow_runs", level: 20, message: "Beginning flow run 'crimson-hyena' for flow 'my-flow'", timestamp: addSeconds(t0, -1), flow_run_id: flowRunId },
      { name: "prefect.task_runs", level: 20, message: "Finished in state Completed()", timestamp: addSeconds(t0, 2), flow_run_id: flowRunId, task_run_id: tasks[0]!.id },
      { name: "prefect.task_runs", level: 20, message: "Finished in state Completed()", timestamp: addSeconds(t0, 5), flow_run_id: flowRunId, task_run_id: tasks[1]!.id },
    ]);
    expect(logs.status).toBe(201);

    // 9. COMPLETED.
    const completed = await request("POST", `/flow_runs/${flowRunId}/set_state`, {
      state: stateCreate("COMPLETED", { flow_run_id: flowRunId, transition_id: randomUUID() }),
      force: false,
    });
    expect(completed.status).toBe(201);
    expect(completed.body).toMatchObject({ status: "ACCEPT", state: { type: "COMPLETED", name: "Completed" } });
    await socket.close();

    // The flow run as it ended.
    const run = (await request("GET", `/flow_runs/${flowRunId}`)).body;
    expect(run).toMatchObject({ state_type: "COMPLETED", state_name: "Completed", run_count: 1 });
    expect(run.start_time).not.toBeNull();
    expect(run.end_time).not.toBeNull();
    expect(run.end_time >= run.start_time).toBe(true);
    const flowRunStates = (await request("GET", `/flow_run_states/?flow_run_id=${flowRunId}`)).body;
    expect(flowRunStates.map((s: { type: string }) => s.type)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);

    // The task runs, once the recorder has written them.
    const taskRuns = await waitFor(async () => {
      const found = await request("POST", "/task_runs/filter", { flow_runs: { id: { any_: [flowRunId] } }, sort: "EXPECTED_START_TIME_ASC" });
      return found.body.length === 2 && found.body.every((r: { state_type: string }) => r.state_type === "COMPLETED") ? found.body : undefined;
    }, "two completed task runs");
    expect(taskRuns.map((r: { id: string }) => r.id)).toEqual(tasks.map((task) => task.id));
    for (const [i, taskRun] of taskRuns.entries()) {
      expect(taskRun).toMatchObject({ name: tasks[i]!.name, flow_run_id: flowRunId, task_key: `__main__.${tasks[i]!.name}`, dynamic_key: String(i), run_count: 1 });
      const states = (await request("GET", `/task_run_states/?task_run_id=${taskRun.id}`)).body;
      expect(states.map((s: { type: string }) => s.type)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
      // Each state is stored under the id of the event that reported it.
      expect(states.map((s: { id: string }) => s.id)).toEqual(tasks[i]!.events.map((e) => e.id));
      expect((await request("GET", `/task_runs/${taskRun.id}`)).body.state).toMatchObject({ type: "COMPLETED", id: tasks[i]!.events[2]!.id });
    }
    expect((await request("POST", "/task_runs/count", { flow_runs: { id: { any_: [flowRunId] } } })).body).toBe(2);

    // The logs.
    const storedLogs = (await request("POST", "/logs/filter", { logs: { flow_run_id: { any_: [flowRunId] } } })).body;
    expect(storedLogs.map((l: { task_run_id: string | null }) => l.task_run_id)).toEqual([null, tasks[0]!.id, tasks[1]!.id]);

    // The server's own flow-run state events, published and persisted.
    const events = await waitFor(async () => {
      const found = await request("POST", "/events/filter", {
        filter: { event: { prefix: ["prefect.flow-run."] }, resource: { id: [`prefect.flow-run.${flowRunId}`] }, order: "ASC" },
      });
      return found.body.events.length === 3 ? found.body.events : undefined;
    }, "three flow-run events");
    expect(events.map((e: { event: string }) => e.event)).toEqual(["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed"]);
  });
});
