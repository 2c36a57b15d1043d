import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { addSeconds, type Database, type Deployment, type Flow, InvalidError, now, openDatabase, type ScheduledRunCreate, type Timestamp } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

describeEachBackend("scheduled runs", (t) => {
  let flow: Flow;
  let deployment: Deployment;
  let scheduleId: string;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
    deployment = (
      await t.db.deployments.create({
        name: "nightly",
        flow_id: flow.id,
        schedules: [{ schedule: { interval: 3600, anchor_date: "2024-01-01T00:00:00Z" }, slug: "hourly" }],
      })
    ).row;
    scheduleId = deployment.schedules[0]!.id;
  });

  /** A run as the scheduler builds it, due `at`. */
  const scheduled = (at: Timestamp, fields: Partial<ScheduledRunCreate> = {}): ScheduledRunCreate => ({
    id: randomUUID(),
    flow_id: flow.id,
    deployment_id: deployment.id,
    deployment_version: "1.0",
    work_queue_name: null,
    work_queue_id: null,
    infrastructure_document_id: null,
    parameters: { x: 1 },
    idempotency_key: `scheduled ${deployment.id} ${scheduleId} ${at}`,
    tags: ["auto-scheduled", "nightly"],
    labels: { "prefect.flow.id": flow.id, "prefect.deployment.id": deployment.id },
    auto_scheduled: true,
    created_by: { id: scheduleId, type: "SCHEDULE", display_value: "hourly" },
    scheduled_time: at,
    state: { id: randomUUID(), type: "SCHEDULED", name: "Scheduled", message: "Flow run scheduled", state_details: { scheduled_time: at } },
    ...fields,
  });
  const hoursFromNow = (hours: number) => addSeconds(now(), hours * 3600);

  describe("insert", () => {
    it("inserts the runs with their first state and the state pointer", async () => {
      const at = hoursFromNow(2);
      const run = scheduled(at);
      expect(await t.db.scheduledRuns.insert([run])).toEqual([run.id]);
      const read = await t.db.flowRuns.get(run.id);
      expect(read).toMatchObject({
        flow_id: flow.id,
        deployment_id: deployment.id,
        deployment_version: "1.0",
        parameters: { x: 1 },
        idempotency_key: run.idempotency_key,
        tags: ["auto-scheduled", "nightly"],
        labels: { "prefect.deployment.id": deployment.id },
        auto_scheduled: true,
        created_by: { id: scheduleId, type: "SCHEDULE", display_value: "hourly" },
        expected_start_time: at,
        next_scheduled_start_time: at,
        run_count: 0,
        state_type: "SCHEDULED",
        state_name: "Scheduled",
        state_id: run.state.id,
        state: { id: run.state.id, type: "SCHEDULED", name: "Scheduled", message: "Flow run scheduled", state_details: { scheduled_time: at } },
      });
      expect(read?.name).toMatch(/^[a-z]+-[a-z]+$/);
      expect(read?.empirical_policy).toEqual({});
      expect(await t.db.flowRuns.readStates(run.id)).toHaveLength(1);
    });

    it("skips runs whose (flow, idempotency key) is taken, inserting only the new ones", async () => {
      const first = [scheduled(hoursFromNow(1)), scheduled(hoursFromNow(2))];
      expect((await t.db.scheduledRuns.insert(first)).sort()).toEqual(first.map((r) => r.id).sort());
      // The same dates again (new ids, as a second scheduler makes them), plus one more.
      const again = first.map((r) => scheduled(r.scheduled_time as Timestamp));
      const extra = scheduled(hoursFromNow(3));
      expect(await t.db.scheduledRuns.insert([...again, extra])).toEqual([extra.id]);
      expect(await t.db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deployment.id] } } })).toBe(3);
      for (const run of again) expect(await t.db.flowRuns.get(run.id)).toBeNull();
      expect(await t.db.flowRuns.readStates(extra.id)).toHaveLength(1);
    });

    it("inserts large batches across several statements", async () => {
      const runs = Array.from({ length: 450 }, (_, i) => scheduled(addSeconds(now(), 60 * (i + 1))));
      expect(await t.db.scheduledRuns.insert(runs)).toHaveLength(450);
      expect(await t.db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deployment.id] }, state: { type: { any_: ["SCHEDULED"] } } } })).toBe(450);
      const pointers = await t.db.flowRuns.read({ flow_runs: { deployment_id: { any_: [deployment.id] } }, limit: 450 });
      for (const run of pointers) expect(run.state?.id).toBe(run.state_id);
    });

    it("writes nothing when one run is invalid or refers to a missing flow", async () => {
      await expect(t.db.scheduledRuns.insert([scheduled(hoursFromNow(1)), { ...scheduled(hoursFromNow(2)), idempotency_key: "" }])).rejects.toThrow(InvalidError);
      await expect(t.db.scheduledRuns.insert([scheduled(hoursFromNow(1)), scheduled(hoursFromNow(2), { flow_id: MISSING })])).rejects.toThrow();
      expect(await t.db.flowRuns.count()).toBe(0);
      expect(await t.db.scheduledRuns.insert([])).toEqual([]);
    });

    it("never duplicates a run when several inserts of overlapping batches run at once", async () => {
      // Separate connections where the backend has them (a second pool on the same database).
      const others: Database[] = t.backend === "sqlite-memory" ? [] : [await openDatabase(t.db.config, { migrate: false }), await openDatabase(t.db.config, { migrate: false })];
      try {
        const dbs = [t.db, ...others];
        const dates = Array.from({ length: 60 }, (_, i) => addSeconds(now(), 60 * (i + 1)));
        const batches = Array.from({ length: 6 }, (_, i) => dates.slice(i * 5, i * 5 + 40).map((at) => scheduled(at)));
        const inserted = await Promise.all(batches.map((batch, i) => dbs[i % dbs.length]!.scheduledRuns.insert(batch)));
        const union = new Set(batches.flat().map((r) => r.idempotency_key));
        expect(inserted.flat()).toHaveLength(union.size);
        const runs = await t.db.flowRuns.read({ flow_runs: { deployment_id: { any_: [deployment.id] } }, limit: 1000 });
        expect(runs).toHaveLength(union.size);
        expect(new Set(runs.map((r) => r.idempotency_key)).size).toBe(union.size);
        for (const run of runs) expect(await t.db.flowRuns.readStates(run.id)).toHaveLength(1);
      } finally {
        for (const other of others) await other.close();
      }
    });
  });

  describe("lockDeployments", () => {
    it("runs only in a transaction, where it holds the deployments until the transaction ends", async () => {
      await expect(t.db.scheduledRuns.lockDeployments([deployment.id])).rejects.toThrow(InvalidError);
      const inserted = await t.db.transaction(async (tx) => {
        await tx.scheduledRuns.lockDeployments([deployment.id, MISSING, deployment.id]);
        await tx.scheduledRuns.lockDeployments([]);
        return tx.scheduledRuns.insert([scheduled(hoursFromNow(1))]);
      });
      expect(inserted).toHaveLength(1);
      // Released: the deployment can change again.
      expect((await t.db.deployments.update(deployment.id, { description: "changed" })).description).toBe("changed");
    });
  });

  describe("deployments to schedule", () => {
    const options = { limit: 100, minRuns: 3, minScheduledTimeSeconds: 3600 };

    it("selects deployments with an active schedule short of runs, not paused ones nor inactive schedules", async () => {
      const paused = (await t.db.deployments.create({ name: "paused", flow_id: flow.id, paused: true, schedules: [{ schedule: { cron: "* * * * *" } }] })).row;
      const inactive = (await t.db.deployments.create({ name: "inactive", flow_id: flow.id, schedules: [{ schedule: { cron: "* * * * *" }, active: false }] })).row;
      const none = (await t.db.deployments.create({ name: "none", flow_id: flow.id })).row;
      const selected = await t.db.scheduledRuns.deploymentsToSchedule(options);
      expect(selected).toEqual([deployment.id]);
      expect(selected).not.toContain(paused.id);
      expect(selected).not.toContain(inactive.id);
      expect(selected).not.toContain(none.id);
    });

    it("leaves out a deployment whose schedules have enough runs far enough ahead, per schedule", async () => {
      await t.db.scheduledRuns.insert([scheduled(hoursFromNow(1)), scheduled(hoursFromNow(2)), scheduled(hoursFromNow(3))]);
      expect(await t.db.scheduledRuns.deploymentsToSchedule(options)).toEqual([]);
      // Fewer runs than asked for.
      expect(await t.db.scheduledRuns.deploymentsToSchedule({ ...options, minRuns: 4 })).toEqual([deployment.id]);
      // The last run is due sooner than the minimum scheduled time.
      expect(await t.db.scheduledRuns.deploymentsToSchedule({ ...options, minScheduledTimeSeconds: 4 * 3600 })).toEqual([deployment.id]);
      // Runs of another schedule do not count for this one.
      await t.db.deployments.createSchedules(deployment.id, [{ schedule: { cron: "0 * * * *" }, slug: "other" }]);
      expect(await t.db.scheduledRuns.deploymentsToSchedule(options)).toEqual([deployment.id]);
    });

    it("does not count runs that are due already, not SCHEDULED any more, or not auto-scheduled", async () => {
      const runs = [scheduled(hoursFromNow(1)), scheduled(hoursFromNow(2)), scheduled(hoursFromNow(3), { auto_scheduled: false })];
      await t.db.scheduledRuns.insert(runs);
      expect(await t.db.scheduledRuns.deploymentsToSchedule(options)).toEqual([deployment.id]);
      await t.db.scheduledRuns.insert([scheduled(hoursFromNow(4))]);
      expect(await t.db.scheduledRuns.deploymentsToSchedule(options)).toEqual([]);
      await t.db.flowRuns.setState(runs[0]!.id, { type: "PENDING" });
      expect(await t.db.scheduledRuns.deploymentsToSchedule(options)).toEqual([deployment.id]);
      expect(await t.db.scheduledRuns.deploymentsToSchedule({ ...options, now: hoursFromNow(3.5) })).toEqual([deployment.id]);
    });

    it("pages by id", async () => {
      const more = [];
      for (const name of ["b", "c", "d"]) more.push((await t.db.deployments.create({ name, flow_id: flow.id, schedules: [{ schedule: { cron: "* * * * *" } }] })).row.id);
      const all = [deployment.id, ...more].sort();
      const first = await t.db.scheduledRuns.deploymentsToSchedule({ ...options, limit: 2 });
      expect(first).toEqual(all.slice(0, 2));
      expect(await t.db.scheduledRuns.deploymentsToSchedule({ ...options, limit: 2, afterId: first[1] })).toEqual(all.slice(2));
    });

    it("finds recently updated deployments with an active schedule", async () => {
      await t.db.deployments.create({ name: "unscheduled", flow_id: flow.id });
      await t.db.deployments.create({ name: "paused", flow_id: flow.id, paused: true, schedules: [{ schedule: { cron: "* * * * *" } }] });
      expect(await t.db.scheduledRuns.recentlyUpdatedDeployments({ limit: 10, withinSeconds: 60 })).toEqual([deployment.id]);
      expect(await t.db.scheduledRuns.recentlyUpdatedDeployments({ limit: 10, withinSeconds: 60, now: hoursFromNow(1) })).toEqual([]);
    });
  });
});

