/**
 * The rule engine and the set-state entry points (Prefect's tests/server/orchestration/test_rules.py
 * and tests/server/models/test_flow_run_states.py / test_task_run_states.py).
 */
import { addSeconds, InvalidError, NotFoundError, now, toMicros } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { describe, expect, it } from "vitest";
import {
  ALL_ORCHESTRATION_STATES,
  type OrchestrationContext,
  OrchestrationRule,
  type OrchestrationState,
  setFlowRunState,
  setTaskRunState,
  type TransitionType,
  UniversalTransform,
} from "../src/index.js";
import { commitState, makeFlowRun, makeTaskRun, orchestration, RUN_KINDS, readRun } from "./support.js";

type Mode = "none" | "reject" | "reject-null" | "wait" | "abort" | "rename" | "throw" | "signal";

/** A rule that logs its hooks as `name:hook` and, on entry, does what `mode` says. */
function rule(log: string[], name: string, mode: Mode = "none", options: { to?: ReadonlySet<TransitionType>; from?: ReadonlySet<TransitionType> } = {}) {
  return class extends OrchestrationRule {
    static override fromStates = options.from ?? ALL_ORCHESTRATION_STATES;
    static override toStates = options.to ?? ALL_ORCHESTRATION_STATES;
    static override readonly name = name;

    protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: OrchestrationContext) {
      log.push(`${name}:before`);
      if (mode === "reject") {
        const other = (["COMPLETED", "FAILED", "CRASHED"] as const).find((t) => t !== initial?.type && t !== proposed?.type)!;
        await this.rejectTransition({ ...proposed!, type: other, name: other.toLowerCase() }, "testing my dear watson");
      } else if (mode === "reject-null") await this.rejectTransition(null, "its okay");
      else if (mode === "wait") await this.delayTransition(42, "wait a bit");
      else if (mode === "abort") await this.abortTransition("stop it");
      else if (mode === "rename") await this.renameState("Renamed");
      else if (mode === "throw") throw new Error("a bug in a rule");
      else if (mode === "signal") {
        if (context.parameters["special-signal"] === "abort") await this.abortTransition("wow, aborting this transition");
        this.updateContextParameters("seen-by", name);
      }
    }
    protected override async afterTransition() {
      log.push(`${name}:after`);
    }
    protected override async cleanup() {
      log.push(`${name}:cleanup`);
    }
  };
}

function transform(log: string[], name: string) {
  return class extends UniversalTransform {
    static override readonly name = name;
    protected override async beforeTransition() {
      log.push(`${name}:before:${this.nullifiedTransition() ? "nullified" : "proposed"}`);
    }
    protected override async afterTransition() {
      log.push(`${name}:after`);
    }
  };
}

