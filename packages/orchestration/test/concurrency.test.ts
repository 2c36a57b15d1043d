/**
 * Deployment and tag concurrency (Prefect's TestFlowConcurrencyLimits and TestTaskConcurrencyLimits),
 * against the concurrency_limit_v2 rows the deployments and tag limits keep.
 */
import { randomUUID } from "node:crypto";
import { type Database, type Deployment, now, secondsBetween, type StateType } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { expect, it } from "vitest";
import {
  ALL_ORCHESTRATION_STATES,
  MarkLateRunsPolicy,
  OrchestrationRule,
  type OrchestrationState,
  ReleaseFlowConcurrencySlots,
  ReleaseTaskConcurrencySlots,
  SecureFlowConcurrencySlots,
  SecureTaskConcurrencySlots,
} from "../src/index.js";
import { commitState, makeDeployment, orchestration } from "./support.js";

const ALL: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"];
const ACTIVE: readonly StateType[] = ["PENDING", "RUNNING", "CANCELLING"];

/** Rejects into a state of another type, never RUNNING or CANCELLING (unless allowed). */
function mutating(allowRunning: boolean) {
  return class StateMutatingRule extends OrchestrationRule {
    static override fromStates = ALL_ORCHESTRATION_STATES;
    static override toStates = ALL_ORCHESTRATION_STATES;
    protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null) {
      const options: StateType[] = allowRunning ? ["RUNNING", "COMPLETED", "FAILED"] : ["COMPLETED", "FAILED", "CRASHED"];
      const type = options.find((s) => s !== initial?.type && s !== proposed?.type)!;
      await this.rejectTransition({ ...proposed!, type }, "gotta fizzle some rules, for fun");
    }
  };
}

class Aborting extends OrchestrationRule {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = ALL_ORCHESTRATION_STATES;
  protected override async beforeTransition() {
    await this.abortTransition("For testing purposes");
  }
}

class Exploding extends OrchestrationRule {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = ALL_ORCHESTRATION_STATES;
  protected override async beforeTransition() {
    throw new Error("boom");
  }
}

async function deploymentSlots(db: Database, deployment: Deployment): Promise<{ limit: number; active: number }> {
  const limit = await db.concurrencyLimits.get(deployment.concurrency_limit_id!);
  return { limit: limit!.limit, active: limit!.active_slots };
}

async function tagSlots(db: Database, tag: string): Promise<number> {
  return (await db.concurrencyLimits.getByName(`tag:${tag}`))!.active_slots;
}

