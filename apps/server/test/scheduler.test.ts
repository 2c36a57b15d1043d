/**
 * The scheduler service (Prefect's services/scheduler.py): the runs it gives the schedules of
 * deployments created through the API, the window it fills, time zones, idempotency (passes at once,
 * from several connections, across a restart), how schedule changes and pauses interact with it, and
 * its loops running inside a real server.
 */
import { type Database, openDatabase, type Repositories, toMicros } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { AppContext } from "../src/context.js";
import { startServer as startRealServer } from "../src/server.js";
import { scheduleDeploymentsShortOfRuns, scheduleRecentDeployments, scheduleRuns } from "../src/features/schedules/service.js";
import { loadServerSettings, type SchedulerSettings } from "../src/settings.js";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

const HOUR = 3600;
const DAY = 86_400;

// biome-ignore lint/suspicious/noExplicitAny: API responses, checked against Prefect's schema by the test server
type Run = any;


async function flow(server: TestServer, name = "etl"): Promise<string> {
  return (await server.request("POST", "/flows/", { name })).body.id;
}

async function deploy(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/deployments/", body);
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

/** The deployment's runs, by expected start time. */
async function runsOf(server: TestServer, deploymentId: string): Promise<Run[]> {
  const response = await server.request("POST", "/flow_runs/filter", { flow_runs: { deployment_id: { any_: [deploymentId] } }, sort: "EXPECTED_START_TIME_ASC", limit: 200 });
  expect(response.status).toBe(200);
  return response.body;
}

const countRuns = (db: Database, deploymentId: string) => db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deploymentId] } } });

/** A whole second `seconds` from now, as an ISO string. */
const wholeSecondFromNow = (seconds: number) => new Date(Math.ceil(Date.now() / 1000) * 1000 + seconds * 1000).toISOString();

const plusSeconds = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000).toISOString();

/** Python's `str()` of a UTC datetime, as Prefect writes it into idempotency keys. */
const pythonUtc = (iso: string) => `${iso.slice(0, 19).replace("T", " ")}+00:00`;

