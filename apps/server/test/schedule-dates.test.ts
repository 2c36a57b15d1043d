import { describe, expect, it } from "vitest";
import { addSeconds, type CronSchedule, fromMicros, type IntervalSchedule, type RRuleSchedule, type Timestamp, toMicros, toTimestamp } from "@prefect/db";
import { instantOfWallClock, MAX_SCHEDULE_ITERATIONS, pythonDateTime, scheduleDates, scheduleTypeName, wallClockMicros } from "../src/features/schedules/dates.js";

const ts = (value: string) => toTimestamp(value);
const interval = (seconds: number, anchor: string, timezone: string | null = "UTC"): IntervalSchedule => ({ interval: seconds, anchor_date: ts(anchor), timezone });
const cron = (expression: string, timezone: string | null = null, dayOr = true): CronSchedule => ({ cron: expression, timezone, day_or: dayOr });
const rrule = (value: string, timezone: string | null = "UTC"): RRuleSchedule => ({ rrule: value, timezone });

/** The dates as instants (canonical timestamps). */
const instants = (dates: { timestamp: Timestamp }[]) => dates.map((d) => d.timestamp);
/** The dates as Python prints them in the schedule's zone. */
const texts = (dates: { text: string }[]) => dates.map((d) => d.text);
/** Hours of the dates' instants on the UTC clock. */
const utcHours = (dates: { timestamp: Timestamp }[]) => dates.map((d) => new Date(d.timestamp).getUTCHours());
const days = (start: string, count: number, stepSeconds = 86_400) => Array.from({ length: count }, (_, i) => addSeconds(ts(start), i * stepSeconds));

describe("time zone arithmetic", () => {
  it("reads wall-clock times as Python does with fold=0", () => {
    const zone = "America/New_York";
    const wall = (text: string) => toMicros(`${text}Z`);
    // Clocks went forward at 2018-03-11 02:00 EST: 02:30 does not exist and is read as 02:30 EST.
    expect(fromMicros(instantOfWallClock(zone, wall("2018-03-11T02:30:00")))).toBe("2018-03-11T07:30:00.000000Z");
    // Clocks went back at 2018-11-04 02:00 EDT: 01:30 happens twice; the first (EDT) is taken.
    expect(fromMicros(instantOfWallClock(zone, wall("2018-11-04T01:30:00")))).toBe("2018-11-04T05:30:00.000000Z");
    // Ordinary times either side of a change.
    expect(fromMicros(instantOfWallClock(zone, wall("2018-03-11T03:30:00")))).toBe("2018-03-11T07:30:00.000000Z");
    expect(fromMicros(instantOfWallClock(zone, wall("2018-11-04T02:30:00")))).toBe("2018-11-04T07:30:00.000000Z");
    expect(fromMicros(instantOfWallClock(zone, wall("2018-11-03T23:00:00")))).toBe("2018-11-04T03:00:00.000000Z");
    expect(fromMicros(wallClockMicros(zone, toMicros("2018-07-01T12:00:00.123456Z")))).toBe("2018-07-01T08:00:00.123456Z");
  });

  it("prints dates as Python's str() of an aware datetime", () => {
    expect(pythonDateTime(toMicros("2024-03-10T14:00:00Z"), "America/New_York")).toBe("2024-03-10 10:00:00-04:00");
    expect(pythonDateTime(toMicros("2024-01-10T14:00:00Z"), "America/New_York")).toBe("2024-01-10 09:00:00-05:00");
    expect(pythonDateTime(toMicros("2024-01-10T14:00:00.000250Z"), "UTC")).toBe("2024-01-10 14:00:00.000250+00:00");
    expect(pythonDateTime(toMicros("2024-01-10T14:00:00Z"), "Asia/Kolkata")).toBe("2024-01-10 19:30:00+05:30");
    // Local mean time has seconds in its offset; Python prints them.
    expect(pythonDateTime(toMicros("1850-01-01T12:00:00Z"), "America/New_York")).toBe("1850-01-01 07:03:58-04:56:02");
  });

  it("names the schedule classes as Prefect does", () => {
    expect(scheduleTypeName(interval(60, "2024-01-01T00:00:00Z"))).toBe("IntervalSchedule");
    expect(scheduleTypeName(cron("* * * * *"))).toBe("CronSchedule");
    expect(scheduleTypeName(rrule("FREQ=DAILY"))).toBe("RRuleSchedule");
  });
});

