/**
 * Task-run rules of CoreTaskPolicy and BackgroundTaskPolicy (Prefect's test_core_policy.py:
 * TestCachingBackendLogic, TestTaskRetryingRule, TestRenameRetryingStates,
 * TestUpdatingFlowRunTrackerOnTasks, TestPermitRerunningFailedTaskRuns,
 * TestPreventRunningTasksFromStoppedFlows, TestCopyTaskParametersID).
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, secondsBetween, type StateType } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { describe, expect, it } from "vitest";
import {
  ALL_ORCHESTRATION_STATES,
  CacheInsertion,
  CacheRetrieval,
  clampedPoissonInterval,
  CopyTaskParametersID,
  HandleTaskTerminalStateTransitions,
  OrchestrationRule,
  type OrchestrationState,
  PreventRunningTasksFromStoppedFlows,
  RenameReruns,
  RetryFailedTasks,
  setTaskRunState,
  UpdateFlowRunTrackerOnTasks,
} from "../src/index.js";
import { commitState, fixedRandom, makeTaskRun, orchestration, readRun } from "./support.js";

const ALL: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const caching = [CacheInsertion, CacheRetrieval];

/** Rejects into a state of another type than both ends of the transition: earlier rules fizzle. */
class FizzlingRule extends OrchestrationRule {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = ALL_ORCHESTRATION_STATES;
  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null) {
    const other = (["COMPLETED", "CANCELLED", "CRASHED"] as const).find((t) => t !== initial?.type && t !== proposed?.type)!;
    await this.rejectTransition({ ...proposed!, type: other }, "for testing, of course");
  }
}

