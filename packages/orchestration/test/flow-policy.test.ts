/**
 * Flow-run rules of CoreFlowPolicy (Prefect's tests/server/orchestration/test_core_policy.py), each
 * exercised alone as Prefect's tests do (`policy: [Rule]`, the global bookkeeping included), and
 * through the whole policy where the interplay matters.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, secondsBetween, type StateType } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { describe, expect, it } from "vitest";
import {
  BypassCancellingFlowRunsWithNoInfra,
  CopyScheduledTime,
  EnforceCancellingToCancelledTransition,
  EnsureOnlyScheduledFlowsMarkedLate,
  flowRunPolicy,
  HandleFlowTerminalStateTransitions,
  HandlePausingFlows,
  HandleResumingPausedFlows,
  HandleTaskTerminalStateTransitions,
  PreserveDeploymentConcurrencyLeaseId,
  PreventDuplicateTransitions,
  PreventPendingTransitions,
  PreventResultDataLoss,
  RetryFailedFlows,
  setFlowRunState,
  WaitForScheduledTime,
} from "../src/index.js";
import { commitState, makeDeployment, makeTaskRun, orchestration, RUN_KINDS, readRun } from "./support.js";

const ALL: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const TERMINAL: readonly StateType[] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];
/** A persisted result record's metadata, as Prefect clients send it. */
const PERSISTED = { storage_key: "/tmp/result.json", expiration: null, serializer: { type: "pickle" }, prefect_version: "3.6.0", storage_block_id: null };