describe("interval schedules", () => {
  it.each(["2018-01-01T00:00:00Z", "2021-02-02T00:00:00Z", "2025-03-03T00:00:00Z"])("gives n daily dates from start %s, before or after the anchor", (start) => {
    const dates = scheduleDates(interval(86_400, "2021-01-01T00:00:00Z"), { n: 5, start });
    expect(instants(dates)).toEqual(days(start, 5));
  });

  it.each([
    ["2018-01-01T00:00:00Z", 1],
    ["2018-03-01T00:00:00Z", 60],
    ["2021-02-02T00:00:00Z", MAX_SCHEDULE_ITERATIONS],
  ])("gives every date up to an end (%s), at most %i", (end, count) => {
    const dates = scheduleDates(interval(86_400, "2021-01-01T00:00:00Z"), { start: "2018-01-01T00:00:00Z", end });
    expect(dates).toHaveLength(count);
    expect(dates.at(-1)!.timestamp <= ts(end)).toBe(true);
  });

  it("gives one date by default, the first on or after the start", () => {
    expect(instants(scheduleDates(interval(86_400, "2021-01-01T00:00:00Z"), { start: "2018-01-01T06:00:00Z" }))).toEqual([ts("2018-01-02T00:00:00Z")]);
    expect(instants(scheduleDates(interval(86_400, "2021-01-01T00:00:00Z"), { start: "2018-01-02T00:00:00Z" }))).toEqual([ts("2018-01-02T00:00:00Z")]);
  });

  it("keeps the anchor's phase, for anchors in the past and in the future", () => {
    expect(instants(scheduleDates(interval(86_400, "2020-02-02T23:35:00Z"), { n: 3, start: "2021-07-01T00:00:00Z" }))).toEqual(days("2021-07-01T23:35:00Z", 3));
    expect(instants(scheduleDates(interval(17 * 3600, "2030-02-02T05:24:00Z"), { n: 5, start: "2021-07-01T00:00:00Z" }))).toEqual(
      days("2021-07-01T07:24:00Z", 5, 17 * 3600),
    );
  });

  it("keeps the anchor's microseconds and prints them", () => {
    const dates = scheduleDates(interval(60, "2024-01-01T00:00:00.123456Z"), { n: 2, start: "2024-05-01T00:00:00Z" });
    expect(instants(dates)).toEqual([ts("2024-05-01T00:00:00.123456Z"), ts("2024-05-01T00:01:00.123456Z")]);
    expect(texts(dates)).toEqual(["2024-05-01 00:00:00.123456+00:00", "2024-05-01 00:01:00.123456+00:00"]);
  });

  it("fires every elapsed hour across DST changes (clocks forward: 2am skipped)", () => {
    const dates = scheduleDates(interval(3600, "2018-03-10T23:00:00-05:00", "America/New_York"), { n: 5, start: "2018-03-10T23:00:00-05:00" });
    expect(texts(dates).map((t) => t.slice(11, 13))).toEqual(["23", "00", "01", "03", "04"]);
    expect(utcHours(dates)).toEqual([4, 5, 6, 7, 8]);
  });

  it("fires every elapsed hour across DST changes (clocks back: 1am twice)", () => {
    const dates = scheduleDates(interval(3600, "2018-11-03T23:00:00-04:00", "America/New_York"), { n: 5, start: "2018-11-03T23:00:00-04:00" });
    expect(texts(dates)).toEqual([
      "2018-11-03 23:00:00-04:00",
      "2018-11-04 00:00:00-04:00",
      "2018-11-04 01:00:00-04:00",
      "2018-11-04 01:00:00-05:00",
      "2018-11-04 02:00:00-05:00",
    ]);
    expect(utcHours(dates)).toEqual([3, 4, 5, 6, 7]);
  });

  it("keeps a daily 09:00 local across the spring and autumn changes", () => {
    const spring = scheduleDates(interval(86_400, "2018-03-08T09:00:00-05:00", "America/New_York"), { n: 5, start: "2018-03-08T09:00:00-05:00" });
    expect(texts(spring).map((t) => t.slice(11))).toEqual(["09:00:00-05:00", "09:00:00-05:00", "09:00:00-05:00", "09:00:00-04:00", "09:00:00-04:00"]);
    expect(utcHours(spring)).toEqual([14, 14, 14, 13, 13]);
    const autumn = scheduleDates(interval(86_400, "2018-11-01T09:00:00-04:00", "America/New_York"), { n: 5, start: "2018-11-01T09:00:00-04:00" });
    expect(utcHours(autumn)).toEqual([13, 13, 13, 14, 14]);
  });

  it("keeps 09:00 local for an anchor months before the window, and the dates do not depend on where the window starts", () => {
    const schedule = interval(86_400, "2018-01-08T09:00:00-05:00", "America/New_York");
    const july = scheduleDates(schedule, { n: 3, start: "2018-07-08T14:00:00Z" });
    expect(texts(july)).toEqual(["2018-07-09 09:00:00-04:00", "2018-07-10 09:00:00-04:00", "2018-07-11 09:00:00-04:00"]);
    const earlier = scheduleDates(schedule, { start: "2018-06-01T00:00:00Z", end: "2018-07-11T23:00:00Z" });
    expect(instants(earlier).slice(-3)).toEqual(instants(july));
  });

  it("adds calendar days but elapsed hours: 2 days stay at 10:00, 49 hours move with the clock change", () => {
    const anchor = "2023-03-24T10:00:00+01:00";
    const twoDays = scheduleDates(interval(2 * 86_400, anchor, "Europe/Amsterdam"), { n: 2, start: anchor });
    expect(texts(twoDays)[1]).toBe("2023-03-26 10:00:00+02:00");
    const dayAndHour = scheduleDates(interval(86_400 + 3600, anchor, "Europe/Amsterdam"), { n: 2, start: anchor });
    // One calendar day (10:00 the next day), then one elapsed hour.
    expect(texts(dayAndHour)[1]).toBe("2023-03-25 11:00:00+01:00");
  });

  it("computes in the schedule's zone an anchor written with an offset", () => {
    const dates = scheduleDates(interval(86_400, "2024-07-01T01:15:00+09:00", "Asia/Tokyo"), { n: 3, start: "2025-10-23T00:00:00Z" });
    expect(texts(dates)).toEqual(["2025-10-24 01:15:00+09:00", "2025-10-25 01:15:00+09:00", "2025-10-26 01:15:00+09:00"]);
  });

  it("uses UTC for a schedule without a time zone and refuses an unknown zone", () => {
    expect(texts(scheduleDates(interval(3600, "2024-01-01T00:00:00Z", null), { start: "2024-01-01T00:30:00Z" }))).toEqual(["2024-01-01 01:00:00+00:00"]);
    expect(() => scheduleDates(interval(3600, "2024-01-01T00:00:00Z", "Mars/Base"))).toThrow(/Invalid timezone/);
  });

  it("stops after the most candidates Prefect looks at", () => {
    const dates = scheduleDates(interval(1, "2024-01-01T00:00:00Z"), { n: 5000, start: "2024-01-01T00:00:00Z" });
    expect(dates.length).toBeLessThanOrEqual(MAX_SCHEDULE_ITERATIONS + 2);
    expect(dates.length).toBeGreaterThanOrEqual(MAX_SCHEDULE_ITERATIONS);
  });
});