describeEachBackend("rule engine", (t) => {
  for (const kind of RUN_KINDS) {
    describe(`${kind} runs`, () => {
      it("enters valid rules in order, exits them in reverse, and writes the state", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "a"), rule(log, "b")] });
        expect(log).toEqual(["a:before", "b:before", "b:after", "a:after"]);
        expect(result.status).toBe("ACCEPT");
        expect(result.details).toEqual({ type: "accept_details" });
        expect(result.written).toBe(true);
        expect((await readRun(t.db, kind, o.runId)).state?.id).toBe(result.state?.id);
      });

      it("leaves rules whose FROM/TO states do not match silent", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "wrong-from", "abort", { from: new Set(["COMPLETED"]) }), rule(log, "wrong-to", "abort", { to: new Set(["FAILED"]) })] });
        expect(log).toEqual([]);
        expect(result.status).toBe("ACCEPT");
      });

      it("fizzles earlier rules and invalidates later ones when a rule changes the transition", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "first"), rule(log, "mutator", "reject"), rule(log, "invalidated")] });
        expect(log).toEqual(["first:before", "mutator:before", "mutator:after", "first:cleanup"]);
        expect(result.status).toBe("REJECT");
        expect(result.details).toEqual({ type: "reject_details", reason: "testing my dear watson" });
        expect(result.state?.type).toBe("COMPLETED");
        expect(result.written).toBe(true);
        expect((await readRun(t.db, kind, o.runId)).state_type).toBe("COMPLETED");
      });

      it("rejecting with no state fizzles earlier rules, keeps the current state and writes nothing", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "first"), rule(log, "null-rejector", "reject-null"), rule(log, "later")] });
        expect(log).toEqual(["first:before", "null-rejector:before", "null-rejector:after", "first:cleanup"]);
        expect(result.status).toBe("REJECT");
        expect(result.details).toEqual({ type: "reject_details", reason: "its okay" });
        expect(result.state?.id).toBe(o.initial?.id);
        expect(result.written).toBe(false);
        expect(await (kind === "flow" ? t.db.flowRuns : t.db.taskRuns).readStates(o.runId)).toHaveLength(1);
      });

      it("cannot reject with no state a run that has no state", async () => {
        const o = await orchestration(t.db, kind, { initial: null });
        await expect(o.propose({ type: "RUNNING" }, { policy: [rule([], "null-rejector", "reject-null")] })).rejects.toThrow(/no state/);
        expect((await readRun(t.db, kind, o.runId)).state).toBeNull();
      });

      for (const [mode, status, details] of [
        ["wait", "WAIT", { type: "wait_details", delay_seconds: 42, reason: "wait a bit" }],
        ["abort", "ABORT", { type: "abort_details", reason: "stop it" }],
      ] as const) {
        it(`${mode}: the rule does not fizzle itself, later rules are invalid, nothing is written`, async () => {
          const log: string[] = [];
          const o = await orchestration(t.db, kind, { initial: "PENDING" });
          const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "first"), rule(log, "nullifier", mode), rule(log, "later")] });
          expect(log).toEqual(["first:before", "nullifier:before", "nullifier:after", "first:cleanup"]);
          expect(result.status).toBe(status);
          expect(result.details).toEqual(details);
          expect(result.state?.id).toBe(o.initial?.id);
          expect(result.written).toBe(false);
        });
      }

      it("a rule that moves its own transition outside its TO states stays silent on exit", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "aborter", "abort", { to: new Set(["RUNNING"]) })] });
        expect(log).toEqual(["aborter:before"]);
        expect(result.status).toBe("ABORT");
      });

      it("renaming keeps every rule valid", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING" }, { policy: [rule(log, "first"), rule(log, "renamer", "rename"), rule(log, "later")] });
        expect(log).toEqual(["first:before", "renamer:before", "later:before", "later:after", "renamer:after", "first:after"]);
        expect(result.state?.name).toBe("Renamed");
        expect((await readRun(t.db, kind, o.runId)).state_name).toBe("Renamed");
      });

      it("passes orchestration parameters to rules and between them", async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const accepted = await o.propose({ type: "RUNNING" }, { policy: [rule([], "signal", "signal")] });
        expect(accepted.status).toBe("ACCEPT");
        const aborted = await o.propose({ type: "COMPLETED" }, { policy: [rule([], "signal", "signal")], orchestrationParameters: { "special-signal": "abort" } });
        expect(aborted.status).toBe("ABORT");
        expect(aborted.details).toEqual({ type: "abort_details", reason: "wow, aborting this transition" });
      });

      it("an error in a rule propagates and nothing is written", async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        await expect(o.propose({ type: "RUNNING" }, { policy: [rule([], "broken", "throw")] })).rejects.toThrow("a bug in a rule");
        const run = await readRun(t.db, kind, o.runId);
        expect(run.state_type).toBe("PENDING");
        expect(await (kind === "flow" ? t.db.flowRuns : t.db.taskRuns).readStates(o.runId)).toHaveLength(1);
      });

      it("universal transforms fire after the rules on every transition, nullified ones included", async () => {
        const log: string[] = [];
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        await o.propose({ type: "RUNNING" }, { policy: [transform(log, "u1"), rule(log, "r"), transform(log, "u2")] });
        expect(log).toEqual(["u1:before:proposed", "r:before", "u2:before:proposed", "u2:after", "r:after", "u1:after"]);
        log.length = 0;
        await o.propose({ type: "COMPLETED" }, { policy: [rule(log, "r", "abort"), transform(log, "u")] });
        expect(log).toEqual(["r:before", "u:before:nullified", "u:after", "r:after"]);
      });

      it("an empty policy accepts any transition", async () => {
        const o = await orchestration(t.db, kind, { initial: "SCHEDULED", initialState: { details: { scheduled_time: addSeconds(now(), 30 * 86400) } } });
        const result = await o.propose({ type: "RUNNING" }, { policy: [] });
        expect(result.status).toBe("ACCEPT");
        expect(result.state?.type).toBe("RUNNING");
      });
    });
  }
});

