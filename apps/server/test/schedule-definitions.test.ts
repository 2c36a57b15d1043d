import { isIntervalSchedule } from "@prefect/db";
import { Cron } from "croner";
import { describe, expect, it } from "vitest";
import {
  cronerPattern,
  cronProblem,
  NormalizedScheduleSchema,
  normalizeRRule,
  rruleProblem,
  timezoneProblem,
  ValidScheduleSchema,
} from "../src/features/schedules/definitions.js";

const issues = (result: { success: boolean; error?: { issues: { message: string }[] } }) => result.error?.issues.map((i) => i.message).join("; ") ?? "";

describe("time zones", () => {
  it("accepts IANA names and their aliases", () => {
    for (const tz of ["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata", "US/Pacific", "Etc/GMT+5"]) expect(timezoneProblem(tz)).toBeNull();
  });

  it("refuses unknown names, offsets and wrongly cased names", () => {
    for (const tz of ["Mars/Base", "+05:00", "Z", "america/new_york", "utc", "Not A Zone"]) {
      expect(timezoneProblem(tz)).toMatch(/^Invalid timezone: /);
    }
  });
});

describe("cron strings", () => {
  it("accepts what croniter accepts", () => {
    for (const cron of [
      "* * * * *",
      "0 0 * * *",
      "*/15 9-17 * * mon-fri",
      "0 9 1,15 jan-jun *",
      "0 0 L * *",
      "0 0 15-l * *",
      "0 9 * * 5#2",
      "0 9 * * mon#1",
      "0 9 * * l5",
      "0 9 ? * 1",
      "0 9 * * 7",
      "0 9 * * fri-mon",
      "5/10 * * * *",
      "@daily",
      "@Hourly",
      "0 0 * * * 30",
      "0 0 1 1 * 0 2030",
      "0 0 * * SUN",
    ]) {
      expect(cronProblem(cron), cron).toBeNull();
    }
  });

  it("refuses malformed expressions, naming the expression", () => {
    for (const cron of [
      "",
      "* * * *",
      "* * * * * * * *",
      "60 * * * *",
      "* 24 * * *",
      "* * 32 * *",
      "* * 0 * *",
      "* * * 13 *",
      "* * * * 8",
      "*/0 * * * *",
      "-1 * * * *",
      "* * * foo *",
      "? * * * *",
      "* * 1? * *",
      "* * * * 5#6",
      "* * * * 1,5#2",
      "@every_minute",
      "* * * * 7 0",
      "not a cron",
    ]) {
      expect(cronProblem(cron), cron).toMatch(/^Invalid cron string: /);
    }
  });

  it("refuses random and hashed expressions", () => {
    expect(cronProblem("R * * * *")).toMatch(/Random and Hashed expressions are unsupported/);
    expect(cronProblem("r/5 * * * *")).toMatch(/Random and Hashed expressions are unsupported/);
    expect(cronProblem("H * * * *")).toMatch(/^Invalid cron string/);
  });

  it("translates to croner's field order, seconds first and the year last", () => {
    expect(cronerPattern("*/15 9 * * *")).toBe("0 0,15,30,45 9 * * *");
    expect(cronerPattern("0 0 * * * 30")).toBe("30 0 0 * * *");
    expect(cronerPattern("0 12 1 1 * 0 2030")).toBe("0 0 12 1 1 * 2030");
    expect(cronerPattern("@weekly")).toBe("0 0 0 * * 0");
    expect(cronerPattern("0 9 * * l5")).toBe("0 0 9 * * 5L");
    expect(cronerPattern("0 9 * * fri#2")).toBe("0 0 9 * * 5#2");
    expect(cronerPattern("0 9 L * *")).toBe("0 0 9 L * *");
    expect(cronerPattern("0 9 * * 7")).toBe("0 0 9 * * 0");
    expect(cronerPattern("0 9 * * fri-mon")).toBe("0 0 9 * * 0,1,5,6");
    expect(cronerPattern("0 9 ? jan-mar *")).toBe("0 0 9 * 1,2,3 *");
  });

  it("keeps croniter's readings of wrapping ranges with steps and x-x ranges", () => {
    // 50-10/5: 50, 55, then on from 0 in phase: 0, 5, 10.
    expect(cronerPattern("50-10/5 * * * *")).toBe("0 0,5,10,50,55 * * * *");
    expect(cronerPattern("0 5-5 * * *")).toBe("0 0 * * * *");
  });

  it("gives times that follow the zone's DST changes", () => {
    const cron = new Cron(cronerPattern("0 9 * * *"), { timezone: "America/New_York" });
    const runs = cron.nextRuns(3, new Date("2026-03-07T00:00:00Z")).map((d) => d.toISOString());
    expect(runs).toEqual(["2026-03-07T14:00:00.000Z", "2026-03-08T13:00:00.000Z", "2026-03-09T13:00:00.000Z"]);
  });
});

