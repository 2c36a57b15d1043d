import { beforeEach, describe, expect, it } from "vitest";
import { AlreadyExistsError, type Deployment, type Flow, type FlowRunCreate, InvalidError, NotFoundError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const PAST = "2020-01-01T00:00:00.000000Z";
const FUTURE = "2999-01-01T00:00:00.000000Z";

describeEachBackend("deployment schedules", (t) => {
  let flow: Flow;
  let deployment: Deployment;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
    deployment = (await t.db.deployments.create({ name: "nightly", flow_id: flow.id })).row;
  });

  describe("create and read", () => {
    it("creates interval, cron and rrule schedules with Prefect's defaults", async () => {
      const created = await t.db.deployments.createSchedules(deployment.id, [
        { schedule: { interval: 3600, anchor_date: "2024-01-01T09:00:00+01:00", timezone: "Europe/Paris" }, slug: "hourly" },
        { schedule: { cron: "0 9 * * mon-fri", timezone: "America/New_York", day_or: false }, active: false, max_scheduled_runs: 5, parameters: { n: 1 } },
        { schedule: { rrule: "DTSTART:20200101T000000\nFREQ=WEEKLY;BYDAY=MO" } },
      ]);
      expect(created).toMatchObject([
        {
          deployment_id: deployment.id,
          slug: "hourly",
          active: true,
          max_scheduled_runs: null,
          parameters: {},
          schedule: { interval: 3600, anchor_date: "2024-01-01T08:00:00.000000Z", timezone: "Europe/Paris" },
        },
        { slug: null, active: false, max_scheduled_runs: 5, parameters: { n: 1 }, schedule: { cron: "0 9 * * mon-fri", timezone: "America/New_York", day_or: false } },
        { schedule: { rrule: "DTSTART:20200101T000000\nFREQ=WEEKLY;BYDAY=MO", timezone: "UTC" } },
      ]);
      const read = await t.db.deployments.readSchedules(deployment.id);
      expect(read).toHaveLength(3);
      expect(read.map((s) => s.id).sort()).toEqual(created.map((s) => s.id).sort());
      for (const s of read) expect(s).toEqual(created.find((c) => c.id === s.id));
      expect((await t.db.deployments.get(deployment.id))?.schedules).toEqual(read);
    });

    it("defaults an interval's anchor to now and its zone to UTC, and a cron's zone to none", async () => {
      const [interval, cron] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 } }, { schedule: { cron: "* * * * *" } }]);
      expect(interval?.schedule).toMatchObject({ interval: 60, timezone: "UTC" });
      expect(interval && "anchor_date" in interval.schedule && interval.schedule.anchor_date <= interval.created).toBe(true);
      expect(cron?.schedule).toEqual({ cron: "* * * * *", timezone: null, day_or: true });
    });

    it("reads newest first and filters by active", async () => {
      const [first] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "first" }]);
      await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 120 }, slug: "second", active: false }]);
      expect((await t.db.deployments.readSchedules(deployment.id)).map((s) => s.slug)).toEqual(["second", "first"]);
      await t.db.deployments.updateSchedule(deployment.id, first?.id ?? MISSING, { parameters: { touched: true } });
      expect((await t.db.deployments.readSchedules(deployment.id)).map((s) => s.slug)).toEqual(["first", "second"]);
      expect((await t.db.deployments.readSchedules(deployment.id, { active: { eq_: true } })).map((s) => s.slug)).toEqual(["first"]);
      expect((await t.db.deployments.readSchedules(deployment.id, { active: { eq_: false } })).map((s) => s.slug)).toEqual(["second"]);
      await expect(t.db.deployments.readSchedules(deployment.id, { enabled: true } as never)).rejects.toBeInstanceOf(InvalidError);
    });

    it("refuses a slug the deployment already uses, and creates nothing of that batch", async () => {
      await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "taken" }]);
      await expect(t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "new" }, { schedule: { interval: 60 }, slug: "taken" }])).rejects.toBeInstanceOf(
        AlreadyExistsError,
      );
      await expect(t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "dup" }, { schedule: { interval: 60 }, slug: "dup" }])).rejects.toThrow(
        /slugs must be unique/,
      );
      expect((await t.db.deployments.readSchedules(deployment.id)).map((s) => s.slug)).toEqual(["taken"]);
    });

    it("allows the same slug in other deployments and any number of schedules without a slug", async () => {
      const other = (await t.db.deployments.create({ name: "other", flow_id: flow.id })).row;
      await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "s" }, { schedule: { interval: 60 } }, { schedule: { interval: 90 } }]);
      await t.db.deployments.createSchedules(other.id, [{ schedule: { interval: 60 }, slug: "s" }]);
      expect(await t.db.deployments.readSchedules(deployment.id)).toHaveLength(3);
      expect(await t.db.deployments.readSchedules(other.id)).toHaveLength(1);
    });

    it("refuses definitions of the wrong shape, naming the problem (their cron, rrule and time zone are the scheduler's to check)", async () => {
      const refused = async (schedule: unknown, problem: RegExp) => {
        const attempt = t.db.deployments.createSchedules(deployment.id, [{ schedule: schedule as { interval: number } }]);
        await expect(attempt).rejects.toBeInstanceOf(InvalidError);
        await expect(t.db.deployments.createSchedules(deployment.id, [{ schedule: schedule as { interval: number } }])).rejects.toThrow(problem);
      };
      await refused({ interval: 0 }, /interval must be positive/);
      await refused({ interval: -60 }, /interval must be positive/);
      await refused({ cron: 5 }, /Invalid/);
      await refused({ rrule: "FREQ=DAILY", day_or: true }, /Invalid/);
      await refused({ every: "day" }, /interval .* cron .* rrule/);
      await refused({ interval: 60, cron: "* * * * *" }, /Invalid/);
      await expect(t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, max_scheduled_runs: 0 }])).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.deployments.readSchedules(deployment.id)).toEqual([]);
    });

    it("throws NotFoundError for an unknown deployment and InvalidError for a malformed id", async () => {
      await expect(t.db.deployments.createSchedules(MISSING, [{ schedule: { interval: 60 } }])).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.readSchedules(MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.readSchedules("bad")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("update and delete", () => {
    it("changes the fields given and leaves the others", async () => {
      const [s] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "a", parameters: { x: 1 }, max_scheduled_runs: 3 }]);
      const id = s?.id ?? MISSING;
      const updated = await t.db.deployments.updateSchedule(deployment.id, id, { active: false, schedule: { cron: "0 0 * * *", timezone: "UTC" } });
      expect(updated).toMatchObject({ id, slug: "a", active: false, parameters: { x: 1 }, max_scheduled_runs: 3, schedule: { cron: "0 0 * * *", timezone: "UTC", day_or: true } });
      expect(updated.updated > (s?.updated ?? "")).toBe(true);
      const renamed = await t.db.deployments.updateSchedule(deployment.id, id, { slug: "b", max_scheduled_runs: null, schedule: { rrule: "DTSTART:20200101T000000\nFREQ=HOURLY" } });
      expect(renamed).toMatchObject({ slug: "b", max_scheduled_runs: null, schedule: { rrule: "DTSTART:20200101T000000\nFREQ=HOURLY" } });
      expect(await t.db.deployments.readSchedules(deployment.id)).toEqual([renamed]);
    });

    it("refuses a slug in use, a definition of the wrong shape, and schedules of other deployments", async () => {
      const other = (await t.db.deployments.create({ name: "other", flow_id: flow.id })).row;
      const [a, b] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 }, slug: "a" }, { schedule: { interval: 60 }, slug: "b" }]);
      const [elsewhere] = await t.db.deployments.createSchedules(other.id, [{ schedule: { interval: 60 } }]);
      await expect(t.db.deployments.updateSchedule(deployment.id, b?.id ?? MISSING, { slug: "a" })).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(t.db.deployments.updateSchedule(deployment.id, a?.id ?? MISSING, { schedule: { interval: 0 } })).rejects.toThrow(/interval must be positive/);
      await expect(t.db.deployments.updateSchedule(deployment.id, elsewhere?.id ?? MISSING, { active: false })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.updateSchedule(deployment.id, MISSING, { active: false })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.updateSchedule(deployment.id, "bad", { active: false })).rejects.toBeInstanceOf(InvalidError);
      expect((await t.db.deployments.readSchedules(other.id))[0]?.active).toBe(true);
    });

    it("deletes one schedule of the deployment", async () => {
      const other = (await t.db.deployments.create({ name: "other", flow_id: flow.id })).row;
      const [a, b] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 } }, { schedule: { interval: 90 } }]);
      const [elsewhere] = await t.db.deployments.createSchedules(other.id, [{ schedule: { interval: 60 } }]);
      await t.db.deployments.deleteSchedule(deployment.id, a?.id ?? MISSING);
      expect((await t.db.deployments.readSchedules(deployment.id)).map((s) => s.id)).toEqual([b?.id]);
      await expect(t.db.deployments.deleteSchedule(deployment.id, a?.id ?? MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.deleteSchedule(deployment.id, elsewhere?.id ?? MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.deleteSchedule("bad", MISSING)).rejects.toBeInstanceOf(InvalidError);
    });

    it("deletes all schedules of the deployment", async () => {
      const other = (await t.db.deployments.create({ name: "other", flow_id: flow.id })).row;
      await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 } }, { schedule: { interval: 90 } }]);
      await t.db.deployments.createSchedules(other.id, [{ schedule: { interval: 60 } }]);
      expect(await t.db.deployments.deleteSchedules(deployment.id)).toBe(2);
      expect(await t.db.deployments.readSchedules(deployment.id)).toEqual([]);
      expect(await t.db.deployments.readSchedules(other.id)).toHaveLength(1);
      expect(await t.db.deployments.deleteSchedules(deployment.id)).toBe(0);
    });
  });

  describe("deleteFutureAutoScheduledRuns", () => {
    const run = async (input: Partial<FlowRunCreate> = {}) =>
      (
        await t.db.flowRuns.create({
          flow_id: flow.id,
          deployment_id: deployment.id,
          auto_scheduled: true,
          state: { type: "SCHEDULED" },
          next_scheduled_start_time: FUTURE,
          expected_start_time: FUTURE,
          ...input,
        })
      ).row;
    const alive = async (ids: string[]) => (await Promise.all(ids.map((id) => t.db.flowRuns.get(id)))).map((r) => r !== null);

    it("deletes the auto-scheduled runs still scheduled in the future, and nothing else", async () => {
      const other = (await t.db.deployments.create({ name: "other", flow_id: flow.id })).row;
      const target = await run();
      const second = await run({ state: { type: "SCHEDULED", name: "Late" } });
      const due = await run({ next_scheduled_start_time: PAST });
      const manual = await run({ auto_scheduled: false });
      const awaiting = await run({ state: { type: "SCHEDULED", name: "AwaitingConcurrencySlot" } });
      const rerun = await run({ run_count: 1 });
      const pending = await run({ state: { type: "PENDING" } });
      const elsewhere = await run({ deployment_id: other.id });
      expect(await t.db.deployments.deleteFutureAutoScheduledRuns(deployment.id)).toBe(2);
      expect(await alive([target.id, second.id, due.id, manual.id, awaiting.id, rerun.id, pending.id, elsewhere.id])).toEqual([
        false,
        false,
        true,
        true,
        true,
        true,
        true,
        true,
      ]);
    });

    it("also deletes due runs when not limited to future ones", async () => {
      const due = await run({ next_scheduled_start_time: PAST });
      const manual = await run({ auto_scheduled: false, next_scheduled_start_time: PAST });
      expect(await t.db.deployments.deleteFutureAutoScheduledRuns(deployment.id, { futureOnly: false })).toBe(1);
      expect(await alive([due.id, manual.id])).toEqual([false, true]);
    });

    it("limits the deletion to runs created by the given schedules", async () => {
      const [a, b] = await t.db.deployments.createSchedules(deployment.id, [{ schedule: { interval: 60 } }, { schedule: { interval: 90 } }]);
      const fromA = await run({ created_by: { id: a?.id, type: "SCHEDULE", display_value: "IntervalSchedule" } });
      const fromB = await run({ created_by: { id: b?.id, type: "SCHEDULE", display_value: "IntervalSchedule" } });
      const byUser = await run({ created_by: { id: a?.id, type: "USER", display_value: "me" } });
      const unknown = await run();
      expect(await t.db.deployments.deleteFutureAutoScheduledRuns(deployment.id, { scheduleIds: [a?.id ?? MISSING] })).toBe(1);
      expect(await alive([fromA.id, fromB.id, byUser.id, unknown.id])).toEqual([false, true, true, true]);
      expect(await t.db.deployments.deleteFutureAutoScheduledRuns(deployment.id, { scheduleIds: [] })).toBe(0);
    });

    it("refuses malformed ids", async () => {
      await expect(t.db.deployments.deleteFutureAutoScheduledRuns("bad")).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.deleteFutureAutoScheduledRuns(deployment.id, { scheduleIds: ["bad"] })).rejects.toBeInstanceOf(InvalidError);
    });
  });
});
