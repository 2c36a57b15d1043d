/** The `prefect.flow-run.<StateName>` events (Prefect's InstrumentFlowRunStateTransitions, models/events.py). */
import { randomUUID } from "node:crypto";
import { addSeconds, now } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { describe, expect, it } from "vitest";
import { isoformat, setFlowRunState, setTaskRunState, statePayload, truncatedTo } from "../src/index.js";
import { commitState, makeDeployment, makeFlowRun, makeTaskRun, orchestration } from "./support.js";

describe("event helpers", () => {
  it("truncate long messages as Prefect does", () => {
    expect(truncatedTo(10, null)).toBe("");
    expect(truncatedTo(10, "short")).toBe("short");
    expect(truncatedTo(10, "a".repeat(100))).toBe(`aaaaa...90 additional characters...aaaaa`);
  });

  it("render timestamps as Python's isoformat", () => {
    expect(isoformat(now().replace(/\.\d{6}Z$/, ".000000Z") as ReturnType<typeof now>)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$/);
    expect(isoformat("2024-01-02T03:04:05.000123Z" as ReturnType<typeof now>)).toBe("2024-01-02T03:04:05.000123+00:00");
  });

  it("describe paused states with their reschedule flag", () => {
    const paused = { id: randomUUID(), type: "PAUSED" as const, name: "Suspended", timestamp: now(), message: null, data: null, state_details: { pause_reschedule: true } };
    expect(statePayload(paused as never)).toEqual({ type: "PAUSED", name: "Suspended", pause_reschedule: "true" });
  });
});

describeEachBackend("flow-run state events", (t) => {
  it("describe the run, its state change and everything related to it", async () => {
    const pool = await t.db.workPools.create({ name: `pool-${randomUUID()}`, type: "process" });
    const deployment = await makeDeployment(t.db, { tags: ["deployment-tag"] });
    await t.db.flows.update(deployment.flow_id, { tags: ["flow-tag"] });
    const parentTask = await makeTaskRun(t.db, { tags: ["task-tag"] });
    const creator = randomUUID();
    const run = await makeFlowRun(t.db, {
      flow_id: deployment.flow_id,
      deployment_id: deployment.id,
      work_queue_id: pool.default_queue_id,
      parent_task_run_id: parentTask.id,
      tags: ["run-tag", "b"],
      created_by: { id: creator, type: "DEPLOYMENT", display_value: "my-deployment" },
    });
    const pending = await setFlowRunState(t.db, run.id, { type: "PENDING" });
    const running = await setFlowRunState(t.db, run.id, { type: "RUNNING", message: "go" });
    expect(running.events).toHaveLength(1);
    const flow = await t.db.flows.get(deployment.flow_id);
    const queue = await t.db.workQueues.get(pool.default_queue_id!);
    expect(running.events[0]).toEqual({
      id: running.state?.id,
      occurred: running.state?.timestamp,
      event: "prefect.flow-run.Running",
      resource: {
        "prefect.resource.id": `prefect.flow-run.${run.id}`,
        "prefect.resource.name": run.name,
        "prefect.run-count": "1",
        "prefect.state-message": "go",
        "prefect.state-name": "Running",
        "prefect.state-timestamp": isoformat(running.state!.timestamp),
        "prefect.state-type": "RUNNING",
      },
      related: [
        { "prefect.resource.id": `prefect.flow.${flow!.id}`, "prefect.resource.role": "flow", "prefect.resource.name": flow!.name },
        { "prefect.resource.id": `prefect.deployment.${deployment.id}`, "prefect.resource.role": "deployment", "prefect.resource.name": deployment.name },
        { "prefect.resource.id": `prefect.work-queue.${queue!.id}`, "prefect.resource.role": "work-queue", "prefect.resource.name": queue!.name },
        {
          "prefect.resource.id": `prefect.work-pool.${pool.id}`,
          "prefect.resource.role": "work-pool",
          "prefect.resource.name": pool.name,
          "prefect.work-pool.type": "process",
        },
        { "prefect.resource.id": `prefect.task-run.${parentTask.id}`, "prefect.resource.role": "task-run", "prefect.resource.name": parentTask.name },
        ...["b", "deployment-tag", "flow-tag", "run-tag", "task-tag"].map((tag) => ({ "prefect.resource.id": `prefect.tag.${tag}`, "prefect.resource.role": "tag" })),
        { "prefect.resource.id": `prefect.deployment.${creator}`, "prefect.resource.role": "creator", "prefect.resource.name": "my-deployment" },
      ],
      payload: {
        intended: { from: "PENDING", to: "RUNNING" },
        initial_state: { type: "PENDING", name: "Pending" },
        validated_state: { type: "RUNNING", name: "Running", message: "go" },
      },
      follows: pending.state?.id,
    });
  });

  it("follow the previous state's event only when it is recent", async () => {
    const o = await orchestration(t.db, "flow", { initial: null });
    await o.propose({ type: "PENDING", timestamp: addSeconds(now(), -600) }, { force: true });
    const result = await o.propose({ type: "RUNNING" });
    expect(result.events[0]?.follows).toBeNull();
    expect(result.events[0]?.related).toEqual([expect.objectContaining({ "prefect.resource.role": "flow" })]);
  });

  it("are produced for written states only: rejections into another state yes, waits, aborts and null rejections no", async () => {
    const waiting = await orchestration(t.db, "flow", { initial: "SCHEDULED", initialState: { details: { scheduled_time: addSeconds(now(), 3600) } } });
    expect((await waiting.propose({ type: "RUNNING" })).events).toEqual([]);
    const aborted = await orchestration(t.db, "flow", { initial: "RUNNING" });
    expect((await aborted.propose({ type: "PENDING" })).events).toEqual([]);
    const nullRejected = await orchestration(t.db, "flow", { initial: "CANCELLING" });
    expect((await nullRejected.propose({ type: "RUNNING" })).events).toEqual([]);
    const retried = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { empirical_policy: { retries: 1 } } });
    const result = await retried.propose({ type: "FAILED" });
    expect(result.status).toBe("REJECT");
    expect(result.events.map((e) => e.event)).toEqual(["prefect.flow-run.AwaitingRetry"]);
    expect(result.events[0]?.payload).toMatchObject({ intended: { from: "RUNNING", to: "SCHEDULED" } });
  });

  it("are produced for forced transitions, and never for task runs", async () => {
    const run = await makeFlowRun(t.db);
    expect((await setFlowRunState(t.db, run.id, { type: "RUNNING" }, { force: true })).events.map((e) => e.event)).toEqual(["prefect.flow-run.Running"]);
    const task = await makeTaskRun(t.db, { flow_run_id: run.id });
    await commitState(t.db, "task", task.id, "PENDING");
    expect((await setTaskRunState(t.db, task.id, { type: "RUNNING" })).events).toEqual([]);
  });
});
