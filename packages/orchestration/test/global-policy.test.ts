/**
 * Prefect's global bookkeeping (tests/server/orchestration/test_global_policy.py and the run
 * details of tests/server/models/test_flow_run_states.py): what a transition writes on the run.
 */
import { addSeconds, now, type StateType, secondsBetween } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { describe, expect, it } from "vitest";
import { flowRunPolicy, setFlowRunState, setTaskRunState } from "../src/index.js";
import { commitState, makeFlowRun, makeTaskRun, orchestration, RUN_KINDS, readRun } from "./support.js";

const ALL: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const TERMINAL: readonly StateType[] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

describeEachBackend("global bookkeeping", (t) => {
  for (const kind of RUN_KINDS) {
    describe(`${kind} runs`, () => {
      it("records the state's type, name and timestamp on the run", async () => {
        for (const type of ALL) {
          const o = await orchestration(t.db, kind, { initial: null });
          const result = await o.propose({ type, name: `My ${type}` }, { policy: [] });
          const run = await readRun(t.db, kind, o.runId);
          expect(run).toMatchObject({ state_id: result.state?.id, state_type: type, state_name: `My ${type}`, state_timestamp: result.state?.timestamp });
        }
      });

      it("sets the next scheduled start time entering SCHEDULED and clears it leaving", async () => {
        const scheduledTime = addSeconds(now(), 42);
        const o = await orchestration(t.db, kind, { initial: null });
        await o.propose({ type: "SCHEDULED", state_details: { scheduled_time: scheduledTime } }, { policy: [] });
        let run = await readRun(t.db, kind, o.runId);
        expect(run.next_scheduled_start_time).toBe(scheduledTime);
        expect(run.start_time).toBeNull();
        await o.propose({ type: "PENDING" }, { policy: [] });
        run = await readRun(t.db, kind, o.runId);
        expect(run.next_scheduled_start_time).toBeNull();
        expect(run.start_time).toBeNull();
      });

      it("sets the expected start time from the first state", async () => {
        for (const type of ["PENDING", "RUNNING", "COMPLETED"] as const) {
          const o = await orchestration(t.db, kind, { initial: null });
          const result = await o.propose({ type }, { policy: [] });
          expect((await readRun(t.db, kind, o.runId)).expected_start_time, type).toBe(result.state?.timestamp);
        }
        const scheduledTime = addSeconds(now(), 10 * 86400);
        const o = await orchestration(t.db, kind, { initial: null });
        await o.propose({ type: "SCHEDULED", state_details: { scheduled_time: scheduledTime } }, { policy: [] });
        expect((await readRun(t.db, kind, o.runId)).expected_start_time).toBe(scheduledTime);
        await o.propose({ type: "SCHEDULED", state_details: { scheduled_time: addSeconds(scheduledTime, 60) } }, { policy: [] });
        expect((await readRun(t.db, kind, o.runId)).expected_start_time).toBe(scheduledTime);
      });

      it("sets the start time when the run first runs and counts its runs", async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING", flowRun: { run_count: 0 }, taskRun: { run_count: 41 } });
        const first = await o.propose({ type: "RUNNING" }, { policy: [] });
        let run = await readRun(t.db, kind, o.runId);
        expect(run.start_time).toBe(first.state?.timestamp);
        expect(run.run_count).toBe(kind === "flow" ? 1 : 42);
        await o.propose({ type: "RUNNING" }, { policy: [] });
        run = await readRun(t.db, kind, o.runId);
        expect(run.start_time).toBe(first.state?.timestamp);
        expect(run.run_count).toBe(kind === "flow" ? 2 : 43);
      });

      it("adds the time spent RUNNING to the run time, and nothing else", async () => {
        const o = await orchestration(t.db, kind, { initial: null });
        const start = addSeconds(now(), -100);
        await o.propose({ type: "PENDING", timestamp: start }, { policy: [] });
        await o.propose({ type: "RUNNING", timestamp: addSeconds(start, 8) }, { policy: [] });
        await o.propose({ type: "RUNNING", name: "Still", timestamp: addSeconds(start, 50) }, { policy: [] });
        await o.propose({ type: "COMPLETED", timestamp: addSeconds(start, 60) }, { policy: [] });
        await o.propose({ type: "COMPLETED", name: "Again", timestamp: addSeconds(start, 90) }, { policy: [] });
        expect((await readRun(t.db, kind, o.runId)).total_run_time).toBeCloseTo(52, 6);
      });

      it("sets the end time entering a final state and clears it leaving one", async () => {
        for (const type of TERMINAL) {
          const o = await orchestration(t.db, kind, { initial: "RUNNING" });
          const result = await o.propose({ type }, { policy: [] });
          expect((await readRun(t.db, kind, o.runId)).end_time, type).toBe(result.state?.timestamp);
          await o.propose({ type: "RUNNING" }, { policy: [] });
          expect((await readRun(t.db, kind, o.runId)).end_time, type).toBeNull();
        }
        const o = await orchestration(t.db, kind, { initial: "RUNNING" });
        const completed = await o.propose({ type: "COMPLETED" }, { policy: [] });
        await o.propose({ type: "FAILED" }, { policy: [] });
        expect((await readRun(t.db, kind, o.runId)).end_time).toBe(completed.state?.timestamp);
      });

      it("sets the start time too when a run ends without having run", async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        let run = await readRun(t.db, kind, o.runId);
        expect(run.start_time).toBeNull();
        const failed = await o.propose({ type: "FAILED" }, { force: true });
        run = await readRun(t.db, kind, o.runId);
        expect(run.start_time).toBe(failed.state?.timestamp);
        expect(run.end_time).toBe(failed.state?.timestamp);
      });
    });
  }

  it("forced RUNNING → RUNNING keeps the start time, counts a run and adds the run time", async () => {
    const run = await makeFlowRun(t.db);
    await setFlowRunState(t.db, run.id, { type: "SCHEDULED" });
    const dt = now();
    await setFlowRunState(t.db, run.id, { type: "RUNNING", timestamp: dt });
    let stored = await t.db.flowRuns.get(run.id);
    expect(stored).toMatchObject({ start_time: dt, run_count: 1, total_run_time: 0 });
    const dt2 = addSeconds(dt, 3);
    await setFlowRunState(t.db, run.id, { type: "RUNNING", timestamp: dt2 }, { force: true });
    stored = await t.db.flowRuns.get(run.id);
    expect(stored?.start_time).toBe(dt);
    expect(stored?.run_count).toBe(2);
    expect(stored?.total_run_time).toBeCloseTo(secondsBetween(dt2, dt), 6);
  });

  describe("resuming runs", () => {
    for (const initial of ["PAUSED", "PENDING"] as const) {
      it(`a resuming run entering RUNNING from ${initial} is not counted and stops resuming`, async () => {
        const o = await orchestration(t.db, "flow", { initial, flowRun: { empirical_policy: { resuming: true } } });
        await o.propose({ type: "RUNNING" }, { policy: [] });
        const run = await readRun(t.db, "flow", o.runId);
        expect(run.run_count).toBe(0);
        expect(flowRunPolicy(run.empirical_policy).resuming).toBe(false);
      });
    }

    it("clients of API versions before 0.8.4 know nothing of resuming", async () => {
      const o = await orchestration(t.db, "flow", { initial: "PAUSED", flowRun: { empirical_policy: { resuming: true } } });
      await o.propose({ type: "RUNNING" }, { policy: [], orchestrationParameters: { "api-version": "0.8.3" } });
      const run = await readRun(t.db, "flow", o.runId);
      expect(run.run_count).toBe(1);
      expect(flowRunPolicy(run.empirical_policy).resuming).toBe(true);
    });
  });

  describe("subflows", () => {
    it("force the subflow's state onto its parent task run, pointing at the subflow", async () => {
      const parentTask = await makeTaskRun(t.db);
      await commitState(t.db, "flow", parentTask.flow_run_id!, "RUNNING");
      await commitState(t.db, "task", parentTask.id, "RUNNING");
      const child = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { parent_task_run_id: parentTask.id } });
      const result = await child.propose({ type: "FAILED", message: "boom" });
      expect(result.state?.state_details.task_run_id).toBe(parentTask.id);
      expect(result.state?.state_details.flow_run_id).toBe(child.runId);

      const parent = await t.db.taskRuns.get(parentTask.id);
      expect(parent?.state?.type).toBe("FAILED");
      expect(parent?.state?.message).toBe("boom");
      expect(parent?.state?.id).not.toBe(result.state?.id);
      expect(parent?.state?.state_details).toMatchObject({ child_flow_run_id: child.runId, task_run_id: parentTask.id, flow_run_id: parentTask.flow_run_id });
      expect(parent?.end_time).toBe(parent?.state?.timestamp);
    });

    it("leave the parent task run alone when the subflow's transition writes nothing", async () => {
      const parentTask = await makeTaskRun(t.db);
      await commitState(t.db, "task", parentTask.id, "RUNNING");
      const child = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { parent_task_run_id: parentTask.id } });
      const before = await t.db.taskRuns.readStates(parentTask.id);
      expect(before.at(-1)?.state_details.child_flow_run_id).toBe(child.runId);
      expect((await child.propose({ type: "PENDING" })).status).toBe("ABORT");
      expect(await t.db.taskRuns.readStates(parentTask.id)).toEqual(before);
    });
  });

  it("task runs record their flow run's run count through the whole policy", async () => {
    const o = await orchestration(t.db, "task", { initial: "PENDING", flowRun: { run_count: 2 } });
    await setTaskRunState(t.db, o.runId, { type: "RUNNING" });
    expect((await t.db.taskRuns.get(o.runId))?.flow_run_run_count).toBe(3);
  });
});