describeEachBackend("CoreTaskPolicy rules", (t) => {
  describe("caching (CacheInsertion, CacheRetrieval)", () => {
    for (const [name, expiration, status, stateName] of [
      ["past", -86400, "ACCEPT", "Running"],
      ["future", 86400, "REJECT", "Cached"],
      ["null", null, "REJECT", "Cached"],
    ] as const) {
      it(`a cache entry expiring in the ${name}: ${status}`, async () => {
        const cache_expiration = expiration === null ? null : addSeconds(now(), expiration);
        const details = { cache_key: `cache-hit-${randomUUID()}`, cache_expiration };
        const first = await orchestration(t.db, "task", { initial: "RUNNING", initialState: { details } });
        const completed = await first.propose({ type: "COMPLETED", state_details: details, data: { storage_key: "/tmp/result" } }, { policy: caching });
        expect(completed.status).toBe("ACCEPT");

        const second = await orchestration(t.db, "task", { initial: "PENDING", initialState: { details } });
        const result = await second.propose({ type: "RUNNING", state_details: details }, { policy: caching });
        expect(result.status).toBe(status);
        expect(result.state?.name).toBe(stateName);
        if (status === "REJECT") {
          expect(result.details).toEqual({ type: "reject_details", reason: "Retrieved state from cache" });
          expect(result.state?.type).toBe("COMPLETED");
          expect(result.state?.id).not.toBe(completed.state?.id);
          expect(result.state?.data).toEqual({ storage_key: "/tmp/result" });
          expect(result.state?.state_details.task_run_id).toBe(second.runId);
          const run = await readRun(t.db, "task", second.runId);
          expect(run.state_type).toBe("COMPLETED");
          expect(run.state_name).toBe("Cached");
        }
      });
    }

    it("caches only COMPLETED states", async () => {
      for (const proposed of ALL.filter((s) => s !== "COMPLETED")) {
        const details = { cache_key: `cache-hit-${randomUUID()}` };
        const first = await orchestration(t.db, "task", { initial: "RUNNING", initialState: { details } });
        expect((await first.propose({ type: proposed, state_details: details }, { policy: caching })).status).toBe("ACCEPT");
        const second = await orchestration(t.db, "task", { initial: "PENDING", initialState: { details } });
        expect((await second.propose({ type: "RUNNING", state_details: details }, { policy: caching })).status, proposed).toBe("ACCEPT");
      }
    });

    it("refresh_cache runs the task again", async () => {
      const details = { cache_key: `cache-hit-${randomUUID()}` };
      const first = await orchestration(t.db, "task", { initial: "RUNNING" });
      await first.propose({ type: "COMPLETED", state_details: details }, { policy: caching });
      const second = await orchestration(t.db, "task", { initial: "PENDING" });
      const result = await second.propose({ type: "RUNNING", state_details: { ...details, refresh_cache: true } }, { policy: caching });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.type).toBe("RUNNING");
    });

    it("flags a cache key over the maximum length", async () => {
      const o = await orchestration(t.db, "task", { initial: "RUNNING" });
      const result = await o.propose({ type: "COMPLETED", state_details: { cache_key: "k".repeat(11) } }, { policy: caching, settings: { maxCacheKeyLength: 10 } });
      expect(result.status).toBe("REJECT");
      expect(result.details).toEqual({ type: "reject_details", reason: "Cache key exceeded maximum allowed length of 10 characters." });
    });

    it("the whole policy serves a cached result to a later run", async () => {
      const details = { cache_key: `cache-hit-${randomUUID()}` };
      const first = await orchestration(t.db, "task", { initial: "PENDING" });
      await first.propose({ type: "RUNNING", state_details: details });
      await first.propose({ type: "COMPLETED", state_details: details, data: { storage_key: "/tmp/r" } });
      const second = await orchestration(t.db, "task", { initial: "PENDING" });
      const result = await second.propose({ type: "RUNNING", state_details: details });
      expect(result.status).toBe("REJECT");
      expect(result.state?.name).toBe("Cached");
      // the run never ran
      expect((await readRun(t.db, "task", second.runId)).run_count).toBe(0);
    });
  });

  describe("RetryFailedTasks", () => {
    // The initial RUNNING state is forced through the global policy, which counts a run: runs are
    // created with one run fewer than they have when the transition under test happens.
    const failing = (runCount: number, policy: Record<string, unknown>) =>
      orchestration(t.db, "task", { initial: "RUNNING", taskRun: { run_count: runCount - 1, empirical_policy: policy } });

    it("retries failures while retries remain", async () => {
      const o = await failing(2, { retries: 2 });
      const result = await o.propose({ type: "FAILED", message: "oops" }, { policy: [RetryFailedTasks] });
      expect(result.status).toBe("REJECT");
      expect(result.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry", message: "oops" });
      expect((await readRun(t.db, "task", o.runId)).state_name).toBe("AwaitingRetry");
    });

    it("waits the configured delay", async () => {
      const o = await failing(2, { retries: 2, retry_delay: 10 });
      const before = now();
      const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedTasks] });
      const delay = secondsBetween(result.state!.state_details.scheduled_time!, before);
      expect(delay).toBeGreaterThanOrEqual(10);
      expect(delay).toBeLessThan(15);
    });

    it("takes the attempt's delay from a list, and its last entry past the end", async () => {
      const delays = [2, 3, 5, 7, 11];
      for (const [attempt, expected] of [
        [1, 2],
        [2, 3],
        [3, 5],
        [4, 7],
        [5, 11],
      ] as const) {
        const o = await failing(attempt, { retries: 5, retry_delay: delays });
        const before = now();
        const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedTasks] });
        const delay = secondsBetween(result.state!.state_details.scheduled_time!, before);
        expect(delay, `attempt ${attempt}`).toBeGreaterThanOrEqual(expected);
        expect(delay).toBeLessThan(expected + 4);
      }
      const past = await failing(6, { retries: 6, retry_delay: [2, 3, 5, 7] });
      const before = now();
      const result = await past.propose({ type: "FAILED" }, { policy: [RetryFailedTasks] });
      const delay = secondsBetween(result.state!.state_details.scheduled_time!, before);
      expect(delay).toBeGreaterThanOrEqual(7);
      expect(delay).toBeLessThan(11);
    });

    it("jitters the delay with the clamped Poisson interval", async () => {
      const random = fixedRandom(0.9999);
      const expected = clampedPoissonInterval(10, 9, fixedRandom(0.9999));
      expect(expected).toBeGreaterThan(50);
      expect(expected).toBeLessThanOrEqual(100);
      const o = await failing(2, { retries: 2, retry_delay: 10, retry_jitter_factor: 9 });
      const before = now();
      const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedTasks], random });
      const delay = secondsBetween(result.state!.state_details.scheduled_time!, before);
      expect(delay).toBeGreaterThanOrEqual(expected);
      expect(delay).toBeLessThan(expected + 4);
    });

    it("jitter without a delay retries at once", async () => {
      const o = await failing(1, { retries: 2, retry_jitter_factor: 0.5 });
      const before = now();
      const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedTasks] });
      expect(result.status).toBe("REJECT");
      expect(secondsBetween(result.state!.state_details.scheduled_time!, before)).toBeLessThan(5);
    });

    it("stops retrying eventually", async () => {
      const o = await failing(3, { retries: 2 });
      const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedTasks] });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.type).toBe("FAILED");
    });

    it("does not retry a failure the client marks not retriable", async () => {
      const o = await failing(1, { retries: 2 });
      const result = await o.propose({ type: "FAILED", state_details: { retriable: false } }, { policy: [RetryFailedTasks] });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.type).toBe("FAILED");
    });
  });

  describe("RenameReruns", () => {
    it("names reruns Rerunning, retries Retrying, and first runs Running", async () => {
      const rerun = await orchestration(t.db, "task", { initial: "SCHEDULED", taskRun: { run_count: 2 } });
      expect((await rerun.propose({ type: "RUNNING" }, { policy: [RenameReruns] })).state?.name).toBe("Rerunning");
      const retry = await orchestration(t.db, "task", { initial: "SCHEDULED", initialState: { name: "AwaitingRetry" }, taskRun: { run_count: 2 } });
      expect((await retry.propose({ type: "RUNNING" }, { policy: [RenameReruns] })).state?.name).toBe("Retrying");
      const first = await orchestration(t.db, "task", { initial: "SCHEDULED" });
      expect((await first.propose({ type: "RUNNING" }, { policy: [RenameReruns] })).state?.name).toBe("Running");
    });

    it("names a flow run's retry Retrying too", async () => {
      const o = await orchestration(t.db, "flow", { initial: "SCHEDULED", initialState: { name: "AwaitingRetry" }, flowRun: { run_count: 1 } });
      expect((await o.propose({ type: "RUNNING" }, { policy: [RenameReruns] })).state?.name).toBe("Retrying");
    });
  });

  describe("UpdateFlowRunTrackerOnTasks", () => {
    it("records the flow run's run count when the task starts running", async () => {
      for (const initial of [null, ...ALL]) {
        // the flow run's forced RUNNING state counts one more run
        const o = await orchestration(t.db, "task", { initial, flowRun: { run_count: 41 }, taskRun: { flow_run_run_count: 1 } });
        expect((await t.db.flowRuns.get(o.flowRunId))?.run_count).toBe(42);
        await o.propose({ type: "RUNNING" }, { policy: [UpdateFlowRunTrackerOnTasks] });
        expect((await t.db.taskRuns.get(o.runId))?.flow_run_run_count, String(initial)).toBe(42);
      }
    });
  });

  describe("rerunning failed task runs (HandleTaskTerminalStateTransitions)", () => {
    const policy = [HandleTaskTerminalStateTransitions, UpdateFlowRunTrackerOnTasks];

    it("names the rerun Retrying while its flow run retries, and resets the run count", async () => {
      const o = await orchestration(t.db, "task", { initial: "FAILED", flowRun: { run_count: 3, empirical_policy: { retries: 10 } }, taskRun: { run_count: 2, flow_run_run_count: 2 } });
      const result = await o.propose({ type: "RUNNING" }, { policy });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.name).toBe("Retrying");
      const run = await readRun(t.db, "task", o.runId);
      expect(run.run_count).toBe(1); // reset to 0, then counted by the global policy
      expect((run as { flow_run_run_count: number }).flow_run_run_count).toBe(4);
    });

    it("reruns without renaming when the flow run is not retrying", async () => {
      const o = await orchestration(t.db, "task", { initial: "FAILED", initialState: { data: "test" }, flowRun: { run_count: 2 }, taskRun: { run_count: 2, flow_run_run_count: 3 } });
      const result = await o.propose({ type: "RUNNING" }, { policy });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.name).toBe("Running");
      expect((await readRun(t.db, "task", o.runId)).run_count).toBe(1);
    });

    it("restores the run count when a later rule changes the transition", async () => {
      const o = await orchestration(t.db, "task", { initial: "FAILED", flowRun: { run_count: 3 }, taskRun: { run_count: 2, flow_run_run_count: 2 } });
      const result = await o.propose({ type: "RUNNING" }, { policy: [...policy, FizzlingRule] });
      expect(result.status).toBe("REJECT");
      const run = await readRun(t.db, "task", o.runId);
      expect(run.run_count).toBe(2);
      expect((run as { flow_run_run_count: number }).flow_run_run_count).toBe(2);
    });
  });

  describe("PreventRunningTasksFromStoppedFlows", () => {
    it("lets tasks of a RUNNING flow run run", async () => {
      const o = await orchestration(t.db, "task", { initial: "PENDING", flowRunState: "RUNNING" });
      const result = await o.propose({ type: "RUNNING" }, { policy: [PreventRunningTasksFromStoppedFlows] });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.type).toBe("RUNNING");
    });

    it("aborts tasks of flow runs in any other state, or in none", async () => {
      for (const flowState of [null, ...ALL.filter((s) => s !== "RUNNING" && s !== "PAUSED")]) {
        const o = await orchestration(t.db, "task", { initial: "PENDING", flowRunState: flowState });
        const result = await o.propose({ type: "RUNNING" }, { policy: [PreventRunningTasksFromStoppedFlows] });
        expect(result.status, String(flowState)).toBe("ABORT");
        expect(result.details).toEqual({ type: "abort_details", reason: "The enclosing flow must be running to begin task execution." });
        expect(result.state?.type).toBe("PENDING");
      }
    });

    it("pauses tasks of a paused flow run with the flow run's pause details, in a state of their own", async () => {
      const pauseTimeout = addSeconds(now(), 300);
      const o = await orchestration(t.db, "task", { initial: "PENDING", flowRunState: "PAUSED", flowRunStateDetails: { pause_timeout: pauseTimeout, pause_reschedule: true } });
      const flowRun = await t.db.flowRuns.get(o.flowRunId);
      const result = await o.propose({ type: "RUNNING" }, { policy: [PreventRunningTasksFromStoppedFlows] });
      expect(result.status).toBe("REJECT");
      expect(result.state).toMatchObject({ type: "PAUSED", name: "NotReady" });
      expect(result.state?.id).not.toBe(flowRun?.state?.id);
      expect(result.state?.state_details.pause_timeout).toBe(pauseTimeout);
      expect(result.state?.state_details.pause_reschedule).toBe(true);
      expect(result.details).toEqual({ type: "reject_details", reason: `The flow is paused, new tasks can execute after resuming flow run: ${o.flowRunId}.` });
    });

    it("does not hold back task runs without a flow run", async () => {
      const task = await makeTaskRun(t.db, { flow_run_id: null });
      await commitState(t.db, "task", task.id, "PENDING");
      expect((await setTaskRunState(t.db, task.id, { type: "RUNNING" })).status).toBe("ACCEPT");
    });
  });

  describe("background tasks (BackgroundTaskPolicy)", () => {
    it("copies the task parameters id from SCHEDULED/PENDING to PENDING/RUNNING only", async () => {
      for (const initial of ["SCHEDULED", "PENDING"] as const) {
        for (const proposed of ["PENDING", "RUNNING", "COMPLETED", "FAILED"] as const) {
          const id = randomUUID();
          const o = await orchestration(t.db, "task", { initial, initialState: { details: { task_parameters_id: id } } });
          const result = await o.propose({ type: proposed, name: proposed === "PENDING" ? "Submitted" : undefined }, { policy: [CopyTaskParametersID] });
          expect(result.state?.state_details.task_parameters_id, `${initial} → ${proposed}`).toBe(proposed === "PENDING" || proposed === "RUNNING" ? id : null);
        }
      }
    });

    it("deferred proposals are governed by BackgroundTaskPolicy and queued when scheduled", async () => {
      const task = await makeTaskRun(t.db, { flow_run_id: null });
      const parameters = randomUUID();
      const scheduled = await setTaskRunState(t.db, task.id, { type: "SCHEDULED", state_details: { deferred: true, task_parameters_id: parameters } });
      expect(scheduled.taskQueue).toBe("enqueue");
      const pending = await setTaskRunState(t.db, task.id, { type: "PENDING", state_details: { deferred: true } });
      expect(pending.state?.state_details.task_parameters_id).toBe(parameters);
      expect(pending.taskQueue).toBeNull();
      const running = await setTaskRunState(t.db, task.id, { type: "RUNNING", state_details: { deferred: true } });
      expect(running.state?.state_details.task_parameters_id).toBe(parameters);
      const again = await setTaskRunState(t.db, task.id, { type: "PENDING", state_details: { deferred: true } });
      expect(again.status).toBe("ABORT");
      const retried = await setTaskRunState(t.db, task.id, { type: "SCHEDULED", name: "AwaitingRetry", state_details: { deferred: true } });
      expect(retried.taskQueue).toBe("retry");
    });
  });
});