describe("cron schedules", () => {
  it("gives daily and hourly dates in UTC when the schedule has no zone", () => {
    const daily = scheduleDates(cron("0 0 * * *"), { n: 5, start: "2021-01-01T00:00:00Z" });
    expect(instants(daily)).toEqual(days("2021-01-01T00:00:00Z", 5));
    expect(texts(daily)[0]).toBe("2021-01-01 00:00:00+00:00");
    const hourly = scheduleDates(cron("0 * * * *"), { n: 5, start: "2021-01-01T00:00:00Z" });
    expect(instants(hourly)).toEqual(days("2021-01-01T00:00:00Z", 5, 3600));
  });

  it("gives dates in the schedule's zone", () => {
    const dates = scheduleDates(cron("0 * * * *", "America/New_York"), { n: 2, start: "2021-01-01T00:00:00Z" });
    expect(instants(dates)).toEqual(days("2021-01-01T00:00:00Z", 2, 3600));
    expect(texts(dates)).toEqual(["2020-12-31 19:00:00-05:00", "2020-12-31 20:00:00-05:00"]);
  });

  it("includes a start on the schedule, down to the microsecond", () => {
    expect(instants(scheduleDates(cron("*/5 * * * *"), { start: "2024-01-01T10:05:00Z" }))).toEqual([ts("2024-01-01T10:05:00Z")]);
    expect(instants(scheduleDates(cron("*/5 * * * *"), { start: "2024-01-01T10:05:00.000001Z" }))).toEqual([ts("2024-01-01T10:10:00Z")]);
  });

  it("gives one date by default and every date up to an end", () => {
    expect(instants(scheduleDates(cron("0 0 * * *"), { start: "2018-01-01T06:00:00Z" }))).toEqual([ts("2018-01-02T00:00:00Z")]);
    expect(scheduleDates(cron("0 0 * * *"), { start: "2018-01-01T00:00:00Z", end: "2018-03-01T00:00:00Z" })).toHaveLength(60);
    expect(scheduleDates(cron("0 0 * * *"), { start: "2018-01-01T00:00:00Z", end: "2022-03-03T00:00:00Z" })).toHaveLength(MAX_SCHEDULE_ITERATIONS);
  });

  it("keeps a daily 09:00 in New York at 09:00 local across the DST changes", () => {
    const spring = scheduleDates(cron("0 9 * * *", "America/New_York"), { n: 5, start: "2018-03-08T09:00:00-05:00" });
    expect(texts(spring)).toEqual([
      "2018-03-08 09:00:00-05:00",
      "2018-03-09 09:00:00-05:00",
      "2018-03-10 09:00:00-05:00",
      "2018-03-11 09:00:00-04:00",
      "2018-03-12 09:00:00-04:00",
    ]);
    expect(utcHours(spring)).toEqual([14, 14, 14, 13, 13]);
    const autumn = scheduleDates(cron("0 9 * * *", "America/New_York"), { n: 5, start: "2018-11-01T09:00:00-04:00" });
    expect(utcHours(autumn)).toEqual([13, 13, 13, 14, 14]);
  });

  it("fires on schedule hours, not elapsed hours: 2am skipped in spring, 1am once in autumn", () => {
    const spring = scheduleDates(cron("0 * * * *", "America/New_York"), { n: 5, start: "2018-03-10T23:00:00-05:00" });
    expect(texts(spring).map((t) => t.slice(11, 13))).toEqual(["23", "00", "01", "03", "04"]);
    expect(utcHours(spring)).toEqual([4, 5, 6, 7, 8]);
    const autumn = scheduleDates(cron("0 * * * *", "America/New_York"), { n: 5, start: "2018-11-03T23:00:00-04:00" });
    expect(texts(autumn).map((t) => t.slice(11, 13))).toEqual(["23", "00", "01", "02", "03"]);
    expect(utcHours(autumn)).toEqual([3, 4, 5, 7, 8]);
  });

  it("runs a time inside the spring gap once, an hour later", () => {
    const dates = scheduleDates(cron("30 2 * * *", "America/New_York"), { n: 3, start: "2018-03-10T00:00:00-05:00" });
    expect(texts(dates)).toEqual(["2018-03-10 02:30:00-05:00", "2018-03-11 03:30:00-04:00", "2018-03-12 02:30:00-04:00"]);
  });

  it("schedules correctly from a start on the day of the change but before it", () => {
    const dates = scheduleDates(cron("10 0 * * *", "America/Montreal"), { n: 5, start: "2023-03-12T05:10:02Z" });
    expect(utcHours(dates)).toEqual([4, 4, 4, 4, 4]);
    expect(texts(dates)[0]).toBe("2023-03-13 00:10:00-04:00");
  });

  it("combines day of month and day of week with OR, or AND when day_or is false", () => {
    const either = scheduleDates(cron("0 0 13 * 5", null, true), { n: 3, start: "2024-01-01T00:00:00Z" });
    expect(instants(either)).toEqual([ts("2024-01-05T00:00:00Z"), ts("2024-01-12T00:00:00Z"), ts("2024-01-13T00:00:00Z")]);
    const both = scheduleDates(cron("0 0 13 * 5", null, false), { n: 2, start: "2024-01-01T00:00:00Z" });
    expect(instants(both)).toEqual([ts("2024-09-13T00:00:00Z"), ts("2024-12-13T00:00:00Z")]);
  });

  it("understands croniter's extras: last day of month, nth weekday, seconds, a year that ends the schedule", () => {
    expect(instants(scheduleDates(cron("0 12 L * *"), { n: 2, start: "2024-02-01T00:00:00Z" }))).toEqual([ts("2024-02-29T12:00:00Z"), ts("2024-03-31T12:00:00Z")]);
    expect(instants(scheduleDates(cron("0 9 * * mon#2"), { n: 1, start: "2024-01-01T00:00:00Z" }))).toEqual([ts("2024-01-08T09:00:00Z")]);
    expect(instants(scheduleDates(cron("0 0 * * * 30"), { n: 2, start: "2024-01-01T00:00:00Z" }))).toEqual([ts("2024-01-01T00:00:30Z"), ts("2024-01-02T00:00:30Z")]);
    expect(scheduleDates(cron("0 0 1 1 * 0 2025"), { n: 5, start: "2024-01-01T00:00:00Z" })).toHaveLength(1);
  });
});

