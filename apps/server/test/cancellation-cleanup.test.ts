/**
 * CancellationCleanup (Prefect's services/cancellation_cleanup.py): the task runs and subflow runs
 * left unfinished under a cancelled flow run are cancelled (subflows of deployments through
 * CANCELLING), and flow runs CANCELLING for too long become CANCELLED; once each, through passes and
 * through a real server.
 */
import { addSeconds, now, openDatabase, type StateType } from "@prefect/db";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { CANCELLING_TIMEOUT_CANCELLED_MESSAGE, cleanUpCancellations, PARENT_CANCELLED_MESSAGE } from "../src/loops/cancellation-cleanup.js";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

const TIMEOUT = 300;

async function flow(server: TestServer, name = "etl"): Promise<string> {
  return (await server.request("POST", "/flows/", { name })).body.id;
}

/** A flow run created through the API, in `type`. */
async function flowRun(server: TestServer, flowId: string, type: StateType, fields: Record<string, unknown> = {}): Promise<string> {
  const response = await server.request("POST", "/flow_runs/", { flow_id: flowId, state: { type }, ...fields });
  if (response.status !== 201) throw new Error(`flow run create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.id;
}

let keys = 0;
/** A task run of the flow run created through the API, in `type`. */
async function taskRun(server: TestServer, flowRunId: string, type: StateType): Promise<string> {
  keys += 1;
  const response = await server.request("POST", "/task_runs/", { flow_run_id: flowRunId, task_key: `task-${keys}`, dynamic_key: "0", state: { type } });
  if (response.status !== 201) throw new Error(`task run create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.id;
}

/** A subflow run: a flow run whose parent task run belongs to `parentFlowRunId`. */
async function subflow(server: TestServer, flowId: string, parentFlowRunId: string, type: StateType, fields: Record<string, unknown> = {}) {
  const parentTask = await taskRun(server, parentFlowRunId, "RUNNING");
  return { parentTask, id: await flowRun(server, flowId, type, { parent_task_run_id: parentTask, ...fields }) };
}

async function cancel(server: TestServer, flowRunId: string) {
  const response = await server.request("POST", `/flow_runs/${flowRunId}/set_state`, { state: { type: "CANCELLED" }, force: true });
  expect(response.body.status).toBe("ACCEPT");
}

const flowRunOf = async (server: TestServer, id: string) => (await server.request("GET", `/flow_runs/${id}`)).body;
const taskRunOf = async (server: TestServer, id: string) => (await server.request("GET", `/task_runs/${id}`)).body;
const flowStates = async (server: TestServer, id: string): Promise<{ type: string; message: string | null }[]> =>
  (await server.request("GET", `/flow_run_states/?flow_run_id=${id}`)).body;
const taskStates = async (server: TestServer, id: string): Promise<{ type: string; message: string | null }[]> =>
  (await server.request("GET", `/task_run_states/?task_run_id=${id}`)).body;

function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

const flowRunEvents = (events: ReceivedEvent[], id: string) => events.filter((e) => e.resource["prefect.resource.id"] === `prefect.flow-run.${id}`).map((e) => e.event);

describeApi("cancellation cleanup: a pass", (t) => {
  const pass = (cancellingTimeoutSeconds = TIMEOUT) => cleanUpCancellations(t.server.context, { cancellingTimeoutSeconds });

  it("cancels the unfinished task runs of a cancelled flow run, and leaves the rest", async () => {
    const f = await flow(t.server);
    const cancelled = await flowRun(t.server, f, "RUNNING");
    const running = await taskRun(t.server, cancelled, "RUNNING");
    const pending = await taskRun(t.server, cancelled, "PENDING");
    const done = await taskRun(t.server, cancelled, "COMPLETED");
    const failed = await taskRun(t.server, cancelled, "FAILED");
    const alive = await flowRun(t.server, f, "RUNNING");
    const aliveTask = await taskRun(t.server, alive, "RUNNING");
    await cancel(t.server, cancelled);
    expect((await flowRunOf(t.server, cancelled)).end_time).not.toBeNull();

    expect(await pass()).toEqual({ taskRunsCancelled: 2, subflowRunsCancelled: 0, cancellingTimedOut: 0 });
    for (const id of [running, pending]) {
      expect(await taskRunOf(t.server, id)).toMatchObject({ state_type: "CANCELLED", state: { type: "CANCELLED", name: "Cancelled", message: PARENT_CANCELLED_MESSAGE } });
      expect((await taskStates(t.server, id)).filter((s) => s.type === "CANCELLED")).toHaveLength(1);
    }
    expect((await taskRunOf(t.server, done)).state_type).toBe("COMPLETED");
    expect((await taskRunOf(t.server, failed)).state_type).toBe("FAILED");
    expect((await taskRunOf(t.server, aliveTask)).state_type).toBe("RUNNING");
    expect((await flowRunOf(t.server, alive)).state_type).toBe("RUNNING");
    expect(await pass()).toEqual({ taskRunsCancelled: 0, subflowRunsCancelled: 0, cancellingTimedOut: 0 });
  });

  it("cancels the subflow runs of a cancelled flow run: CANCELLED, or CANCELLING for a deployment's, with their events", async () => {
    const f = await flow(t.server);
    const d = (await t.server.request("POST", "/deployments/", { name: "d", flow_id: f })).body;
    const parent = await flowRun(t.server, f, "RUNNING");
    const local = await subflow(t.server, f, parent, "RUNNING");
    const scheduled = await subflow(t.server, f, parent, "SCHEDULED");
    const deployed = await subflow(t.server, f, parent, "RUNNING", { deployment_id: d.id });
    const finished = await subflow(t.server, f, parent, "COMPLETED");
    const otherParent = await flowRun(t.server, f, "RUNNING");
    const unrelated = await subflow(t.server, f, otherParent, "RUNNING");
    await cancel(t.server, parent);
    const events = recordEvents(t.server);

    // The subflows' parent task runs are task runs of the cancelled flow run too, and take on their
    // subflow's states (Prefect's UpdateSubflowParentTask): the finished one's is COMPLETED.
    expect(await pass()).toEqual({ taskRunsCancelled: 3, subflowRunsCancelled: 3, cancellingTimedOut: 0 });
    for (const { id } of [local, scheduled]) {
      expect(await flowRunOf(t.server, id)).toMatchObject({ state_type: "CANCELLED", state: { type: "CANCELLED", message: PARENT_CANCELLED_MESSAGE } });
      expect(flowRunEvents(events, id)).toEqual(["prefect.flow-run.Cancelled"]);
    }
    expect(await flowRunOf(t.server, deployed.id)).toMatchObject({ state_type: "CANCELLING", state: { type: "CANCELLING", message: PARENT_CANCELLED_MESSAGE } });
    expect(flowRunEvents(events, deployed.id)).toEqual(["prefect.flow-run.Cancelling"]);
    expect((await flowRunOf(t.server, finished.id)).state_type).toBe("COMPLETED");
    expect((await flowRunOf(t.server, unrelated.id)).state_type).toBe("RUNNING");
    expect((await taskRunOf(t.server, unrelated.parentTask)).state_type).toBe("RUNNING");
    for (const { parentTask } of [local, scheduled]) expect((await taskRunOf(t.server, parentTask)).state_type).toBe("CANCELLED");
    expect((await taskRunOf(t.server, deployed.parentTask)).state_type).toBe("CANCELLING");
    expect((await taskRunOf(t.server, finished.parentTask)).state_type).toBe("COMPLETED");

    // The deployment's subflow is left to its worker (until it has been CANCELLING for too long); its
    // parent task run, CANCELLING with it, is cancelled as a task run of the cancelled flow run, as Prefect does.
    expect(await pass()).toEqual({ taskRunsCancelled: 1, subflowRunsCancelled: 0, cancellingTimedOut: 0 });
    expect((await flowRunOf(t.server, deployed.id)).state_type).toBe("CANCELLING");
    expect((await taskRunOf(t.server, deployed.parentTask)).state_type).toBe("CANCELLED");
    expect(await pass()).toEqual({ taskRunsCancelled: 0, subflowRunsCancelled: 0, cancellingTimedOut: 0 });
    expect(flowRunEvents(events, deployed.id)).toEqual(["prefect.flow-run.Cancelling"]);
  });

  it("cancels flow runs CANCELLING for longer than the timeout, with Prefect's message", async () => {
    const f = await flow(t.server);
    const seed = async (type: StateType, secondsAgo: number) =>
      (await t.server.db.flowRuns.create({ flow_id: f, state: { type, timestamp: addSeconds(now(), -secondsAgo) } })).row.id;
    const stuck = await seed("CANCELLING", TIMEOUT + 60);
    const recent = await seed("CANCELLING", TIMEOUT - 60);
    const running = await seed("RUNNING", TIMEOUT + 60);
    const events = recordEvents(t.server);

    expect(await pass()).toEqual({ taskRunsCancelled: 0, subflowRunsCancelled: 0, cancellingTimedOut: 1 });
    const after = await flowRunOf(t.server, stuck);
    expect(after).toMatchObject({ state_type: "CANCELLED", state: { type: "CANCELLED", name: "Cancelled", message: CANCELLING_TIMEOUT_CANCELLED_MESSAGE } });
    expect(after.end_time).not.toBeNull();
    expect(flowRunEvents(events, stuck)).toEqual(["prefect.flow-run.Cancelled"]);
    expect((await flowRunOf(t.server, recent)).state_type).toBe("CANCELLING");
    expect((await flowRunOf(t.server, running)).state_type).toBe("RUNNING");
    expect(flowRunEvents(events, recent)).toEqual([]);

    // A shorter timeout reaches the other one.
    expect((await pass(TIMEOUT - 120)).cancellingTimedOut).toBe(1);
    expect((await flowRunOf(t.server, recent)).state_type).toBe("CANCELLED");
  });

  it("changes each run once when passes run at once, in one process or from another connection", async () => {
    const f = await flow(t.server);
    const d = (await t.server.request("POST", "/deployments/", { name: "d", flow_id: f })).body;
    const parents = [await flowRun(t.server, f, "RUNNING"), await flowRun(t.server, f, "RUNNING")];
    const tasks: string[] = [];
    const parentTasks: string[] = [];
    const subflows: string[] = [];
    for (const parent of parents) {
      for (let i = 0; i < 5; i++) tasks.push(await taskRun(t.server, parent, "RUNNING"));
      for (let i = 0; i < 3; i++) {
        const sub = await subflow(t.server, f, parent, "RUNNING", i === 0 ? { deployment_id: d.id } : {});
        parentTasks.push(sub.parentTask);
        subflows.push(sub.id);
      }
    }
    const stuck: string[] = [];
    for (let i = 0; i < 5; i++) stuck.push((await t.server.db.flowRuns.create({ flow_id: f, state: { type: "CANCELLING", timestamp: addSeconds(now(), -2 * TIMEOUT) } })).row.id);
    for (const parent of parents) await cancel(t.server, parent);
    const events = recordEvents(t.server);

    const others = t.backend === "sqlite-memory" ? [] : [await openDatabase(t.server.db.config, { migrate: false })];
    try {
      const contexts = [t.server.context, t.server.context, t.server.context, ...others.map((db) => ({ ...t.server.context, db }))];
      const passes = await Promise.all(contexts.map((context) => cleanUpCancellations(context, { cancellingTimeoutSeconds: TIMEOUT })));
      const sum = (key: keyof (typeof passes)[number]) => passes.reduce((total, pass) => total + pass[key], 0);
      // Each task run once; a deployment subflow's parent task run once more if a pass cancels it after
      // it took on its subflow's CANCELLING (see above).
      expect(sum("taskRunsCancelled")).toBeGreaterThanOrEqual(tasks.length + parentTasks.length);
      expect(sum("taskRunsCancelled")).toBeLessThanOrEqual(tasks.length + parentTasks.length + 2);
      expect(sum("subflowRunsCancelled")).toBe(subflows.length);
      expect(sum("cancellingTimedOut")).toBe(stuck.length);
    } finally {
      for (const other of others) await other.close();
    }
    for (const id of tasks) expect((await taskStates(t.server, id)).map((s) => s.type)).toEqual(["RUNNING", "CANCELLED"]);
    for (const id of parentTasks) expect(["CANCELLED", "CANCELLING"]).toContain((await taskRunOf(t.server, id)).state_type);
    for (const [i, id] of subflows.entries()) {
      const ending = i % 3 === 0 ? "CANCELLING" : "CANCELLED";
      expect((await flowStates(t.server, id)).map((s) => s.type)).toEqual(["RUNNING", ending]);
      expect(flowRunEvents(events, id)).toEqual([`prefect.flow-run.${ending === "CANCELLED" ? "Cancelled" : "Cancelling"}`]);
    }
    for (const id of stuck) {
      expect((await flowStates(t.server, id)).map((s) => s.type)).toEqual(["CANCELLING", "CANCELLED"]);
      expect(flowRunEvents(events, id)).toEqual(["prefect.flow-run.Cancelled"]);
    }
  });
});

describeApi(
  "cancellation cleanup: in a real server",
  (t) => {
    it("cancels what a cancelled flow run left running, on its own", async () => {
      const f = await flow(t.server);
      const parent = await flowRun(t.server, f, "RUNNING");
      const task = await taskRun(t.server, parent, "RUNNING");
      const child = await subflow(t.server, f, parent, "RUNNING");
      const stuck = (await t.server.db.flowRuns.create({ flow_id: f, state: { type: "CANCELLING", timestamp: addSeconds(now(), -2 * TIMEOUT) } })).row.id;
      await cancel(t.server, parent);
      await waitFor(async () => (await taskRunOf(t.server, task)).state_type === "CANCELLED", "the task run CANCELLED");
      await waitFor(async () => (await flowRunOf(t.server, child.id)).state_type === "CANCELLED", "the subflow run CANCELLED");
      await waitFor(async () => (await flowRunOf(t.server, stuck)).state_type === "CANCELLED", "the stuck run CANCELLED");
      expect((await flowRunOf(t.server, child.id)).state.message).toBe(PARENT_CANCELLED_MESSAGE);
      expect((await flowRunOf(t.server, stuck)).state.message).toBe(CANCELLING_TIMEOUT_CANCELLED_MESSAGE);
    });
  },
  {
    PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED: "true",
    PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS: "0.2",
  },
);