describeEachBackend("deployment concurrency", (t) => {
  const limited = (limit: number, options: Partial<Parameters<typeof makeDeployment>[1]> = {}) => makeDeployment(t.db, { concurrency_limit: limit, ...options });
  const runOf = (deployment: Deployment, initial: StateType | null = "SCHEDULED", extra: Record<string, unknown> = {}) =>
    orchestration(t.db, "flow", { initial, flowRun: { flow_id: deployment.flow_id, deployment_id: deployment.id, ...extra } });

  it("takes a slot entering PENDING and sends the runs over the limit to AwaitingConcurrencySlot", async () => {
    const deployment = await limited(2);
    for (let i = 0; i < 2; i++) {
      const o = await runOf(deployment);
      const result = await o.propose({ type: "PENDING" }, { policy: [SecureFlowConcurrencySlots] });
      expect(result.status).toBe("ACCEPT");
      expect(result.state?.state_details.deployment_concurrency_lease_id).toBeNull();
    }
    expect(await deploymentSlots(t.db, deployment)).toEqual({ limit: 2, active: 2 });
    const third = await runOf(deployment);
    const before = now();
    const result = await third.propose({ type: "PENDING" }, { policy: [SecureFlowConcurrencySlots], settings: { deploymentConcurrencySlotWaitSeconds: 45 } });
    expect(result.status).toBe("REJECT");
    expect(result.details).toEqual({ type: "reject_details", reason: "Deployment concurrency limit reached." });
    expect(result.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingConcurrencySlot" });
    const wait = secondsBetween(result.state!.state_details.scheduled_time!, before);
    expect(wait).toBeGreaterThanOrEqual(45);
    expect(wait).toBeLessThan(50);
    expect(await deploymentSlots(t.db, deployment)).toEqual({ limit: 2, active: 2 });
  });

  it("ignores transitions that are not into PENDING from an inactive state", async () => {
    const deployment = await limited(1);
    const holder = await runOf(deployment);
    await holder.propose({ type: "PENDING" }, { policy: [SecureFlowConcurrencySlots] });
    for (const from of ACTIVE) {
      for (const to of ALL.filter((s) => s !== "PENDING")) {
        const o = await runOf(deployment, from);
        expect((await o.propose({ type: to }, { policy: [SecureFlowConcurrencySlots] })).status, `${from} → ${to}`).toBe("ACCEPT");
      }
    }
    expect((await deploymentSlots(t.db, deployment)).active).toBe(1);
  });

  it("gives the slot back leaving PENDING/RUNNING/CANCELLING for another kind of state, and only then", async () => {
    const deployment = await limited(1);
    const holder = await runOf(deployment);
    await holder.propose({ type: "PENDING" }, { policy: [SecureFlowConcurrencySlots] });
    for (const from of ALL.filter((s) => s !== "RUNNING" && s !== "CANCELLING")) {
      for (const to of ACTIVE) {
        const o = await runOf(deployment, from);
        await o.propose({ type: to }, { policy: [ReleaseFlowConcurrencySlots] });
      }
    }
    expect((await deploymentSlots(t.db, deployment)).active).toBe(1);
    const released = await holder.propose({ type: "COMPLETED" }, { policy: [ReleaseFlowConcurrencySlots] });
    expect(released.status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
  });

  it("a run over the limit gets in once a slot is released (whole policy)", async () => {
    const deployment = await limited(1);
    const first = await runOf(deployment, "SCHEDULED");
    const second = await runOf(deployment, "SCHEDULED");
    expect((await first.propose({ type: "PENDING" })).status).toBe("ACCEPT");
    expect((await second.propose({ type: "PENDING" })).state?.name).toBe("AwaitingConcurrencySlot");
    expect((await first.propose({ type: "RUNNING" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(1);
    expect((await first.propose({ type: "COMPLETED" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
    expect((await second.propose({ type: "PENDING" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(1);
  });

  it("a cancelled run keeps its slot while CANCELLING and gives it back CANCELLED", async () => {
    const deployment = await limited(1);
    const o = await runOf(deployment, "SCHEDULED", { infrastructure_pid: "pid" });
    await o.propose({ type: "PENDING" });
    await o.propose({ type: "RUNNING" });
    expect((await o.propose({ type: "CANCELLING" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(1);
    expect((await o.propose({ type: "CANCELLED" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
  });

  it("forced transitions give the slot back too", async () => {
    const deployment = await limited(1);
    const o = await runOf(deployment);
    await o.propose({ type: "PENDING" });
    await o.propose({ type: "CRASHED" }, { force: true });
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
  });

  it("CANCEL_NEW cancels the runs over the limit; ENQUEUE (the default) reschedules them", async () => {
    const cancelNew = await limited(1, { concurrency_options: { collision_strategy: "CANCEL_NEW" } });
    await (await runOf(cancelNew)).propose({ type: "PENDING" });
    const cancelled = await (await runOf(cancelNew)).propose({ type: "PENDING" });
    expect(cancelled.status).toBe("REJECT");
    expect(cancelled.state).toMatchObject({ type: "CANCELLED", message: "Deployment concurrency limit reached." });

    const enqueue = await limited(1, { concurrency_options: { collision_strategy: "ENQUEUE" } });
    await (await runOf(enqueue)).propose({ type: "PENDING" });
    expect((await (await runOf(enqueue)).propose({ type: "PENDING" })).state?.name).toBe("AwaitingConcurrencySlot");
  });

  it("a limit of 0 aborts; no limit takes no slot; an unknown deployment aborts", async () => {
    const zero = await limited(1);
    await t.db.concurrencyLimits.update(zero.concurrency_limit_id!, { limit: 0 });
    const a = await (await runOf(zero)).propose({ type: "PENDING" });
    expect(a.status).toBe("ABORT");
    expect(a.details).toEqual({ type: "abort_details", reason: "The deployment concurrency limit is 0. The flow will deadlock if submitted again." });

    const unlimited = await makeDeployment(t.db);
    expect((await (await runOf(unlimited)).propose({ type: "PENDING" })).status).toBe("ACCEPT");

    const orphan = await orchestration(t.db, "flow", { initial: "SCHEDULED", flowRun: { deployment_id: randomUUID() } });
    const b = await orphan.propose({ type: "PENDING" });
    expect(b.status).toBe("ABORT");
    expect(b.details).toEqual({ type: "abort_details", reason: "Deployment not found." });
  });

  it("gives the slot back when a later rule rejects the transition", async () => {
    const deployment = await limited(1);
    // PAUSED → PENDING: SecureFlowConcurrencySlots takes a slot, HandleResumingPausedFlows rejects.
    const o = await runOf(deployment, "PAUSED");
    const result = await o.propose({ type: "PENDING" });
    expect(result.status).toBe("REJECT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
  });

  it("workers that manage deployment concurrency themselves take no slot", async () => {
    const deployment = await limited(1);
    const o = await runOf(deployment);
    expect((await o.propose({ type: "PENDING" }, { clientVersion: "3.0.2" })).status).toBe("ACCEPT");
    expect((await deploymentSlots(t.db, deployment)).active).toBe(0);
  });

  it("limits of different deployments are independent", async () => {
    const one = await limited(1);
    const two = await limited(2);
    await (await runOf(one)).propose({ type: "PENDING" });
    await (await runOf(two)).propose({ type: "PENDING" });
    expect((await (await runOf(one)).propose({ type: "PENDING" })).status).toBe("REJECT");
    expect((await (await runOf(two)).propose({ type: "PENDING" })).status).toBe("ACCEPT");
    expect(await deploymentSlots(t.db, one)).toEqual({ limit: 1, active: 1 });
    expect(await deploymentSlots(t.db, two)).toEqual({ limit: 2, active: 2 });
  });

  it("marking a run Late cancels it when its CANCEL_NEW deployment is full (MarkLateRunsPolicy)", async () => {
    const deployment = await limited(1, { concurrency_options: { collision_strategy: "CANCEL_NEW" } });
    const late = await runOf(deployment, "SCHEDULED");
    expect((await late.propose({ type: "SCHEDULED", name: "Late" }, { policy: MarkLateRunsPolicy })).status).toBe("ACCEPT");
    await (await runOf(deployment)).propose({ type: "PENDING" });
    const o = await runOf(deployment, "SCHEDULED");
    const result = await o.propose({ type: "SCHEDULED", name: "Late" }, { policy: MarkLateRunsPolicy });
    expect(result.status).toBe("REJECT");
    expect(result.state).toMatchObject({ type: "CANCELLED", message: "Deployment concurrency limit reached." });
    expect(result.details).toEqual({ type: "reject_details", reason: "Deployment concurrency limit is full and uses the CANCEL_NEW strategy." });
  });
});

describeEachBackend("tag concurrency", (t) => {
  const limit = (tag: string, concurrency_limit: number) => t.db.concurrencyLimits.createTagLimit({ tag, concurrency_limit });
  const policy = [SecureTaskConcurrencySlots, ReleaseTaskConcurrencySlots];
  const task = (tags: string[], initial: StateType = "PENDING") => orchestration(t.db, "task", { initial, taskRun: { tags } });

  it("takes a slot entering RUNNING, waits while the limit is full, and gives it back", async () => {
    await limit("some tag", 1);
    const first = await task(["some tag"]);
    expect((await first.propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "some tag")).toBe(1);
    expect(await t.db.concurrencyLeases.readActiveLeaseIds()).toHaveLength(1);

    const second = await task(["some tag"]);
    const waited = await second.propose({ type: "RUNNING" }, { policy });
    expect(waited.status).toBe("WAIT");
    const details = waited.details.type === "wait_details" ? waited.details : null;
    expect(details?.reason).toBe("Concurrency limit reached for tags: some tag");
    expect(details?.delay_seconds).toBeGreaterThanOrEqual(0);
    expect(details?.delay_seconds).toBeLessThanOrEqual(13);
    expect(await tagSlots(t.db, "some tag")).toBe(1);

    expect((await first.propose({ type: "COMPLETED" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "some tag")).toBe(0);
    expect(await t.db.concurrencyLeases.readActiveLeaseIds()).toHaveLength(0);
    expect((await second.propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "some tag")).toBe(1);
  });

  it("keeps the slot while CANCELLING and gives it back CANCELLED", async () => {
    await limit("some tag", 1);
    const o = await task(["some tag"]);
    await o.propose({ type: "RUNNING" }, { policy });
    expect((await o.propose({ type: "CANCELLING" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "some tag")).toBe(1);
    expect((await o.propose({ type: "CANCELLED" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "some tag")).toBe(0);
  });

  it("aborts when a limit is 0", async () => {
    await limit("the worst limit", 0);
    const o = await task(["the worst limit"]);
    const result = await o.propose({ type: "RUNNING" }, { policy });
    expect(result.status).toBe("ABORT");
    expect(result.details).toEqual({ type: "abort_details", reason: 'The concurrency limit on tag "the worst limit" is 0 and will deadlock if the task tries to run again.' });
  });

  it("gives the slot back when a later rule changes the transition", async () => {
    await limit("a nice little limit", 1);
    const o = await task(["a nice little limit"]);
    const result = await o.propose({ type: "RUNNING" }, { policy: [...policy, mutating(false)] });
    expect(result.status).toBe("REJECT");
    expect(await tagSlots(t.db, "a nice little limit")).toBe(0);
    expect(await t.db.concurrencyLeases.readActiveLeaseIds()).toHaveLength(0);
  });

  it("a run takes one slot however often it proposes RUNNING", async () => {
    await limit("a generous limit", 10);
    const o = await task(["a generous limit"]);
    expect((await o.propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect((await o.propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect((await o.propose({ type: "RUNNING" }, { policy: [SecureTaskConcurrencySlots] })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "a generous limit")).toBe(1);
  });

  it("a limit created while a run ran is not released by that run", async () => {
    await limit("primary tag", 2);
    const first = await task(["primary tag", "secondary tag"]);
    await first.propose({ type: "RUNNING" }, { policy });
    await limit("secondary tag", 1);
    expect(await tagSlots(t.db, "primary tag")).toBe(1);
    expect(await tagSlots(t.db, "secondary tag")).toBe(0);
    const second = await task(["primary tag", "secondary tag"]);
    expect((await second.propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect([await tagSlots(t.db, "primary tag"), await tagSlots(t.db, "secondary tag")]).toEqual([2, 1]);
    await first.propose({ type: "COMPLETED" }, { policy });
    expect([await tagSlots(t.db, "primary tag"), await tagSlots(t.db, "secondary tag")]).toEqual([1, 1]);
    await second.propose({ type: "COMPLETED" }, { policy });
    expect([await tagSlots(t.db, "primary tag"), await tagSlots(t.db, "secondary tag")]).toEqual([0, 0]);
  });

  it("a deleted limit no longer holds runs back", async () => {
    await limit("big limit", 2);
    await limit("small limit", 1);
    await (await task(["big limit", "small limit"])).propose({ type: "RUNNING" }, { policy });
    expect((await (await task(["big limit", "small limit"])).propose({ type: "RUNNING" }, { policy })).status).toBe("WAIT");
    await t.db.concurrencyLimits.deleteTagLimitByTag("small limit");
    expect((await (await task(["big limit", "small limit"])).propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
  });

  it("a raised limit admits more runs; a lowered one admits fewer but lets running ones finish", async () => {
    await limit("changing limit", 1);
    await (await task(["changing limit"])).propose({ type: "RUNNING" }, { policy });
    await limit("changing limit", 2);
    expect((await (await task(["changing limit"])).propose({ type: "RUNNING" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "changing limit")).toBe(2);

    await limit("shrinking limit", 2);
    const running = await task(["shrinking limit"]);
    await running.propose({ type: "RUNNING" }, { policy });
    await limit("shrinking limit", 1);
    expect((await (await task(["shrinking limit"])).propose({ type: "RUNNING" }, { policy })).status).toBe("WAIT");
    await limit("shrinking limit", 0);
    expect((await running.propose({ type: "COMPLETED" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "shrinking limit")).toBe(0);
  });

  for (const order of ["first", "last"] as const) {
    it(`leaving RUNNING gives the slot back even when the transition is rejected (release ${order})`, async () => {
      await limit("small", 1);
      const o = await task(["small"]);
      await o.propose({ type: "RUNNING" }, { policy });
      const reject = order === "first" ? [ReleaseTaskConcurrencySlots, SecureTaskConcurrencySlots, mutating(false)] : [mutating(false), SecureTaskConcurrencySlots, ReleaseTaskConcurrencySlots];
      const result = await o.propose({ type: "PENDING" }, { policy: reject });
      expect(result.status).toBe("REJECT");
      expect(result.state?.type).not.toBe("RUNNING");
      expect(await tagSlots(t.db, "small")).toBe(0);
    });

    it(`a nullified transition gives nothing back (release ${order})`, async () => {
      await limit("small", 1);
      const o = await task(["small"]);
      await o.propose({ type: "RUNNING" }, { policy });
      const abort = order === "first" ? [ReleaseTaskConcurrencySlots, SecureTaskConcurrencySlots, Aborting] : [Aborting, SecureTaskConcurrencySlots, ReleaseTaskConcurrencySlots];
      expect((await o.propose({ type: "COMPLETED" }, { policy: abort })).status).toBe("ABORT");
      expect(await tagSlots(t.db, "small")).toBe(1);
    });
  }

  it("forced transitions out of RUNNING give the slot back", async () => {
    await limit("forced", 1);
    const o = await task(["forced"]);
    await o.propose({ type: "RUNNING" }, { policy });
    await o.propose({ type: "CRASHED" }, { force: true });
    expect(await tagSlots(t.db, "forced")).toBe(0);
  });

  it("the whole CoreTaskPolicy secures and releases tag slots", async () => {
    await limit("etl", 1);
    const first = await task(["etl"]);
    const second = await task(["etl"]);
    expect((await first.propose({ type: "RUNNING" }, {})).status).toBe("ACCEPT");
    expect((await second.propose({ type: "RUNNING" }, { random: () => 0.5 })).status).toBe("WAIT");
    expect((await first.propose({ type: "COMPLETED" }, {})).status).toBe("ACCEPT");
    expect((await second.propose({ type: "RUNNING" }, {})).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "etl")).toBe(1);
  });

  it("a failed transaction takes no slot and leaves no lease behind", async () => {
    await limit("fragile", 1);
    const o = await task(["fragile"]);
    await expect(o.propose({ type: "RUNNING" }, { policy: [SecureTaskConcurrencySlots, ReleaseTaskConcurrencySlots, Exploding] })).rejects.toThrow("boom");
    expect(await tagSlots(t.db, "fragile")).toBe(0);
    expect(await t.db.concurrencyLeases.readActiveLeaseIds()).toHaveLength(0);
    expect((await t.db.taskRuns.get(o.runId))?.state_type).toBe("PENDING");
  });

  it("a failed release keeps the slot and the lease", async () => {
    await limit("sticky", 1);
    const o = await task(["sticky"]);
    await o.propose({ type: "RUNNING" }, { policy });
    class ExplodeAfter extends OrchestrationRule {
      static override fromStates = ALL_ORCHESTRATION_STATES;
      static override toStates = ALL_ORCHESTRATION_STATES;
      protected override async afterTransition() {
        throw new Error("late boom");
      }
    }
    await expect(o.propose({ type: "COMPLETED" }, { policy: [ExplodeAfter, ReleaseTaskConcurrencySlots] })).rejects.toThrow("late boom");
    expect(await tagSlots(t.db, "sticky")).toBe(1);
    const holders = await t.db.concurrencyLeases.listHoldersForLimit((await t.db.concurrencyLimits.getByName("tag:sticky"))!.id);
    expect(holders.map((h) => h.holder)).toEqual([{ type: "task_run", id: o.runId }]);
    expect((await o.propose({ type: "COMPLETED" }, { policy })).status).toBe("ACCEPT");
    expect(await tagSlots(t.db, "sticky")).toBe(0);
  });

  it("a task whose flow run is not running never takes a slot (CoreTaskPolicy)", async () => {
    await limit("guarded", 1);
    const o = await orchestration(t.db, "task", { initial: "PENDING", flowRunState: "COMPLETED", taskRun: { tags: ["guarded"] } });
    expect((await o.propose({ type: "RUNNING" }, {})).status).toBe("ABORT");
    expect(await tagSlots(t.db, "guarded")).toBe(0);
    await commitState(t.db, "flow", o.flowRunId, "RUNNING");
    expect((await o.propose({ type: "RUNNING" }, {})).status).toBe("ACCEPT");
  });
});