describe("rrule schedules", () => {
  it("gives daily dates from DTSTART", () => {
    const dates = scheduleDates(rrule("DTSTART:20200101T000000\nRRULE:FREQ=DAILY"), { n: 5, start: "2022-03-03T00:00:00Z" });
    expect(instants(dates)).toEqual(days("2022-03-03T00:00:00Z", 5));
  });

  it("gives nothing before DTSTART and starts rules without one on 2020-01-01", () => {
    const dated = scheduleDates(rrule("DTSTART:20300101T000000\nRRULE:FREQ=DAILY"), { start: "2024-01-01T00:00:00Z", end: "2025-01-01T00:00:00Z" });
    expect(dated).toEqual([]);
    const undated = scheduleDates(rrule("FREQ=YEARLY;COUNT=3"), { n: 5, start: "2000-01-01T00:00:00Z" });
    expect(instants(undated)).toEqual([ts("2020-01-01T00:00:00Z"), ts("2021-01-01T00:00:00Z"), ts("2022-01-01T00:00:00Z")]);
  });

  it("respects COUNT, UNTIL, RDATE and EXDATE", () => {
    const counted = scheduleDates(rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3"), { n: 10, start: "2024-01-01T00:00:00Z" });
    expect(counted).toHaveLength(3);
    const until = scheduleDates(rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;UNTIL=20240103T090000"), { n: 10, start: "2024-01-01T00:00:00Z" });
    expect(until).toHaveLength(3);
    const set = scheduleDates(rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=4\nEXDATE:20240102T090000\nRDATE:20240110T120000"), {
      n: 10,
      start: "2024-01-01T00:00:00Z",
    });
    expect(instants(set)).toEqual(["2024-01-01T09:00:00Z", "2024-01-03T09:00:00Z", "2024-01-04T09:00:00Z", "2024-01-10T12:00:00Z"].map(ts));
  });

  it("merges the dates of several rules in order and removes those of an EXRULE", () => {
    const merged = scheduleDates(rrule("DTSTART:20240101T000000\nRRULE:FREQ=DAILY;BYHOUR=9\nRRULE:FREQ=DAILY;BYHOUR=17\nEXRULE:FREQ=WEEKLY;BYDAY=TU;BYHOUR=9"), {
      n: 6,
      start: "2024-01-01T00:00:00Z",
    });
    // 2024-01-02 is a Tuesday: its 09:00 is excluded.
    expect(instants(merged)).toEqual(
      ["2024-01-01T09:00:00Z", "2024-01-01T17:00:00Z", "2024-01-02T17:00:00Z", "2024-01-03T09:00:00Z", "2024-01-03T17:00:00Z", "2024-01-04T09:00:00Z"].map(ts),
    );
  });

  it("keeps a daily 09:00 in the schedule's zone across the DST changes", () => {
    const spring = scheduleDates(rrule("DTSTART:20180308T090000\nRRULE:FREQ=DAILY", "America/New_York"), { n: 5, start: "2018-03-08T09:00:00-05:00" });
    expect(utcHours(spring)).toEqual([14, 14, 14, 13, 13]);
    expect(texts(spring)[3]).toBe("2018-03-11 09:00:00-04:00");
    const autumn = scheduleDates(rrule("DTSTART:20181101T090000\nRRULE:FREQ=DAILY", "America/New_York"), { n: 5, start: "2018-11-01T09:00:00-04:00" });
    expect(utcHours(autumn)).toEqual([13, 13, 13, 14, 14]);
    const utc = scheduleDates(rrule("DTSTART:20181101T090000\nRRULE:FREQ=DAILY", "UTC"), { n: 5, start: "2018-11-01T09:00:00Z" });
    expect(utcHours(utc)).toEqual([9, 9, 9, 9, 9]);
  });

  it("fires on wall-clock hours: 2am skipped in spring, 1am once in autumn", () => {
    const spring = scheduleDates(rrule("DTSTART:20180310T230000\nRRULE:FREQ=HOURLY", "America/New_York"), { n: 5, start: "2018-03-10T23:00:00-05:00" });
    expect(texts(spring).map((t) => t.slice(11, 13))).toEqual(["23", "00", "01", "03", "04"]);
    expect(utcHours(spring)).toEqual([4, 5, 6, 7, 8]);
    const autumn = scheduleDates(rrule("DTSTART:20181103T230000\nRRULE:FREQ=HOURLY", "America/New_York"), { n: 5, start: "2018-11-03T23:00:00-04:00" });
    expect(utcHours(autumn)).toEqual([3, 4, 5, 7, 8]);
  });

  it("reads DTSTART's wall clock in the schedule's zone, whatever TZID or Z it carries (as Prefect)", () => {
    const tzid = scheduleDates(rrule("DTSTART;TZID=America/New_York:20240101T090000\nRRULE:FREQ=DAILY", "America/New_York"), { n: 1, start: "2024-06-01T00:00:00Z" });
    expect(texts(tzid)).toEqual(["2024-06-01 09:00:00-04:00"]);
    const zulu = scheduleDates(rrule("DTSTART:20240101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20240301T000000Z", "Europe/Paris"), { n: 1, start: "2024-02-01T00:00:00Z" });
    expect(texts(zulu)).toEqual(["2024-02-01 09:00:00+01:00"]);
  });

  it("stops at the end of the window", () => {
    const dates = scheduleDates(rrule("DTSTART:20240101T000000\nRRULE:FREQ=HOURLY"), { start: "2024-01-01T00:00:00Z", end: "2024-01-01T05:00:00Z" });
    expect(instants(dates)).toEqual(days("2024-01-01T00:00:00Z", 6, 3600));
  });
});