describeEachBackend("CoreFlowPolicy rules", (t) => {
  for (const kind of RUN_KINDS) {
    describe(`WaitForScheduledTime (${kind} runs)`, () => {
      for (const initial of ["SCHEDULED", "PENDING"] as const) {
        it(`${initial} → RUNNING after the scheduled time is not delayed`, async () => {
          const o = await orchestration(t.db, kind, { initial, initialState: { details: { scheduled_time: addSeconds(now(), -300) } } });
          const result = await o.propose({ type: "RUNNING" }, { policy: [WaitForScheduledTime] });
          expect(result.status).toBe("ACCEPT");
          expect(result.state?.type).toBe("RUNNING");
        });

        it(`${initial} → RUNNING before the scheduled time waits for it`, async () => {
          const o = await orchestration(t.db, kind, { initial, initialState: { details: { scheduled_time: addSeconds(now(), 300) } } });
          const result = await o.propose({ type: "RUNNING" }, { policy: [WaitForScheduledTime] });
          expect(result.status).toBe("WAIT");
          expect(result.details.type).toBe("wait_details");
          const delay = result.details.type === "wait_details" ? result.details.delay_seconds : -1;
          expect(delay).toBeGreaterThanOrEqual(298);
          expect(delay).toBeLessThanOrEqual(300);
          expect(result.written).toBe(false);
          expect(result.state?.id).toBe(o.initial?.id);
        });
      }

      it("does not fire against other transitions", async () => {
        for (const proposed of TERMINAL) {
          const o = await orchestration(t.db, kind, { initial: "SCHEDULED", initialState: { details: { scheduled_time: addSeconds(now(), 300) } } });
          const result = await o.propose({ type: proposed }, { policy: [WaitForScheduledTime] });
          expect(result.status).toBe("ACCEPT");
        }
      });
    });

    describe(`CopyScheduledTime (${kind} runs)`, () => {
      it("copies the scheduled time from SCHEDULED to PENDING", async () => {
        const scheduledTime = addSeconds(now(), -300);
        const o = await orchestration(t.db, kind, { initial: "SCHEDULED", initialState: { details: { scheduled_time: scheduledTime } } });
        const result = await o.propose({ type: "PENDING" }, { policy: [CopyScheduledTime] });
        expect(result.state?.type).toBe("PENDING");
        expect(result.state?.state_details.scheduled_time).toBe(scheduledTime);
      });

      it("keeps a scheduled time the PENDING proposal has", async () => {
        const own = addSeconds(now(), 60);
        const o = await orchestration(t.db, kind, { initial: "SCHEDULED", initialState: { details: { scheduled_time: addSeconds(now(), -300) } } });
        const result = await o.propose({ type: "PENDING", state_details: { scheduled_time: own } }, { policy: [CopyScheduledTime] });
        expect(result.state?.state_details.scheduled_time).toBe(own);
      });

      it("copies nothing for other transitions", async () => {
        for (const proposed of [...TERMINAL, "RUNNING"] as const) {
          const o = await orchestration(t.db, kind, { initial: "SCHEDULED", initialState: { details: { scheduled_time: addSeconds(now(), -300) } } });
          const result = await o.propose({ type: proposed }, { policy: [CopyScheduledTime] });
          expect(result.state?.state_details.scheduled_time).toBeNull();
        }
      });
    });

    describe(`terminal states (${kind} runs)`, () => {
      const only = kind === "flow" ? { policy: [HandleFlowTerminalStateTransitions] } : { policy: [HandleTaskTerminalStateTransitions] };

      it("aborts moves from a final state to CRASHED, CANCELLING or PAUSED", async () => {
        for (const initial of TERMINAL) {
          for (const proposed of ["CRASHED", "CANCELLING", "PAUSED"] as const) {
            const o = await orchestration(t.db, kind, { initial });
            const result = await o.propose({ type: proposed }, only);
            expect(result.status, `${initial} → ${proposed}`).toBe("ABORT");
            expect(result.written).toBe(false);
          }
        }
      });

      it("allows leaving COMPLETED without a persisted result for a non-final state", async () => {
        for (const proposed of (kind === "flow" ? ["PENDING", "RUNNING"] : ["SCHEDULED", "PENDING", "RUNNING"]) as StateType[]) {
          const o = await orchestration(t.db, kind, { initial: "COMPLETED" });
          const result = await o.propose({ type: proposed }, only);
          expect(result.status, `COMPLETED → ${proposed}`).toBe("ACCEPT");
        }
      });

      it("rejects leaving COMPLETED with a persisted result for a non-final state", async () => {
        for (const proposed of ["SCHEDULED", "PENDING", "RUNNING"] as const) {
          const o = await orchestration(t.db, kind, { initial: "COMPLETED", initialState: { data: PERSISTED }, flowRun: { deployment_id: randomUUID() } });
          const result = await o.propose({ type: proposed }, only);
          expect(result.status, `COMPLETED → ${proposed}`).toBe("REJECT");
          expect(result.state?.id).toBe(o.initial?.id);
          expect(result.written).toBe(false);
        }
      });

      it("leaves transitions from non-final states alone", async () => {
        for (const initial of ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"] as const) {
          for (const proposed of ALL) {
            const o = await orchestration(t.db, kind, { initial });
            const result = await o.propose({ type: proposed }, only);
            expect(result.status, `${initial} → ${proposed}`).toBe("ACCEPT");
          }
        }
      });
    });
  }

  describe("manual flow retries (HandleFlowTerminalStateTransitions)", () => {
    it("accepts a rescheduled FAILED run with a deployment under any name, keeping its run count", async () => {
      const o = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { run_count: 2, deployment_id: randomUUID(), empirical_policy: { retries: 1 } } });
      const result = await o.propose({ type: "SCHEDULED", name: "FooBar" }, { policy: [HandleFlowTerminalStateTransitions] });
      expect(result.status).toBe("ACCEPT");
      const run = await readRun(t.db, "flow", o.runId);
      expect(run.run_count).toBe(2);
      expect(flowRunPolicy(run.empirical_policy).retry_type).toBe("reschedule");
    });

    it("works past the configured retries", async () => {
      const o = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { run_count: 3, deployment_id: randomUUID(), empirical_policy: { retries: 1 } } });
      const result = await o.propose({ type: "SCHEDULED", name: "AwaitingRetry" });
      expect(result.status).toBe("ACCEPT");
      expect((await readRun(t.db, "flow", o.runId)).run_count).toBe(3);
    });

    it("aborts rescheduling a run without a deployment", async () => {
      const o = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { run_count: 2, empirical_policy: { retries: 1 } } });
      const result = await o.propose({ type: "SCHEDULED", name: "AwaitingRetry" }, { policy: [HandleFlowTerminalStateTransitions] });
      expect(result.status).toBe("ABORT");
      expect(result.details).toEqual({ type: "abort_details", reason: "Cannot reschedule a run without an associated deployment." });
      expect((await readRun(t.db, "flow", o.runId)).run_count).toBe(2);
    });

    it("resets the pause bookkeeping and the retry type when leaving a final state", async () => {
      const policy = { retries: 1, pause_keys: ["a"], resuming: true, retry_type: "in_process" };
      const o = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { empirical_policy: policy } });
      await o.propose({ type: "RUNNING" }, { policy: [HandleFlowTerminalStateTransitions] });
      const stored = flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy);
      expect(stored).toMatchObject({ pause_keys: [], resuming: false, retry_type: null });

      const final = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { empirical_policy: policy } });
      await final.propose({ type: "COMPLETED" }, { policy: [HandleFlowTerminalStateTransitions] });
      expect(flowRunPolicy((await readRun(t.db, "flow", final.runId)).empirical_policy)).toMatchObject({ pause_keys: ["a"], retry_type: "in_process" });
    });

    it("restores the run's policy when a later rule changes the transition", async () => {
      const policy = { pause_keys: ["a"], retry_type: "in_process" };
      const o = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { empirical_policy: policy } });
      // EnsureOnlyScheduledFlowsMarkedLate rejects FAILED → Late with no state: the terminal rule fizzles.
      const result = await o.propose({ type: "SCHEDULED", name: "Late" }, { policy: [HandleFlowTerminalStateTransitions, EnsureOnlyScheduledFlowsMarkedLate] });
      expect(result.status).toBe("ABORT");
      const withDeployment = await orchestration(t.db, "flow", { initial: "FAILED", flowRun: { empirical_policy: policy, deployment_id: randomUUID() } });
      const rejected = await withDeployment.propose({ type: "SCHEDULED", name: "Late" }, { policy: [HandleFlowTerminalStateTransitions, EnsureOnlyScheduledFlowsMarkedLate] });
      expect(rejected.status).toBe("REJECT");
      expect(flowRunPolicy((await readRun(t.db, "flow", withDeployment.runId)).empirical_policy)).toMatchObject({ pause_keys: ["a"], retry_type: "in_process" });
    });
  });

  describe("PreventResultDataLoss", () => {
    for (const [name, rule] of [
      ["PreventResultDataLoss", PreventResultDataLoss],
      ["HandleFlowTerminalStateTransitions", HandleFlowTerminalStateTransitions],
    ] as const) {
      it(`${name} rejects COMPLETED → COMPLETED that drops persisted result data`, async () => {
        const o = await orchestration(t.db, "flow", { initial: "COMPLETED", initialState: { data: PERSISTED } });
        const result = await o.propose({ type: "COMPLETED" }, { policy: [rule] });
        expect(result.status).toBe("REJECT");
        expect(result.details).toEqual({ type: "reject_details", reason: "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not." });
        for (const scalar of [1, "hello", true, [1, 2, 3]]) {
          const s = await orchestration(t.db, "flow", { initial: "COMPLETED", initialState: { data: PERSISTED } });
          expect((await s.propose({ type: "COMPLETED", data: scalar }, { policy: [rule] })).status).toBe("REJECT");
        }
      });

      it(`${name} accepts COMPLETED → COMPLETED without persisted data to lose`, async () => {
        for (const data of [null, { type: "unpersisted" }, 1, "hello", true, [1, 2, 3]]) {
          const o = await orchestration(t.db, "flow", { initial: "COMPLETED", initialState: { data } });
          expect((await o.propose({ type: "COMPLETED" }, { policy: [rule] })).status, JSON.stringify(data)).toBe("ACCEPT");
        }
      });
    }

    it("guards forced transitions too", async () => {
      const o = await orchestration(t.db, "flow", { initial: "COMPLETED", initialState: { data: PERSISTED } });
      const result = await o.propose({ type: "COMPLETED" }, { force: true });
      expect(result.status).toBe("REJECT");
      const replaced = await o.propose({ type: "COMPLETED", data: { ...PERSISTED, storage_key: "/tmp/other.json" } }, { force: true });
      expect(replaced.status).toBe("ACCEPT");
    });
  });

  describe("EnsureOnlyScheduledFlowsMarkedLate", () => {
    it("rejects marking runs other than SCHEDULED late", async () => {
      for (const initial of ["RUNNING", "PENDING", "COMPLETED", "FAILED", "CANCELLING"] as const) {
        const o = await orchestration(t.db, "flow", { initial });
        const result = await o.propose({ type: "SCHEDULED", name: "Late" }, { policy: [EnsureOnlyScheduledFlowsMarkedLate] });
        expect(result.status, initial).toBe("REJECT");
        expect(result.details).toEqual({ type: "reject_details", reason: "Only scheduled flows can be marked late." });
        expect(result.state?.type).toBe(initial);
      }
    });

    it("accepts SCHEDULED → Late once", async () => {
      const o = await orchestration(t.db, "flow", { initial: "SCHEDULED" });
      expect((await o.propose({ type: "SCHEDULED", name: "Late" }, { policy: [EnsureOnlyScheduledFlowsMarkedLate] })).status).toBe("ACCEPT");
      const again = await o.propose({ type: "SCHEDULED", name: "Late" }, { policy: [EnsureOnlyScheduledFlowsMarkedLate] });
      expect(again.status).toBe("REJECT");
      expect(again.details).toEqual({ type: "reject_details", reason: "This flow run is already marked late." });
    });
  });

  describe("PreventPendingTransitions", () => {
    it("aborts moves to PENDING from PENDING, RUNNING, CANCELLING and CANCELLED", async () => {
      for (const initial of ["CANCELLING", "CANCELLED", "RUNNING", "PENDING"] as const) {
        const o = await orchestration(t.db, "flow", { initial });
        const result = await o.propose({ type: "PENDING" }, { policy: [PreventPendingTransitions] });
        expect(result.status, initial).toBe("ABORT");
        expect(result.details).toEqual({ type: "abort_details", reason: `This run is in a ${initial} state and cannot transition to a PENDING state.` });
      }
    });

    it("accepts every other transition", async () => {
      for (const initial of ALL) {
        for (const proposed of ALL) {
          if (proposed === "PENDING" && ["CANCELLING", "CANCELLED", "RUNNING", "PENDING"].includes(initial)) continue;
          const o = await orchestration(t.db, "flow", { initial });
          expect((await o.propose({ type: proposed }, { policy: [PreventPendingTransitions] })).status, `${initial} → ${proposed}`).toBe("ACCEPT");
        }
      }
    });

    it("allows PENDING → PENDING under a new name other than Pending, keeping the scheduled time and lease", async () => {
      for (const [initialName, proposedName] of [
        ["Pending", "Submitting"],
        ["Submitting", "InfrastructurePending"],
        ["Pending", "InfrastructurePending"],
      ] as const) {
        const scheduledTime = addSeconds(now(), -60);
        const lease = randomUUID();
        const o = await orchestration(t.db, "flow", { initial: "PENDING", initialState: { name: initialName, details: { scheduled_time: scheduledTime, deployment_concurrency_lease_id: lease } } });
        const result = await o.propose({ type: "PENDING", name: proposedName }, { policy: [PreventPendingTransitions] });
        expect(result.status).toBe("ACCEPT");
        expect(result.state?.state_details.scheduled_time).toBe(scheduledTime);
        expect(result.state?.state_details.deployment_concurrency_lease_id).toBe(lease);
      }
      for (const initialName of ["Pending", "Submitting", "InfrastructurePending"]) {
        const o = await orchestration(t.db, "flow", { initial: "PENDING", initialState: { name: initialName } });
        expect((await o.propose({ type: "PENDING", name: "Pending" }, { policy: [PreventPendingTransitions] })).status, initialName).toBe("ABORT");
      }
    });
  });

  describe("cancelling", () => {
    it("rejects CANCELLING → anything but CANCELLED, keeping CANCELLING", async () => {
      for (const proposed of ALL.filter((s) => s !== "CANCELLED")) {
        const o = await orchestration(t.db, "flow", { initial: "CANCELLING" });
        const result = await o.propose({ type: proposed }, { policy: [EnforceCancellingToCancelledTransition] });
        expect(result.status, proposed).toBe("REJECT");
        expect(result.state?.type).toBe("CANCELLING");
      }
      const o = await orchestration(t.db, "flow", { initial: "CANCELLING" });
      expect((await o.propose({ type: "CANCELLED" })).status).toBe("ACCEPT");
    });

    it("does not hold CANCELLED runs back", async () => {
      for (const proposed of ALL.filter((s) => s !== "CANCELLED")) {
        const o = await orchestration(t.db, "flow", { initial: "CANCELLED" });
        expect((await o.propose({ type: proposed }, { policy: [EnforceCancellingToCancelledTransition] })).status).toBe("ACCEPT");
      }
    });

    it("cancels runs without infrastructure directly (BypassCancellingFlowRunsWithNoInfra)", async () => {
      const scheduled = await orchestration(t.db, "flow", { initial: "SCHEDULED" });
      const a = await scheduled.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] });
      expect(a.status).toBe("REJECT");
      expect(a.state?.type).toBe("CANCELLED");
      expect(a.details).toEqual({ type: "reject_details", reason: "Scheduled flow run has no infrastructure to terminate." });

      const suspended = await orchestration(t.db, "flow", { initial: "PAUSED", initialState: { details: { pause_reschedule: true } } });
      const b = await suspended.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] });
      expect(b.state?.type).toBe("CANCELLED");
      expect(b.details).toEqual({ type: "reject_details", reason: "Suspended flow run has no infrastructure to terminate." });

      const resuming = await orchestration(t.db, "flow", { initial: "SCHEDULED", initialState: { name: "Resuming" }, flowRun: { infrastructure_pid: "my-pid-42" } });
      expect((await resuming.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] })).state?.type).toBe("CANCELLED");

      // forced cancellation (the UI) bypasses too
      const forced = await orchestration(t.db, "flow", { initial: "SCHEDULED" });
      expect((await forced.propose({ type: "CANCELLING" }, { force: true })).state?.type).toBe("CANCELLED");
    });

    it("lets runs with infrastructure, and blocking pauses, go CANCELLING", async () => {
      const withPid = await orchestration(t.db, "flow", { initial: "SCHEDULED", flowRun: { infrastructure_pid: "my-pid-42" } });
      const a = await withPid.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] });
      expect(a.status).toBe("ACCEPT");
      expect(a.state?.type).toBe("CANCELLING");
      const paused = await orchestration(t.db, "flow", { initial: "PAUSED" });
      expect((await paused.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] })).state?.type).toBe("CANCELLING");
      for (const initial of ALL.filter((s) => s !== "SCHEDULED" && s !== "PAUSED")) {
        const o = await orchestration(t.db, "flow", { initial });
        expect((await o.propose({ type: "CANCELLING" }, { policy: [BypassCancellingFlowRunsWithNoInfra] })).state?.type, initial).toBe("CANCELLING");
      }
    });
  });

  describe("PreventDuplicateTransitions", () => {
    const cases: [string, string | null, string | null, "ACCEPT" | "REJECT"][] = (() => {
      const same = randomUUID();
      return [
        ["no transition ids", null, null, "ACCEPT"],
        ["no proposed transition id", randomUUID(), null, "ACCEPT"],
        ["no current transition id", null, randomUUID(), "ACCEPT"],
        ["different transition ids", randomUUID(), randomUUID(), "ACCEPT"],
        ["the same transition id", same, same, "REJECT"],
      ];
    })();
    for (const [name, current, proposed, status] of cases) {
      it(`${name}: ${status}`, async () => {
        const o = await orchestration(t.db, "flow", { initial: "PENDING", initialState: { details: { transition_id: current } } });
        const result = await o.propose({ type: "RUNNING", state_details: { transition_id: proposed } }, { policy: [PreventDuplicateTransitions] });
        expect(result.status).toBe(status);
        if (status === "REJECT") {
          expect(result.state?.id).toBe(o.initial?.id);
          expect(result.written).toBe(false);
        }
      });
    }

    it("makes set_state idempotent under the whole policy", async () => {
      const o = await orchestration(t.db, "flow", { initial: "PENDING" });
      const transition_id = randomUUID();
      const first = await o.propose({ type: "RUNNING", state_details: { transition_id } });
      const retried = await o.propose({ type: "RUNNING", state_details: { transition_id } });
      expect(first.status).toBe("ACCEPT");
      expect(retried.status).toBe("REJECT");
      expect(retried.state?.id).toBe(first.state?.id);
      expect((await readRun(t.db, "flow", o.runId)).run_count).toBe(1);
    });
  });

  describe("pausing (HandlePausingFlows)", () => {
    it("refuses to suspend subflows", async () => {
      const parent = await makeTaskRun(t.db);
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { parent_task_run_id: parent.id, deployment_id: randomUUID() } });
      const result = await o.propose({ type: "PAUSED", name: "Suspended", state_details: { pause_reschedule: true } }, { policy: [HandlePausingFlows] });
      expect(result.status).toBe("ABORT");
      expect(result.details).toEqual({ type: "abort_details", reason: "Cannot suspend subflows." });
    });

    it("suspends (pause with reschedule) only runs of deployments", async () => {
      const without = await orchestration(t.db, "flow", { initial: "RUNNING" });
      const a = await without.propose({ type: "PAUSED", state_details: { pause_reschedule: true } }, { policy: [HandlePausingFlows] });
      expect(a.status).toBe("ABORT");
      expect(a.details).toEqual({ type: "abort_details", reason: "Cannot pause flows without a deployment." });
      const withDeployment = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { deployment_id: randomUUID() } });
      expect((await withDeployment.propose({ type: "PAUSED", state_details: { pause_reschedule: true } }, { policy: [HandlePausingFlows] })).status).toBe("ACCEPT");
    });

    it("remembers the pause key, a random one by default, and each key fires once", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING" });
      const paused = await o.propose({ type: "PAUSED", state_details: { pause_key: "hello", pause_timeout: addSeconds(now(), 1000) } }, { policy: [HandlePausingFlows] });
      expect(paused.status).toBe("ACCEPT");
      expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).pause_keys).toEqual(["hello"]);

      await o.propose({ type: "RUNNING" }, { force: true });
      const again = await o.propose({ type: "PAUSED", state_details: { pause_key: "hello" } }, { policy: [HandlePausingFlows] });
      expect(again.status).toBe("REJECT");
      expect(again.details).toEqual({ type: "reject_details", reason: "This pause has already fired." });
      expect(again.state?.type).toBe("RUNNING");

      const random = await orchestration(t.db, "flow", { initial: "RUNNING" });
      await random.propose({ type: "PAUSED" }, { policy: [HandlePausingFlows] });
      expect(flowRunPolicy((await readRun(t.db, "flow", random.runId)).empirical_policy).pause_keys).toHaveLength(1);
    });

    it("pauses only RUNNING runs", async () => {
      const none = await orchestration(t.db, "flow", { initial: null });
      const a = await none.propose({ type: "PAUSED" }, { policy: [HandlePausingFlows] });
      expect(a.status).toBe("ABORT");
      expect(a.details).toEqual({ type: "abort_details", reason: "Cannot pause flows with no state." });
      for (const initial of ALL) {
        const o = await orchestration(t.db, "flow", { initial, flowRun: { deployment_id: randomUUID() } });
        const result = await o.propose({ type: "PAUSED" }, { policy: [HandlePausingFlows] });
        if (initial === "RUNNING") {
          expect(result.status).toBe("ACCEPT");
        } else {
          expect(result.status, initial).toBe("REJECT");
          expect(result.state?.type).toBe(initial);
          expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).pause_keys).toEqual([]);
        }
      }
    });
  });

  describe("resuming (HandleResumingPausedFlows)", () => {
    it("a suspended run cannot resume without a deployment; a blocking pause can", async () => {
      const suspended = await orchestration(t.db, "flow", { initial: "PAUSED", initialState: { details: { pause_timeout: addSeconds(now(), 300), pause_reschedule: true } } });
      const a = await suspended.propose({ type: "RUNNING" }, { policy: [HandleResumingPausedFlows] });
      expect(a.status).toBe("REJECT");
      expect(a.state?.type).toBe("PAUSED");
      expect(a.details).toEqual({ type: "reject_details", reason: "Cannot reschedule a running flow run without a deployment." });
      const blocking = await orchestration(t.db, "flow", { initial: "PAUSED", initialState: { details: { pause_timeout: addSeconds(now(), 300) } } });
      expect((await blocking.propose({ type: "RUNNING" }, { policy: [HandleResumingPausedFlows] })).status).toBe("ACCEPT");
    });

    it("leaves PAUSED only for RUNNING, SCHEDULED or a final state", async () => {
      for (const proposed of ALL) {
        const o = await orchestration(t.db, "flow", { initial: "PAUSED", flowRun: { deployment_id: randomUUID() } });
        const result = await o.propose({ type: proposed }, { policy: [HandleResumingPausedFlows] });
        if (["RUNNING", "SCHEDULED", ...TERMINAL].includes(proposed)) {
          expect(result.status, proposed).toBe("ACCEPT");
        } else {
          expect(result.status, proposed).toBe("REJECT");
          expect(result.state?.type).toBe("PAUSED");
        }
      }
    });

    it("fails a run whose pause timed out", async () => {
      const o = await orchestration(t.db, "flow", { initial: "PAUSED", flowRun: { deployment_id: randomUUID() }, initialState: { details: { pause_timeout: addSeconds(now(), -300) } } });
      const result = await o.propose({ type: "RUNNING" }, { policy: [HandleResumingPausedFlows] });
      expect(result.status).toBe("REJECT");
      expect(result.state?.type).toBe("FAILED");
      expect(result.state?.message).toBe("The flow was running and never resumed.");
      expect(result.details).toEqual({ type: "reject_details", reason: "The flow run pause has timed out and can no longer resume." });
    });

    it("marks the run as resuming; a resumed suspended run keeps its run count when it runs again", async () => {
      const deployment = await makeDeployment(t.db);
      const o = await orchestration(t.db, "flow", { initial: "PENDING", flowRun: { flow_id: deployment.flow_id, deployment_id: deployment.id } });
      await o.propose({ type: "RUNNING" });
      await o.propose({ type: "PAUSED", name: "Suspended", state_details: { pause_timeout: addSeconds(now(), 300), pause_reschedule: true } });
      const resumed = await o.propose({ type: "SCHEDULED", name: "Resuming" });
      expect(resumed.status).toBe("ACCEPT");
      expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).resuming).toBe(true);
      await o.propose({ type: "PENDING" });
      await o.propose({ type: "RUNNING" });
      const run = await readRun(t.db, "flow", o.runId);
      expect(run.run_count).toBe(1);
      expect(flowRunPolicy(run.empirical_policy).resuming).toBe(false);
    });

    it("a blocking pause resumes straight to RUNNING (counted as Prefect does) and stays marked until it ends", async () => {
      const o = await orchestration(t.db, "flow", { initial: "PENDING" });
      await o.propose({ type: "RUNNING" });
      await o.propose({ type: "PAUSED", state_details: { pause_timeout: addSeconds(now(), 300) } });
      expect((await o.propose({ type: "RUNNING" })).status).toBe("ACCEPT");
      const resumed = await readRun(t.db, "flow", o.runId);
      expect(resumed.run_count).toBe(2);
      expect(flowRunPolicy(resumed.empirical_policy).resuming).toBe(true);
      await o.propose({ type: "COMPLETED" });
      expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).resuming).toBe(false);
    });
  });

  describe("RetryFailedFlows", () => {
    // The initial RUNNING state is forced through the global policy, which counts a run: the runs
    // below are created with one run fewer than they have when the transition under test happens.
    it("rejects RUNNING → FAILED into AwaitingRetry while retries remain", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { run_count: 0, empirical_policy: { retries: 1, retry_delay: 10, pause_keys: ["x"] } } });
      const before = now();
      const result = await o.propose({ type: "FAILED", message: "boom", data: { type: "unpersisted" } }, { policy: [RetryFailedFlows] });
      expect(result.status).toBe("REJECT");
      expect(result.details).toEqual({ type: "reject_details", reason: "Retrying" });
      expect(result.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry", message: "boom", data: { type: "unpersisted" } });
      const delay = secondsBetween(result.state!.state_details.scheduled_time!, before);
      expect(delay).toBeGreaterThanOrEqual(10);
      expect(delay).toBeLessThan(15);
      const run = await readRun(t.db, "flow", o.runId);
      expect(flowRunPolicy(run.empirical_policy)).toMatchObject({ retry_type: "in_process", pause_keys: [], resuming: false });
      expect(run.next_scheduled_start_time).toBe(result.state?.state_details.scheduled_time);
    });

    it("lets the run fail once retries are exhausted, clearing the retry type", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { run_count: 1, empirical_policy: { retries: 1, retry_type: "in_process" } } });
      const result = await o.propose({ type: "FAILED" }, { policy: [RetryFailedFlows] });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.type).toBe("FAILED");
      expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).retry_type).toBeNull();
    });

    it("sets the retry type while retrying", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { run_count: 1, empirical_policy: { retries: 3 } } });
      await o.propose({ type: "FAILED" }, { policy: [RetryFailedFlows] });
      expect(flowRunPolicy((await readRun(t.db, "flow", o.runId)).empirical_policy).retry_type).toBe("in_process");
    });

    it("reads the deprecated max_retries", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { run_count: 1, empirical_policy: { max_retries: 2 } } });
      expect((await readRun(t.db, "flow", o.runId)).run_count).toBe(2);
      expect((await o.propose({ type: "FAILED" })).state?.name).toBe("AwaitingRetry");
    });

    it("forces the failed task runs of old clients' flow runs to AwaitingRetry", async () => {
      const o = await orchestration(t.db, "flow", { initial: "RUNNING", flowRun: { empirical_policy: { retries: 1 } } });
      const task = await makeTaskRun(t.db, { flow_run_id: o.runId });
      await commitState(t.db, "task", task.id, "RUNNING");
      await commitState(t.db, "task", task.id, "FAILED");
      const result = await o.propose({ type: "FAILED" }, { orchestrationParameters: { "api-version": "0.8.2" } });
      expect(result.state?.name).toBe("AwaitingRetry");
      const stored = await t.db.taskRuns.get(task.id);
      expect(stored?.state_name).toBe("AwaitingRetry");
      expect(stored?.run_count).toBe(0);
    });
  });

  describe("PreserveDeploymentConcurrencyLeaseId", () => {
    it("carries the lease id forward when the proposal has none", async () => {
      const lease = randomUUID();
      const o = await orchestration(t.db, "flow", { initial: "PENDING", initialState: { details: { deployment_concurrency_lease_id: lease } } });
      const result = await o.propose({ type: "PENDING", name: "Submitting", state_details: { deployment_concurrency_lease_id: null } }, { policy: [PreserveDeploymentConcurrencyLeaseId] });
      expect(result.state?.state_details.deployment_concurrency_lease_id).toBe(lease);
      const other = randomUUID();
      const kept = await o.propose({ type: "RUNNING", state_details: { deployment_concurrency_lease_id: other } }, { policy: [PreserveDeploymentConcurrencyLeaseId] });
      expect(kept.state?.state_details.deployment_concurrency_lease_id).toBe(other);
    });
  });

  it("a flow run goes through the whole policy with its bookkeeping", async () => {
    const o = await orchestration(t.db, "flow", { initial: null });
    const scheduledTime = addSeconds(now(), -1);
    for (const [type, name] of [
      ["SCHEDULED", undefined],
      ["PENDING", undefined],
      ["PENDING", "Submitting"],
      ["RUNNING", undefined],
      ["COMPLETED", undefined],
    ] as const) {
      const result = await setFlowRunState(t.db, o.runId, { type, name, state_details: type === "SCHEDULED" ? { scheduled_time: scheduledTime } : {} });
      expect(result.status, `${type} ${name ?? ""}`).toBe("ACCEPT");
      expect(result.written).toBe(true);
    }
    const run = await readRun(t.db, "flow", o.runId);
    expect(run).toMatchObject({ state_type: "COMPLETED", run_count: 1, expected_start_time: scheduledTime, next_scheduled_start_time: null });
    expect((await t.db.flowRuns.readStates(o.runId)).map((s) => s.name)).toEqual(["Scheduled", "Pending", "Submitting", "Running", "Completed"]);
    const states = await t.db.flowRuns.readStates(o.runId);
    expect(states[2]?.state_details.scheduled_time).toBe(scheduledTime);
  });
});