describe("rrule strings", () => {
  it("accepts rules and rule sets", () => {
    for (const rrule of [
      "FREQ=DAILY",
      "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;INTERVAL=2",
      "freq=hourly;byminute=30",
      "FREQ=MONTHLY;BYDAY=-1FR;COUNT=10",
      "DTSTART:20200101T090000\nRRULE:FREQ=DAILY;UNTIL=20301231T000000",
      "DTSTART:20200101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20301231T000000Z",
      "DTSTART;TZID=America/New_York:20200101T090000\nRRULE:FREQ=DAILY",
      "DTSTART:20200101T000000\nRRULE:FREQ=DAILY\nEXDATE:20200102T000000\nRDATE:20200110T120000",
      "RRULE:FREQ=DAILY\nRRULE:FREQ=HOURLY;BYHOUR=3",
    ]) {
      expect(rruleProblem(rrule), rrule).toBeNull();
    }
  });

  it("refuses malformed rules, naming the problem", () => {
    const cases: [string, RegExp][] = [
      ["", /empty string/],
      ["FREQ=SOMETIMES", /invalid 'FREQ'/],
      ["FREQ=DAILY;FOO=1", /unknown parameter 'FOO'/],
      ["FREQ=DAILY;INTERVAL=x", /invalid 'INTERVAL'/],
      ["FREQ=DAILY;INTERVAL=0", /INTERVAL/],
      ["FREQ=DAILY;", /is not NAME=VALUE/],
      ["COUNT=3", /FREQ is required/],
      ["FREQ=WEEKLY;BYDAY=XX", /invalid 'BYDAY'/],
      ["FREQ=DAILY;UNTIL=garbage", /invalid date/],
      ["FREQ=DAILY;UNTIL=20301231T000000Z", /UNTIL values must be specified in UTC/],
      ["FREQ=DAILY;BYSETPOS=0", /bysetpos/],
      ["DTSTART:20200101T000000\nFOO:BAR", /unsupported property: FOO/],
      ["DTSTART;TZID=Mars/Base:20200101T000000\nRRULE:FREQ=DAILY", /unknown TZID/],
      ["DTSTART:20200101T000000", /no RRULE/],
      ["not a rule", /Invalid RRule string/],
    ];
    for (const [rrule, problem] of cases) expect(rruleProblem(rrule), rrule).toMatch(problem);
  });

  it("refuses rules longer than 6500 characters", () => {
    const long = `DTSTART:20200101T000000\nRRULE:FREQ=DAILY\nRDATE:${Array.from({ length: 500 }, () => "20200110T120000").join(",")}`;
    expect(rruleProblem(long)).toMatch(/max length is 6500/);
  });

  it("gives a rule without DTSTART the 2020 anchor, or a recent in-phase one for frequent rules", () => {
    const at = new Date("2026-05-05T10:07:30.500Z");
    expect(normalizeRRule("FREQ=DAILY", "UTC", at)).toBe("DTSTART:20200101T000000\nFREQ=DAILY");
    expect(normalizeRRule("FREQ=MINUTELY;COUNT=5", "UTC", at)).toBe("DTSTART:20200101T000000\nFREQ=MINUTELY;COUNT=5");
    expect(normalizeRRule("FREQ=MINUTELY;INTERVAL=15", "UTC", at)).toBe("DTSTART:20260505T100000\nFREQ=MINUTELY;INTERVAL=15");
    expect(normalizeRRule("FREQ=SECONDLY;INTERVAL=20", "UTC", at)).toBe("DTSTART:20260505T100720\nFREQ=SECONDLY;INTERVAL=20");
    // The anchor is the wall clock in the schedule's zone (New York is UTC-4 in May).
    expect(normalizeRRule("FREQ=MINUTELY;INTERVAL=15", "America/New_York", at)).toBe("DTSTART:20260505T060000\nFREQ=MINUTELY;INTERVAL=15");
    expect(normalizeRRule("DTSTART:20240101T000000\nRRULE:FREQ=MINUTELY", "UTC", at)).toBe("DTSTART:20240101T000000\nRRULE:FREQ=MINUTELY");
    expect(normalizeRRule("garbage", "UTC", at)).toBe("garbage");
  });
});