/** The wall-clock date and time of `iso` in `timeZone`: `YYYY-MM-DD HH:MM:SS`. */
function wallClock(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const part = (type: string) => parts.find((p) => p.type === type)?.value;
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}:${part("second")}`;
}

const seconds = (iso: string) => toMicros(iso) / 1_000_000;

/** The server's context with other scheduler settings. */
function withScheduler(context: AppContext, patch: Partial<SchedulerSettings>): AppContext {
  const { settings } = context;
  return { ...context, settings: { ...settings, services: { ...settings.services, scheduler: { ...settings.services.scheduler, ...patch } } } };
}

describeApi("scheduler: the runs of a deployment's schedules", (t) => {
  it("gives each active schedule its next runs with Prefect's fields, once", async () => {
    const f = await flow(t.server);
    const anchor = wholeSecondFromNow(600);
    const d = await deploy(t.server, {
      name: "d",
      flow_id: f,
      version: "7",
      tags: ["dep", "nightly"],
      labels: { team: "data" },
      parameters: { a: 1, b: 2 },
      enforce_parameter_schema: false,
      schedules: [
        { schedule: { interval: HOUR, anchor_date: anchor }, slug: "hourly", parameters: { b: 3, c: 4 } },
        { schedule: { interval: DAY, anchor_date: anchor } },
      ],
    });
    const hourly = d.schedules.find((s: Run) => s.slug === "hourly");
    const daily = d.schedules.find((s: Run) => s.slug === null);
    expect(await runsOf(t.server, d.id)).toEqual([]);

    const before = Date.now() / 1000;
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(6);
    const runs = await runsOf(t.server, d.id);
    expect(runs).toHaveLength(6);
    const of = (schedule: { id: string }) => runs.filter((r: Run) => r.created_by?.id === schedule.id);

    // Hourly: Prefect's minimum of 3 runs reaches an hour ahead; daily: 3 runs, the minimum.
    const hourlyDates = [anchor, plusSeconds(anchor, HOUR), plusSeconds(anchor, 2 * HOUR)];
    const dailyDates = [anchor, plusSeconds(anchor, DAY), plusSeconds(anchor, 2 * DAY)];
    for (const [schedule, dates, parameters, display] of [
      [hourly, hourlyDates, { a: 1, b: 3, c: 4 }, "hourly"],
      [daily, dailyDates, { a: 1, b: 2 }, "IntervalSchedule"],
    ] as const) {
      const mine = of(schedule);
      expect(mine.map((r: Run) => seconds(r.expected_start_time))).toEqual(dates.map(seconds));
      for (const [i, run] of mine.entries()) {
        const date = dates[i] as string;
        expect(run).toMatchObject({
          flow_id: f,
          deployment_id: d.id,
          deployment_version: "7",
          work_queue_name: d.work_queue_name,
          auto_scheduled: true,
          parameters,
          tags: ["auto-scheduled", "dep", "nightly"],
          labels: { team: "data", "prefect.flow.id": f, "prefect.deployment.id": d.id },
          idempotency_key: `scheduled ${d.id} ${schedule.id} ${pythonUtc(date)}`,
          created_by: { id: schedule.id, type: "SCHEDULE", display_value: display },
          state_type: "SCHEDULED",
          state_name: "Scheduled",
          state: { type: "SCHEDULED", name: "Scheduled", message: "Flow run scheduled" },
          run_count: 0,
        });
        expect(seconds(run.next_scheduled_start_time)).toBe(seconds(date));
        expect(seconds(run.state.state_details.scheduled_time)).toBe(seconds(date));
        expect(seconds(run.expected_start_time)).toBeGreaterThan(before);
      }
    }
    expect(new Set(runs.map((r: Run) => r.name)).size).toBe(6);

    // The schedules have their runs: neither loop adds any, and asking again inserts nothing.
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(0);
    expect(await scheduleRecentDeployments(t.server.context)).toBe(0);
    expect(await scheduleRuns(t.server.db, [d.id])).toBe(0);
    expect((await runsOf(t.server, d.id)).map((r: Run) => r.id).sort()).toEqual(runs.map((r: Run) => r.id).sort());
  });

  it("fills Prefect's window: at least the min runs and min time, at most the max runs and max time", async () => {
    const f = await flow(t.server);
    const anchor = wholeSecondFromNow(120);
    const make = async (name: string, interval: number) => (await deploy(t.server, { name, flow_id: f, schedules: [{ schedule: { interval, anchor_date: anchor } }] })).id;
    const everyMinute = await make("every-minute", 60);
    const every60Days = await make("every-60-days", 60 * DAY);
    const start = Date.now() / 1000;
    await scheduleDeploymentsShortOfRuns(t.server.context);
    const end = Date.now() / 1000;

    // Every minute: runs until one is at least an hour ahead (Prefect's min scheduled time).
    const minutes = (await runsOf(t.server, everyMinute)).map((r: Run) => seconds(r.expected_start_time));
    expect(minutes.length).toBeGreaterThanOrEqual(60);
    expect(minutes.length).toBeLessThanOrEqual(62);
    expect(minutes.at(-1)).toBeGreaterThanOrEqual(start + HOUR);
    expect(minutes.at(-2)).toBeLessThan(end + HOUR);
    expect(minutes.slice(1).map((s, i) => s - (minutes[i] as number))).toEqual(Array(minutes.length - 1).fill(60));
    // Every 60 days: only the runs within the 100 days ahead (Prefect's max scheduled time), fewer than the min runs.
    expect((await runsOf(t.server, every60Days)).map((r: Run) => seconds(r.expected_start_time))).toEqual([seconds(anchor), seconds(anchor) + 60 * DAY]);

    // Other settings: the max runs caps, the min runs and min time extend.
    const capped = await make("capped", 60);
    await scheduleDeploymentsShortOfRuns(withScheduler(t.server.context, { maxRuns: 10 }));
    expect(await countRuns(t.server.db, capped)).toBe(10);
    const daily = await make("daily", DAY);
    await scheduleDeploymentsShortOfRuns(withScheduler(t.server.context, { minRuns: 5 }));
    expect(await countRuns(t.server.db, daily)).toBe(5);
    const hourly = await make("hourly", HOUR);
    await scheduleDeploymentsShortOfRuns(withScheduler(t.server.context, { minScheduledTimeSeconds: 10 * HOUR }));
    const hours = (await runsOf(t.server, hourly)).map((r: Run) => seconds(r.expected_start_time));
    expect(hours).toHaveLength(11);
    expect(hours.at(-1)).toBe(seconds(anchor) + 10 * HOUR);
  });

  it("keeps a cron schedule at its local time across daylight saving changes", async () => {
    const f = await flow(t.server);
    const d = await deploy(t.server, { name: "nine", flow_id: f, schedules: [{ schedule: { cron: "0 9 * * *", timezone: "America/New_York" } }] });
    const [schedule] = d.schedules;

    // Around the changes of 2024 (March 10 and November 3), through Prefect's own scheduling of a window.
    await scheduleRuns(t.server.db, [d.id], { startTime: "2024-03-08T00:00:00Z", endTime: "2024-03-12T00:00:00Z", minRuns: 10, maxRuns: 10 });
    await scheduleRuns(t.server.db, [d.id], { startTime: "2024-11-02T00:00:00Z", endTime: "2024-11-05T00:00:00Z", minRuns: 10, maxRuns: 10 });
    const past = await runsOf(t.server, d.id);
    expect(past.map((r: Run) => seconds(r.expected_start_time))).toEqual(
      [
        "2024-03-08T14:00:00Z",
        "2024-03-09T14:00:00Z",
        "2024-03-10T13:00:00Z",
        "2024-03-11T13:00:00Z",
        "2024-11-02T13:00:00Z",
        "2024-11-03T14:00:00Z",
        "2024-11-04T14:00:00Z",
      ].map(seconds),
    );
    expect(past.map((r: Run) => r.idempotency_key.slice(`scheduled ${d.id} ${schedule.id} `.length))).toEqual([
      "2024-03-08 09:00:00-05:00",
      "2024-03-09 09:00:00-05:00",
      "2024-03-10 09:00:00-04:00",
      "2024-03-11 09:00:00-04:00",
      "2024-11-02 09:00:00-04:00",
      "2024-11-03 09:00:00-05:00",
      "2024-11-04 09:00:00-05:00",
    ]);

    // The service itself, a year ahead (which crosses both changes whenever the test runs).
    const yearAhead = withScheduler(t.server.context, { minRuns: 366, maxRuns: 400, maxScheduledTimeSeconds: 400 * DAY });
    expect(await scheduleDeploymentsShortOfRuns(yearAhead)).toBe(366);
    const future = (await t.server.db.flowRuns.read({ flow_runs: { deployment_id: { any_: [d.id] }, expected_start_time: { after_: new Date().toISOString() } }, sort: "EXPECTED_START_TIME_ASC" }))
      .map((r) => r.expected_start_time as string);
    expect(future).toHaveLength(366);
    expect(new Set(future.map((iso) => wallClock(iso, "America/New_York").slice(11)))).toEqual(new Set(["09:00:00"]));
    expect(new Set(future.map((iso) => new Date(iso).getUTCHours()))).toEqual(new Set([13, 14]));
    const days = future.map((iso) => wallClock(iso, "America/New_York").slice(0, 10));
    expect(new Set(days).size).toBe(366);
    expect(days.slice(1).every((day, i) => Date.parse(`${day}T00:00:00Z`) - Date.parse(`${days[i]}T00:00:00Z`) === DAY * 1000)).toBe(true);
  });

  it("follows rrule schedules, with and without DTSTART and a time zone", async () => {
    const f = await flow(t.server);
    const berlin = await deploy(t.server, {
      name: "berlin",
      flow_id: f,
      schedules: [{ schedule: { rrule: "FREQ=DAILY;BYHOUR=9;BYMINUTE=30;BYSECOND=0", timezone: "Europe/Berlin" } }],
    });
    const twiceDaily = await deploy(t.server, { name: "utc", flow_id: f, schedules: [{ schedule: { rrule: "DTSTART:20200101T063000\nRRULE:FREQ=HOURLY;INTERVAL=12" } }] });
    const weekly = await deploy(t.server, {
      name: "weekly",
      flow_id: f,
      schedules: [{ schedule: { rrule: "DTSTART:20240101T170000\nRRULE:FREQ=WEEKLY;BYDAY=MO,TH", timezone: "America/Los_Angeles" } }],
    });
    const start = Date.now() / 1000;
    await scheduleDeploymentsShortOfRuns(t.server.context);

    const berlinRuns = (await runsOf(t.server, berlin.id)).map((r: Run) => r.expected_start_time as string);
    expect(berlinRuns).toHaveLength(3);
    expect(berlinRuns.map((iso) => wallClock(iso, "Europe/Berlin").slice(11))).toEqual(["09:30:00", "09:30:00", "09:30:00"]);
    expect(seconds(berlinRuns[0] as string)).toBeGreaterThanOrEqual(start);
    expect(seconds(berlinRuns[0] as string)).toBeLessThan(start + DAY + HOUR);

    const utcRuns = (await runsOf(t.server, twiceDaily.id)).map((r: Run) => r.expected_start_time as string);
    expect(utcRuns).toHaveLength(3);
    expect(new Set(utcRuns.map((iso) => iso.slice(11, 19)))).toEqual(new Set(["06:30:00", "18:30:00"]));
    expect(utcRuns.slice(1).map((iso, i) => seconds(iso) - seconds(utcRuns[i] as string))).toEqual([12 * HOUR, 12 * HOUR]);

    const weeklyRuns = (await runsOf(t.server, weekly.id)).map((r: Run) => r.expected_start_time as string);
    expect(weeklyRuns).toHaveLength(3);
    for (const iso of weeklyRuns) {
      expect(wallClock(iso, "America/Los_Angeles").slice(11)).toBe("17:00:00");
      expect(["Mon", "Thu"]).toContain(new Intl.DateTimeFormat("en-US", { timeZone: "America/Los_Angeles", weekday: "short" }).format(new Date(iso)));
    }
    const [schedule] = weekly.schedules;
    const [first] = await runsOf(t.server, weekly.id);
    expect(first.idempotency_key).toMatch(new RegExp(`^scheduled ${weekly.id} ${schedule.id} \\d{4}-\\d{2}-\\d{2} 17:00:00-0[78]:00$`));
  });

  it("gives a schedule no more runs than its max_scheduled_runs", async () => {
    const f = await flow(t.server);
    const anchor = wholeSecondFromNow(30);
    const d = await deploy(t.server, {
      name: "d",
      flow_id: f,
      schedules: [
        { schedule: { interval: 60, anchor_date: anchor }, slug: "capped", max_scheduled_runs: 2 },
        { schedule: { interval: HOUR, anchor_date: anchor }, slug: "free" },
      ],
    });
    const capped = d.schedules.find((s: Run) => s.slug === "capped");
    const free = d.schedules.find((s: Run) => s.slug === "free");
    expect(capped.max_scheduled_runs).toBe(2);
    await scheduleDeploymentsShortOfRuns(t.server.context);
    const runs = await runsOf(t.server, d.id);
    const cappedRuns = runs.filter((r: Run) => r.created_by.id === capped.id);
    expect(cappedRuns.map((r: Run) => seconds(r.expected_start_time))).toEqual([seconds(anchor), seconds(anchor) + 60]);
    expect(runs.filter((r: Run) => r.created_by.id === free.id)).toHaveLength(3);
    // Still short of Prefect's minimum, so every pass looks at it again, and adds nothing.
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(0);
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(0);
    expect(await countRuns(t.server.db, d.id)).toBe(5);
  });

  it("schedules nothing for inactive schedules, paused deployments and deployments without schedules", async () => {
    const f = await flow(t.server);
    const inactive = await deploy(t.server, { name: "inactive", flow_id: f, schedules: [{ schedule: { interval: HOUR }, active: false }] });
    const paused = await deploy(t.server, { name: "paused", flow_id: f, paused: true, schedules: [{ schedule: { interval: HOUR } }] });
    const none = await deploy(t.server, { name: "none", flow_id: f });
    expect(paused.paused).toBe(true);
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(0);
    expect(await scheduleRecentDeployments(t.server.context)).toBe(0);
    expect(await t.server.db.flowRuns.count()).toBe(0);

    // Switched on, they get their runs.
    expect((await t.server.request("PATCH", `/deployments/${inactive.id}/schedules/${inactive.schedules[0].id}`, { active: true })).status).toBe(204);
    expect((await t.server.request("POST", `/deployments/${paused.id}/resume_deployment`)).status).toBe(200);
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(6);
    expect(await countRuns(t.server.db, inactive.id)).toBe(3);
    expect(await countRuns(t.server.db, paused.id)).toBe(3);
    expect(await countRuns(t.server.db, none.id)).toBe(0);
  });
});

describeApi("scheduler: idempotency", (t) => {
  it("never duplicates a run when passes run again, at once, or from another connection", async () => {
    const f = await flow(t.server);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const anchor = wholeSecondFromNow(30 + i);
      ids.push((await deploy(t.server, { name: `d${i}`, flow_id: f, schedules: [{ schedule: { interval: 300, anchor_date: anchor } }, { schedule: { interval: HOUR } }] })).id);
    }
    // Two passes of each loop at once, in one process.
    const inserted = await Promise.all([
      scheduleDeploymentsShortOfRuns(t.server.context),
      scheduleDeploymentsShortOfRuns(t.server.context),
      scheduleRecentDeployments(t.server.context),
    ]);
    const runs = await t.server.db.flowRuns.read({ flow_runs: { deployment_id: { any_: ids } } });
    expect(runs.length).toBeGreaterThanOrEqual(5 * (13 + 3));
    expect(inserted.reduce((a, b) => a + b, 0)).toBe(runs.length);
    expect(new Set(runs.map((r) => r.idempotency_key)).size).toBe(runs.length);

    // Another connection to the same database, as a scheduler on another machine, on new deployments.
    if (t.backend !== "sqlite-memory") {
      const other = await openDatabase(t.server.db.config);
      try {
        const more: string[] = [];
        for (let i = 0; i < 5; i++) more.push((await deploy(t.server, { name: `more${i}`, flow_id: f, schedules: [{ schedule: { interval: 120 } }] })).id);
        const counts = await Promise.all([
          scheduleDeploymentsShortOfRuns(t.server.context),
          scheduleDeploymentsShortOfRuns({ db: other, settings: t.server.context.settings }),
          scheduleRecentDeployments({ db: other, settings: t.server.context.settings }),
        ]);
        const moreRuns = await t.server.db.flowRuns.read({ flow_runs: { deployment_id: { any_: more } } });
        expect(moreRuns.length).toBeGreaterThanOrEqual(5 * 30);
        expect(counts.reduce((a, b) => a + b, 0)).toBe(moreRuns.length);
        expect(new Set(moreRuns.map((r) => r.idempotency_key)).size).toBe(moreRuns.length);
      } finally {
        await other.close();
      }
    }
    // Nothing more to do for anyone.
    const total = await t.server.db.flowRuns.count();
    expect(await scheduleDeploymentsShortOfRuns(t.server.context)).toBe(0);
    expect(await t.server.db.flowRuns.count()).toBe(total);
  });
});

/** The repositories, reporting each call made through them (and their transactions) as it starts and as it ends. */
function observed(db: Repositories, seen: (call: string) => void): Repositories {
  return new Proxy(db, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "transaction") return <T>(fn: (tx: Repositories) => Promise<T>) => target.transaction((tx) => fn(observed(tx, seen)));
      if (typeof property !== "string" || value === null || typeof value !== "object") return value;
      return new Proxy(value, {
        get(repository, method, inner) {
          const fn = Reflect.get(repository, method, inner);
          if (typeof fn !== "function") return fn;
          const name = `${property}.${String(method)}`;
          return async (...args: unknown[]) => {
            seen(`${name}:start`);
            const result = await fn.apply(repository, args);
            seen(name);
            return result;
          };
        },
      });
    },
  });
}

describeApi("scheduler: schedule changes and pauses", (t) => {
  it("drops the future auto-scheduled runs of a changed or paused deployment, keeps manual ones, and schedules anew", async () => {
    const f = await flow(t.server);
    const anchor = wholeSecondFromNow(600);
    const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: HOUR, anchor_date: anchor }, slug: "main" }] });
    const manual = await t.server.request("POST", `/deployments/${d.id}/create_flow_run`, {
      state: { type: "SCHEDULED", state_details: { scheduled_time: plusSeconds(anchor, 30 * 60) } },
    });
    expect(manual.status).toBe(201);
    const pass = () => scheduleDeploymentsShortOfRuns(t.server.context);
    const autoRuns = async () => (await runsOf(t.server, d.id)).filter((r: Run) => r.auto_scheduled);
    const spacing = (runs: Run[]) => runs.slice(1).map((r, i) => seconds(r.expected_start_time) - seconds(runs[i].expected_start_time));
    const manualKept = async () => expect((await runsOf(t.server, d.id)).filter((r: Run) => !r.auto_scheduled).map((r: Run) => r.id)).toEqual([manual.body.id]);

    expect(await pass()).toBe(3);
    const first = await autoRuns();
    expect(spacing(first)).toEqual([HOUR, HOUR]);

    // The deployment's schedules replaced: the old schedule's runs go, the new one's come.
    expect((await t.server.request("PATCH", `/deployments/${d.id}`, { schedules: [{ schedule: { interval: 2 * HOUR, anchor_date: anchor }, slug: "main" }] })).status).toBe(204);
    expect(await autoRuns()).toEqual([]);
    await manualKept();
    expect(await pass()).toBe(3);
    const second = await autoRuns();
    expect(spacing(second)).toEqual([2 * HOUR, 2 * HOUR]);
    expect(second.map((r: Run) => r.id).some((id: string) => first.some((r: Run) => r.id === id))).toBe(false);

    // One schedule changed through the schedules routes.
    const [schedule] = (await t.server.request("GET", `/deployments/${d.id}/schedules`)).body;
    expect((await t.server.request("PATCH", `/deployments/${d.id}/schedules/${schedule.id}`, { schedule: { interval: 1800, anchor_date: anchor } })).status).toBe(204);
    expect(await autoRuns()).toEqual([]);
    await manualKept();
    expect(await pass()).toBe(3);
    expect(spacing(await autoRuns())).toEqual([1800, 1800]);

    // Paused: the auto-scheduled runs go and none come back until it is resumed.
    expect((await t.server.request("POST", `/deployments/${d.id}/pause_deployment`)).status).toBe(200);
    expect(await autoRuns()).toEqual([]);
    await manualKept();
    expect(await pass()).toBe(0);
    expect(await scheduleRecentDeployments(t.server.context)).toBe(0);
    expect((await t.server.request("POST", `/deployments/${d.id}/resume_deployment`)).status).toBe(200);
    expect(await pass()).toBe(3);

    // The schedule deleted: its runs go, and nothing schedules the deployment any more.
    expect((await t.server.request("DELETE", `/deployments/${d.id}/schedules/${schedule.id}`)).status).toBe(204);
    expect(await autoRuns()).toEqual([]);
    await manualKept();
    expect(await pass()).toBe(0);
    expect(await scheduleRecentDeployments(t.server.context)).toBe(0);
  });

  // On SQLite a transaction holds the only connection, so no pass can run beside a change there.
  if (t.backend === "postgres") {
    it("a pass that runs while a deployment's schedules are replaced inserts no run of the old schedules", async () => {
      const f = await flow(t.server);
      const anchor = wholeSecondFromNow(600);
      const d = await deploy(t.server, { name: "d", flow_id: f, schedules: [{ schedule: { interval: HOUR, anchor_date: anchor } }] });
      const [old] = d.schedules;

      // The change, as PATCH /deployments makes it, held open until the pass has read the deployment or waits for it.
      let release!: () => void;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let changed!: () => void;
      const inChange = new Promise<void>((resolve) => {
        changed = resolve;
      });
      const change = t.server.db.transaction(async (tx) => {
        await tx.deployments.update(d.id, { schedules: [{ schedule: { interval: 2 * HOUR, anchor_date: anchor } }] });
        changed();
        await held;
      });
      await inChange;
      const calls: string[] = [];
      const db = observed(t.server.db, (call) => calls.push(call));
      const pass = scheduleDeploymentsShortOfRuns({ db: db as Database, settings: t.server.context.settings });
      await waitFor(() => calls.includes("deployments.read") || calls.includes("scheduledRuns.lockDeployments:start"), "the pass to reach the deployment");
      release();
      await change;
      expect(await pass).toBe(3);

      const runs = await runsOf(t.server, d.id);
      const [current] = (await t.server.request("GET", `/deployments/${d.id}/schedules`)).body;
      expect(current.id).not.toBe(old.id);
      expect(runs.map((r: Run) => r.created_by.id)).toEqual([current.id, current.id, current.id]);
      expect(runs.map((r: Run) => seconds(r.expected_start_time))).toEqual([0, 2, 4].map((h) => seconds(anchor) + h * HOUR));
    });
  }
});

describeApi(
  "scheduler: the loops in a real server",
  (t) => {
    it("schedules a new deployment within seconds, and a changed one anew", async () => {
      const f = await flow(t.server);
      const first = await deploy(t.server, { name: "first", flow_id: f, schedules: [{ schedule: { interval: HOUR } }] });
      await waitFor(async () => (await countRuns(t.server.db, first.id)) === 3, "the first deployment's runs");
      // The main loop ran when the server started and waits an hour: the recent deployments loop does this.
      const second = await deploy(t.server, { name: "second", flow_id: f, tags: ["x"], schedules: [{ schedule: { interval: DAY } }] });
      const runs = await waitFor(async () => {
        const found = await runsOf(t.server, second.id);
        return found.length === 3 ? found : undefined;
      }, "the second deployment's runs");
      expect(runs.every((r: Run) => r.auto_scheduled && r.state_name === "Scheduled" && r.tags.join() === "auto-scheduled,x")).toBe(true);

      // Its schedule replaced: the old runs are dropped at once and the new schedule's runs come within seconds.
      const anchor = wholeSecondFromNow(120);
      expect((await t.server.request("PATCH", `/deployments/${second.id}`, { schedules: [{ schedule: { interval: 2 * HOUR, anchor_date: anchor } }] })).status).toBe(204);
      const replaced = await waitFor(async () => {
        const found = await runsOf(t.server, second.id);
        return found.length === 3 && found.every((r: Run) => !runs.some((old: Run) => old.id === r.id)) ? found : undefined;
      }, "the new schedule's runs");
      expect(replaced.map((r: Run) => seconds(r.expected_start_time))).toEqual([0, 2, 4].map((h) => seconds(anchor) + h * HOUR));
    });
  },
  {
    PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED: "true",
    PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: "3600",
    PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS: "0.2",
  },
);

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`scheduler: across a restart [${backend}]`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it("a restarted server schedules the runs it is missing and duplicates none", async () => {
      const { config, remove } = await freshConfig(backend);
      const db = await openDatabase(config);
      cleanups.push(async () => {
        await db.close();
        await remove();
      });
      // Each main pass looks at the deployment again (its runs never reach the min scheduled time) and
      // computes the same two runs.
      const settings = {
        ...loadServerSettings({
          PREFECT_SERVER_BLOCKS_REGISTER_ON_START: "false",
          PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: "0.2",
          PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS: "0.2",
          PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME: String(2 * DAY),
          PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME: String(10 * DAY),
          PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: "false",
          PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "false",
          PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED: "false",
        }),
        host: "127.0.0.1",
        port: 0,
      };
      const start = async () => {
        const server = await startRealServer(settings, { db, logger: false });
        let stopped = false;
        const stop = async () => {
          if (stopped) return;
          stopped = true;
          await server.stop();
        };
        cleanups.push(stop);
        return { server, stop };
      };
      const api = async (url: string, path: string, body: unknown): Promise<Run> => {
        const response = await fetch(`${url}/api${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        return response.json();
      };

      const first = await start();
      const f = await api(first.server.url, "/flows/", { name: "etl" });
      const anchor = wholeSecondFromNow(60);
      const d = await api(first.server.url, "/deployments/", { name: "d", flow_id: f.id, schedules: [{ schedule: { interval: DAY, anchor_date: anchor } }] });
      const scheduled = async () => (await db.flowRuns.read({ flow_runs: { deployment_id: { any_: [d.id] } }, sort: "EXPECTED_START_TIME_ASC" })).map((r) => r.id);
      const [kept, dropped] = await waitFor(async () => {
        const ids = await scheduled();
        return ids.length === 2 ? ids : undefined;
      }, "the first server's runs");
      await first.stop();

      // One run lost while no server ran; the restarted server's loops bring it back beside the other.
      await db.flowRuns.delete(dropped as string);
      const second = await start();
      const [again, back] = await waitFor(async () => {
        const ids = await scheduled();
        return ids.length === 2 ? ids : undefined;
      }, "the restarted server's run");
      expect(again).toBe(kept);
      expect(back).not.toBe(dropped);
      // It keeps passing over the deployment without adding any: the same run comes back once more.
      await db.flowRuns.delete(back as string);
      await waitFor(async () => (await scheduled()).length === 2, "the run scheduled once more");
      await second.stop();
      const runs = await db.flowRuns.read({ flow_runs: { deployment_id: { any_: [d.id] } }, sort: "EXPECTED_START_TIME_ASC" });
      expect(runs.map((r) => toMicros(r.expected_start_time as string) / 1_000_000)).toEqual([seconds(anchor), seconds(anchor) + DAY]);
      expect(runs[0]?.id).toBe(kept);
    });
  });
}