describeEachBackend("cancellation queries", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "parent-flow" })).row;
  });

  const flowRun = async (state: ScheduledRunCreate["state"]["type"] | "RUNNING" | "CANCELLED" | "CANCELLING" | "COMPLETED" | null, fields: Record<string, unknown> = {}) =>
    (await t.db.flowRuns.create({ flow_id: flow.id, ...(state ? { state: { type: state } } : {}), ...fields })).row;
  const taskRun = async (flowRunId: string, state: "RUNNING" | "PENDING" | "COMPLETED") =>
    (await t.db.taskRuns.create({ flow_run_id: flowRunId, task_key: "t", dynamic_key: randomUUID(), state: { type: state } })).row;

  it("finds unfinished subflows of cancelled, stateless or missing parents, not deployment runs already cancelling", async () => {
    const cancelledParent = await flowRun("CANCELLED");
    const runningParent = await flowRun("RUNNING");
    const statelessParent = await flowRun(null);
    const under = async (parent: string, state: "RUNNING" | "CANCELLING" | "COMPLETED", fields: Record<string, unknown> = {}) =>
      flowRun(state, { parent_task_run_id: (await taskRun(parent, "RUNNING")).id, ...fields });
    const a = await under(cancelledParent.id, "RUNNING");
    const b = await under(statelessParent.id, "RUNNING");
    await under(runningParent.id, "RUNNING");
    await under(cancelledParent.id, "COMPLETED");
    const deployment = (await t.db.deployments.create({ name: "d", flow_id: flow.id })).row;
    await under(cancelledParent.id, "CANCELLING", { deployment_id: deployment.id });
    const c = await under(cancelledParent.id, "CANCELLING");
    const found = await t.db.cancellations.subflowRunsToCancel({ limit: 10 });
    expect(found.map((r) => r.id).sort()).toEqual([a.id, b.id, c.id].sort());
    expect(found.find((r) => r.id === c.id)).toEqual({ id: c.id, deployment_id: null, state_type: "CANCELLING" });
    expect(await t.db.cancellations.subflowRunsToCancel({ limit: 1 })).toHaveLength(1);
  });

  it("finds unfinished task runs of flow runs cancelled recently", async () => {
    const cancelled = await flowRun("CANCELLED", { end_time: now() });
    const running = await flowRun("RUNNING");
    await taskRun((await flowRun("CANCELLED")).id, "RUNNING");
    const open = await taskRun(cancelled.id, "RUNNING");
    await taskRun(cancelled.id, "COMPLETED");
    await taskRun(running.id, "RUNNING");
    const endedSince = addSeconds(now(), -86_400);
    expect(await t.db.cancellations.taskRunsToCancel({ endedSince, limit: 10 })).toEqual([open.id]);
    expect(await t.db.cancellations.taskRunsToCancel({ endedSince: addSeconds(now(), 60), limit: 10 })).toEqual([]);
  });

  it("finds flow runs cancelling since a time, oldest first", async () => {
    const first = await flowRun("CANCELLING");
    const second = await flowRun("CANCELLING");
    await flowRun("RUNNING");
    const found = await t.db.cancellations.cancellingSince({ before: now(), limit: 10 });
    expect(found.map((r) => r.id)).toEqual([first.id, second.id]);
    expect(found[0]).toEqual({ id: first.id, state_id: first.state_id, state_timestamp: first.state_timestamp });
    expect(await t.db.cancellations.cancellingSince({ before: addSeconds(first.state_timestamp!, -1), limit: 10 })).toEqual([]);
  });
});