describe("schedule definitions", () => {
  it("reads an interval schedule, defaulting the anchor to now and the zone to UTC", () => {
    const before = new Date().toISOString();
    const s = ValidScheduleSchema.parse({ interval: 3600 });
    if (!isIntervalSchedule(s)) throw new Error("not an interval schedule");
    expect(s.interval).toBe(3600);
    expect(s.timezone).toBe("UTC");
    expect(s.anchor_date >= before.replace(/Z$/, "000Z").slice(0, 19)).toBe(true);
    expect(ValidScheduleSchema.parse({ interval: 0.5, anchor_date: "2020-01-01T05:00:00+05:00", timezone: "Asia/Kolkata" })).toEqual({
      interval: 0.5,
      anchor_date: "2020-01-01T00:00:00.000000Z",
      timezone: "Asia/Kolkata",
    });
  });

  it("refuses an interval that is not positive, an unknown zone and unknown keys", () => {
    expect(issues(ValidScheduleSchema.safeParse({ interval: 0 }))).toMatch(/interval must be positive/);
    expect(issues(ValidScheduleSchema.safeParse({ interval: -5 }))).toMatch(/interval must be positive/);
    expect(issues(ValidScheduleSchema.safeParse({ interval: "1h" }))).toMatch(/interval must be a number/);
    expect(issues(ValidScheduleSchema.safeParse({ interval: 60, timezone: "Nowhere/Land" }))).toMatch(/Invalid timezone: "Nowhere\/Land"/);
    expect(ValidScheduleSchema.safeParse({ interval: 60, cron: "* * * * *" }).success).toBe(false);
  });

  it("reads cron and rrule schedules with Prefect's defaults", () => {
    expect(ValidScheduleSchema.parse({ cron: "0 0 * * *" })).toEqual({ cron: "0 0 * * *", timezone: null, day_or: true });
    expect(ValidScheduleSchema.parse({ cron: "0 0 * * *", timezone: "Europe/Paris", day_or: false })).toEqual({
      cron: "0 0 * * *",
      timezone: "Europe/Paris",
      day_or: false,
    });
    expect(ValidScheduleSchema.parse({ rrule: "FREQ=DAILY" })).toEqual({ rrule: "FREQ=DAILY", timezone: "UTC" });
    expect(issues(ValidScheduleSchema.safeParse({ cron: "bad" }))).toMatch(/Invalid cron string: "bad"/);
    expect(issues(ValidScheduleSchema.safeParse({ rrule: "FREQ=DAILY", timezone: "Moon/Base" }))).toMatch(/Invalid timezone/);
  });

  it("tells the three kinds apart and refuses anything else", () => {
    expect(ValidScheduleSchema.parse({ cron: "* * * * *" })).toMatchObject({ cron: "* * * * *" });
    expect(ValidScheduleSchema.parse({ rrule: "FREQ=DAILY" })).toMatchObject({ rrule: "FREQ=DAILY" });
    expect(ValidScheduleSchema.parse({ interval: 10 })).toMatchObject({ interval: 10 });
    expect(issues(ValidScheduleSchema.safeParse({ every: 10 }))).toMatch(/interval .* cron .* rrule/);
    expect(issues(ValidScheduleSchema.safeParse("daily"))).toMatch(/interval .* cron .* rrule/);
  });

  it("gives an rrule without DTSTART one when normalized for storage", () => {
    expect(NormalizedScheduleSchema.parse({ rrule: "FREQ=DAILY" })).toEqual({ rrule: "DTSTART:20200101T000000\nFREQ=DAILY", timezone: "UTC" });
    expect(NormalizedScheduleSchema.parse({ cron: "0 0 * * *" })).toEqual({ cron: "0 0 * * *", timezone: null, day_or: true });
  });
});