describeEachBackend("set state", (t) => {
  it("throws NotFoundError for an unknown run", async () => {
    await expect(setFlowRunState(t.db, "00000000-0000-4000-8000-000000000000", { type: "CANCELLED" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(setTaskRunState(t.db, "00000000-0000-4000-8000-000000000000", { type: "CANCELLED" })).rejects.toBeInstanceOf(NotFoundError);
  });

  it("takes the run the caller locked in its transaction instead of reading it again, and only that run", async () => {
    const run = await makeFlowRun(t.db, { state: { type: "PENDING" } });
    const other = await makeFlowRun(t.db, { state: { type: "PENDING" } });
    await t.db.transaction(async (tx) => {
      const locked = (await tx.flowRuns.getForUpdate(run.id))!;
      // What the caller holds is what the transition starts from: its run count is the one counted on.
      const result = await setFlowRunState(tx, run.id, { type: "RUNNING" }, { locked: { ...locked, run_count: 4 } });
      expect(result.status).toBe("ACCEPT");
    });
    expect((await t.db.flowRuns.get(run.id))?.run_count).toBe(5);
    // Another run's row is no stand-in: the run is read.
    await t.db.transaction((tx) => setFlowRunState(tx, other.id, { type: "RUNNING" }, { locked: { ...run, run_count: 4 } }));
    const read = await t.db.flowRuns.get(other.id);
    expect(read?.run_count).toBe(1);
    expect(read?.state_type).toBe("RUNNING");
  });

  it("ends the caller's transaction with the state when asked: the caller's writes and the state commit together", async () => {
    const run = await makeFlowRun(t.db, { state: { type: "PENDING" } });
    const result = await t.db.transaction(async (tx) => {
      const locked = (await tx.flowRuns.getForUpdate(run.id))!;
      await tx.flowRuns.patch(run.id, { infrastructure_pid: "host:42" });
      return setFlowRunState(tx, run.id, { type: "RUNNING" }, { locked, endsTransaction: true });
    });
    expect(result.status).toBe("ACCEPT");
    const stored = await t.db.flowRuns.get(run.id);
    expect(stored?.state_type).toBe("RUNNING");
    expect(stored?.infrastructure_pid).toBe("host:42");
    // A failure fails the whole transaction: the caller's own writes are not kept either.
    await expect(
      t.db.transaction(async (tx) => {
        await tx.flowRuns.patch(run.id, { infrastructure_pid: "host:43" });
        return setFlowRunState(tx, run.id, { type: "SLEEPING" }, { endsTransaction: true });
      }),
    ).rejects.toBeInstanceOf(InvalidError);
    expect((await t.db.flowRuns.get(run.id))?.infrastructure_pid).toBe("host:42");
    // Without a transaction to end, the call is refused before anything is read or written.
    await expect(setFlowRunState(t.db, run.id, { type: "COMPLETED" }, { endsTransaction: true })).rejects.toThrow(/endsTransaction/);
    expect((await t.db.flowRuns.get(run.id))?.state_type).toBe("RUNNING");
  });

  it("refuses malformed proposals with InvalidError", async () => {
    const run = await makeFlowRun(t.db);
    await expect(setFlowRunState(t.db, run.id, { type: "SLEEPING" })).rejects.toBeInstanceOf(InvalidError);
    await expect(setFlowRunState(t.db, run.id, { type: "RUNNING", state_details: { transition_id: "not-a-uuid" } })).rejects.toBeInstanceOf(InvalidError);
    await expect(setFlowRunState(t.db, run.id, { type: "RUNNING", state_details: { scheduled_time: "yesterday" } })).rejects.toBeInstanceOf(InvalidError);
    expect((await t.db.flowRuns.get(run.id))?.state).toBeNull();
  });

  it("completes proposals as Prefect's StateCreate does", async () => {
    const run = await makeFlowRun(t.db);
    const before = now();
    const scheduled = await setFlowRunState(t.db, run.id, { type: "SCHEDULED", state_details: { cache_key: "k", ignored_field: 1 } });
    expect(scheduled.state?.name).toBe("Scheduled");
    const details = scheduled.state!.state_details;
    expect(details.scheduled_time! >= before).toBe(true);
    expect(details).toEqual({
      flow_run_id: run.id,
      task_run_id: null,
      child_flow_run_id: null,
      scheduled_time: details.scheduled_time,
      cache_key: "k",
      cache_expiration: null,
      deferred: false,
      untrackable_result: false,
      pause_timeout: null,
      pause_reschedule: false,
      pause_key: null,
      run_input_keyset: null,
      refresh_cache: null,
      retriable: null,
      transition_id: null,
      task_parameters_id: null,
      traceparent: null,
      deployment_concurrency_lease_id: null,
    });
    const stored = await t.db.flowRuns.getState(scheduled.state!.id);
    expect(stored?.state_details).toEqual(details);
    expect(stored?.name).toBe("Scheduled");
  });

  it("fills the state details of task-run states with both runs", async () => {
    const task = await makeTaskRun(t.db);
    await commitState(t.db, "flow", task.flow_run_id!, "RUNNING");
    const result = await setTaskRunState(t.db, task.id, { type: "RUNNING" });
    expect(result.state?.state_details.task_run_id).toBe(task.id);
    expect(result.state?.state_details.flow_run_id).toBe(task.flow_run_id);
  });

  it("does not touch the database when the transition waits", async () => {
    const run = await makeFlowRun(t.db);
    const scheduled = await setFlowRunState(t.db, run.id, { type: "SCHEDULED", state_details: { scheduled_time: addSeconds(now(), 30 * 86400) } });
    const waited = await setFlowRunState(t.db, run.id, { type: "RUNNING" });
    expect(waited.status).toBe("WAIT");
    expect(waited.written).toBe(false);
    expect(waited.state?.id).toBe(scheduled.state?.id);
    const stored = await t.db.flowRuns.get(run.id);
    expect(stored?.state_id).toBe(scheduled.state?.id);
    expect(stored?.run_count).toBe(0);
  });

  describe("result data", () => {
    for (const kind of RUN_KINDS) {
      it(`persisted result data of a ${kind}-run state becomes a result artifact`, async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const result = await o.propose({ type: "RUNNING", data: { value: "some special data", artifact_type: "a special type", artifact_description: "it's so pretty" } });
        expect(result.state?.data).toEqual({ value: "some special data" });
        const repo = kind === "flow" ? t.db.flowRuns : t.db.taskRuns;
        const stored = await repo.getState(result.state!.id);
        expect(stored?.data).toEqual({ value: "some special data" });
        const artifact = await t.db.artifacts.get(stored!.result_artifact_id!);
        expect(artifact?.data).toEqual({ value: "some special data" });
        expect(artifact?.type).toBe("a special type");
        expect(artifact?.description).toBe("it's so pretty");
        expect(artifact?.flow_run_id).toBe(o.flowRunId);
        expect(artifact?.task_run_id).toBe(kind === "task" ? o.runId : null);
      });

      it(`no result artifact for ${kind}-run states without data or with unpersisted data`, async () => {
        const o = await orchestration(t.db, kind, { initial: "PENDING" });
        const repo = kind === "flow" ? t.db.flowRuns : t.db.taskRuns;
        const running = await o.propose({ type: "RUNNING" });
        expect((await repo.getState(running.state!.id))?.result_artifact_id).toBeNull();
        const completed = await o.propose({ type: "COMPLETED", data: { type: "unpersisted" } });
        expect(completed.state?.data).toEqual({ type: "unpersisted" });
        const stored = await repo.getState(completed.state!.id);
        expect(stored?.result_artifact_id).toBeNull();
        expect(stored?.data).toBeNull();
        expect(await t.db.artifacts.count({})).toBe(0);
      });
    }

    it("aborts when the result artifact cannot be stored", async () => {
      const o = await orchestration(t.db, "flow", { initial: "PENDING" });
      const result = await o.propose({ type: "RUNNING", data: { value: 1, artifact_key: "Not A Valid Key" } });
      expect(result.status).toBe("ABORT");
      expect(result.details.type === "abort_details" && result.details.reason).toMatch(/^Error validating state: InvalidError/);
      expect(result.state).toBeNull();
      expect(result.written).toBe(false);
      expect((await t.db.flowRuns.get(o.runId))?.state_type).toBe("PENDING");
      expect(await t.db.artifacts.count({})).toBe(0);
    });
  });

  describe("unique state timestamps", () => {
    it("moves repeated timestamps on by a microsecond", async () => {
      const run = await makeFlowRun(t.db);
      const collision = now();
      const results = [];
      for (const type of ["PENDING", "RUNNING", "COMPLETED"] as const) results.push(await setFlowRunState(t.db, run.id, { type, timestamp: collision }));
      expect(results.map((r) => r.status)).toEqual(["ACCEPT", "ACCEPT", "ACCEPT"]);
      const micros = results.map((r) => toMicros(r.state!.timestamp) - toMicros(collision));
      expect(micros).toEqual([0, 1, 2]);
      const stored = await t.db.flowRuns.get(run.id);
      expect(stored?.state_timestamp).toBe(results[2]!.state!.timestamp);
      expect(stored?.start_time).toBe(results[1]!.state!.timestamp);
      expect(stored?.end_time).toBe(results[2]!.state!.timestamp);
      expect(stored?.total_run_time).toBeCloseTo(0.000001, 9);
    });

    it("uses the nearest free timestamp after a backdated collision", async () => {
      const run = await makeFlowRun(t.db);
      const collision = now();
      const later = addSeconds(collision, 10);
      const results = [];
      for (const timestamp of [collision, later, collision]) results.push(await setFlowRunState(t.db, run.id, { type: "PENDING", name: `Pending ${results.length}`, timestamp }, { force: true }));
      expect(results.map((r) => toMicros(r.state!.timestamp) - toMicros(collision))).toEqual([0, 10_000_000, 1]);
      const states = await t.db.flowRuns.readStates(run.id);
      expect(states.map((s) => toMicros(s.timestamp) - toMicros(collision))).toEqual([0, 1, 10_000_000]);
      expect((await t.db.flowRuns.get(run.id))?.state_timestamp).toBe(results[2]!.state!.timestamp);
    });

    it("keeps a backdated RUNNING state's time as the start time", async () => {
      const run = await makeFlowRun(t.db);
      const collision = now();
      const backdated = addSeconds(collision, -10);
      await setFlowRunState(t.db, run.id, { type: "PENDING", timestamp: collision });
      const running = await setFlowRunState(t.db, run.id, { type: "RUNNING", timestamp: backdated });
      const completed = await setFlowRunState(t.db, run.id, { type: "COMPLETED", timestamp: collision });
      expect(running.state?.timestamp).toBe(backdated);
      expect(toMicros(completed.state!.timestamp) - toMicros(collision)).toBe(1);
      const stored = await t.db.flowRuns.get(run.id);
      expect(stored?.start_time).toBe(backdated);
      expect(stored?.end_time).toBe(completed.state?.timestamp);
    });
  });
});
