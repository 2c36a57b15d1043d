/** Runs created with an initial state (Prefect's `POST /flow_runs/` and `POST /task_runs/`). */
import { addSeconds, now } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { expect, it } from "vitest";
import { createFlowRun, createTaskRun } from "../src/index.js";
import { makeFlow, makeFlowRun } from "./support.js";

describeEachBackend("creating runs", (t) => {
  it("a flow run starts PENDING by default, forced through orchestration", async () => {
    const flowId = await makeFlow(t.db);
    const created = await createFlowRun(t.db, { flow_id: flowId });
    expect(created.created).toBe(true);
    expect(created.orchestration?.status).toBe("ACCEPT");
    expect(created.orchestration?.written).toBe(true);
    expect(created.orchestration?.events.map((e) => e.event)).toEqual(["prefect.flow-run.Pending"]);
    const state = created.orchestration!.state!;
    expect(created.run).toMatchObject({ state_id: state.id, state_type: "PENDING", state_name: "Pending", expected_start_time: state.timestamp });
    expect(created.run.state?.state_details.flow_run_id).toBe(created.run.id);
  });

  it("a flow run created SCHEDULED gets its scheduled start times", async () => {
    const flowId = await makeFlow(t.db);
    const scheduledTime = addSeconds(now(), 3600);
    const created = await createFlowRun(t.db, { flow_id: flowId, state: { type: "SCHEDULED", state_details: { scheduled_time: scheduledTime } } });
    expect(created.run).toMatchObject({ state_type: "SCHEDULED", next_scheduled_start_time: scheduledTime, expected_start_time: scheduledTime });
  });

  it("an idempotency key already used returns the existing run untouched", async () => {
    const flowId = await makeFlow(t.db);
    const first = await createFlowRun(t.db, { flow_id: flowId, idempotency_key: "once" });
    const second = await createFlowRun(t.db, { flow_id: flowId, idempotency_key: "once", state: { type: "RUNNING" } });
    expect(second.created).toBe(false);
    expect(second.orchestration).toBeNull();
    expect(second.run.id).toBe(first.run.id);
    expect(second.run.state_type).toBe("PENDING");
    expect(await t.db.flowRuns.readStates(first.run.id)).toHaveLength(1);
  });

  it("a task run starts PENDING by default and is upserted on its keys", async () => {
    const flowRun = await makeFlowRun(t.db);
    const created = await createTaskRun(t.db, { flow_run_id: flowRun.id, task_key: "k", dynamic_key: "0" });
    expect(created.created).toBe(true);
    expect(created.run).toMatchObject({ state_type: "PENDING", expected_start_time: created.orchestration?.state?.timestamp });
    expect(created.run.state?.state_details).toMatchObject({ task_run_id: created.run.id, flow_run_id: flowRun.id });
    const again = await createTaskRun(t.db, { flow_run_id: flowRun.id, task_key: "k", dynamic_key: "0", state: { type: "RUNNING" } });
    expect(again).toMatchObject({ created: false, orchestration: null });
    expect(again.run.id).toBe(created.run.id);
    expect(again.run.state_type).toBe("PENDING");
  });
});
