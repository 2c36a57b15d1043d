/**
 * The dates a schedule fires at, as Prefect's `_get_dates_generator` of its IntervalSchedule,
 * CronSchedule and RRuleSchedule yields them (server/schemas/schedules.py): dates on or after
 * `start`, none after `end`, at most `n` of them (1 by default, 1000 when only an end is given), at
 * most 1000 candidates looked at, duplicates (DST) dropped, in the order they come.
 *
 * Times are computed on the wall clock of the schedule's time zone (UTC when it has none) and a wall
 * time is placed as Python places it with `fold=0`: a time that occurs twice (clocks set back) is its
 * first occurrence, a time that does not exist (clocks set forward) is read with the offset before
 * the change, which moves it forward by the gap.
 *
 * - Interval: the dates are `anchor + k * interval` for whole k. The days of the interval are added on
 *   the wall clock (a daily 09:00 schedule stays at 09:00 across DST changes) and the rest as elapsed
 *   time (an hourly schedule fires every hour of real time). Each date is computed from the anchor
 *   directly, so the dates never depend on the start of the window they are asked for: a date once
 *   scheduled comes out the same, with the same idempotency key, whenever it is computed again.
 *   (Prefect jumps to the window in elapsed seconds and steps from there; for windows near the anchor,
 *   which its tests cover, the dates are the same.)
 * - Cron: croniter's semantics (see definitions.ts) computed by croner on the wall clock; `day_or`
 *   combines a restricted day of month and day of week with OR (true) or AND (false).
 * - RRule: as Prefect's `to_rrule`, every date of the rule (DTSTART, UNTIL, RDATE, EXDATE) is read as
 *   a wall-clock time in the schedule's time zone, whatever zone or `Z` it was written with; a rule
 *   without DTSTART starts on 2020-01-01T00:00:00. The rrule package computes the occurrences.
 *
 * `text` is Python's `str()` of the date in the schedule's zone (`2024-03-10 09:00:00-04:00`), the
 * form Prefect writes into the idempotency keys of scheduled runs.
 */
import { createRequire } from "node:module";
import { Cron } from "croner";
import { fromMicros, isCronSchedule, isIntervalSchedule, now, type Schedule, type Timestamp, toMicros } from "@prefect/db";
import { cronerPattern, ScheduleError, timezoneProblem } from "./definitions.js";

const rrule = createRequire(import.meta.url)("rrule") as typeof import("rrule");

/** Prefect's MAX_ITERATIONS: the most candidate dates one call looks at. */
export const MAX_SCHEDULE_ITERATIONS = 1000;

export interface ScheduleDate {
  /** The instant, in canonical form. */
  readonly timestamp: Timestamp;
  /** The instant in microseconds since the Unix epoch. */
  readonly micros: number;
  /** Python's `str()` of the date in the schedule's time zone. */
  readonly text: string;
}

export interface ScheduleDateQuery {
  /** Most dates to return; 1 by default, MAX_SCHEDULE_ITERATIONS when `end` is given. */
  readonly n?: number | undefined;
  /** No date before this instant (default: now). */
  readonly start?: Timestamp | string | undefined;
  /** No date after this instant. */
  readonly end?: Timestamp | string | null | undefined;
}

/** Prefect's name of the schedule's class, shown as the `display_value` of runs it creates. */
export function scheduleTypeName(schedule: Schedule): "IntervalSchedule" | "CronSchedule" | "RRuleSchedule" {
  if (isIntervalSchedule(schedule)) return "IntervalSchedule";
  if (isCronSchedule(schedule)) return "CronSchedule";
  return "RRuleSchedule";
}

/** The dates `schedule` fires at within the query's window (see the module comment). */
export function scheduleDates(schedule: Schedule, query: ScheduleDateQuery = {}): ScheduleDate[] {
  const zone = schedule.timezone ?? "UTC";
  const problem = timezoneProblem(zone);
  if (problem) throw new ScheduleError(problem);
  const start = toMicros(query.start ?? now());
  const end = query.end === null || query.end === undefined ? null : toMicros(query.end);
  const n = query.n ?? (end === null ? 1 : MAX_SCHEDULE_ITERATIONS);
  const window: Window = { zone, start, end, n };
  if (isIntervalSchedule(schedule)) return intervalDates(schedule.interval, toMicros(schedule.anchor_date), window);
  if (isCronSchedule(schedule)) return cronDates(schedule.cron, schedule.day_or, window);
  return rruleDates(schedule.rrule, window);
}

interface Window {
  readonly zone: string;
  readonly start: number;
  readonly end: number | null;
  readonly n: number;
}

/** Collects dates as Prefect's generators do: stop past `end`, skip repeats, stop at `n` or after too many candidates. */
class Collector {
  readonly dates: ScheduleDate[] = [];
  readonly #seen = new Set<number>();
  #counter = 0;

  constructor(private readonly window: Window) {}

  /** Offers the next candidate (in microseconds); false when collecting is over. */
  offer(micros: number): boolean {
    if (this.window.end !== null && micros > this.window.end) return false;
    if (!this.#seen.has(micros)) {
      this.#seen.add(micros);
      this.dates.push({ timestamp: fromMicros(micros), micros, text: pythonDateTime(micros, this.window.zone) });
    }
    if (this.dates.length >= this.window.n || this.#counter > MAX_SCHEDULE_ITERATIONS) return false;
    this.#counter++;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Time zones

const DAY_MS = 86_400_000;
const DAY_MICROS = 86_400_000_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let format = formatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(zone, format);
  }
  return format;
}

/** The zone's UTC offset at the instant `ms` (milliseconds since the epoch), in milliseconds. */
export function zoneOffsetMs(zone: string, ms: number): number {
  if (zone === "UTC" || zone === "Etc/UTC") return 0;
  const whole = Math.floor(ms / 1000) * 1000;
  const parts = formatter(zone).formatToParts(new Date(whole));
  const get = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value ?? "0");
  const wall = new Date(0);
  wall.setUTCFullYear(get("year"), get("month") - 1, get("day"));
  wall.setUTCHours(get("hour"), get("minute"), get("second"), 0);
  return wall.getTime() - whole;
}

/** The wall-clock time of the instant `micros` in `zone`, as microseconds of a UTC-based clock. */
export function wallClockMicros(zone: string, micros: number): number {
  return micros + zoneOffsetMs(zone, Math.floor(micros / 1000)) * 1000;
}

/**
 * The instant of the wall-clock time `wall` (microseconds of a UTC-based clock) in `zone`, as Python
 * reads it with `fold=0`: the first of two occurrences; a time in a gap with the offset before it.
 */
export function instantOfWallClock(zone: string, wall: number): number {
  const wallMs = Math.floor(wall / 1000);
  const before = zoneOffsetMs(zone, wallMs - 2 * DAY_MS);
  if (zoneOffsetMs(zone, wallMs - before) === before) return wall - before * 1000;
  const after = zoneOffsetMs(zone, wallMs + 2 * DAY_MS);
  if (after !== before && zoneOffsetMs(zone, wallMs - after) === after) return wall - after * 1000;
  return wall - before * 1000;
}

const pad = (value: number, width = 2) => String(value).padStart(width, "0");

/** Python's `str()` of the instant `micros` as a datetime in `zone`: `YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM`. */
export function pythonDateTime(micros: number, zone: string): string {
  const offsetMs = zoneOffsetMs(zone, Math.floor(micros / 1000));
  const wall = micros + offsetMs * 1000;
  const seconds = Math.floor(wall / 1_000_000);
  const fraction = wall - seconds * 1_000_000;
  const d = new Date(seconds * 1000);
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${fraction ? `.${pad(fraction, 6)}` : ""}`;
  const sign = offsetMs < 0 ? "-" : "+";
  const abs = Math.abs(offsetMs) / 1000;
  const offsetSeconds = abs % 60;
  const offset = `${sign}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}${offsetSeconds ? `:${pad(offsetSeconds)}` : ""}`;
  return `${date} ${time}${offset}`;
}

// ---------------------------------------------------------------------------------------------
// Interval

function intervalDates(intervalSeconds: number, anchor: number, window: Window): ScheduleDate[] {
  const interval = Math.round(intervalSeconds * 1_000_000);
  if (!(interval > 0)) throw new ScheduleError(`interval must be positive (got ${intervalSeconds})`);
  const days = Math.floor(interval / DAY_MICROS);
  const rest = interval - days * DAY_MICROS;
  const anchorWall = wallClockMicros(window.zone, anchor);
  const at = (k: number): number => {
    if (k === 0 || days === 0) return anchor + k * interval;
    return instantOfWallClock(window.zone, anchorWall + k * days * DAY_MICROS) + k * rest;
  };

  // The first k whose date is on or after the start (dates grow with k).
  let k = Math.trunc((window.start - anchor) / interval);
  while (at(k) < window.start) k++;
  while (at(k - 1) >= window.start) k--;

  const collector = new Collector(window);
  while (collector.offer(at(k))) k++;
  return collector.dates;
}

// ---------------------------------------------------------------------------------------------
// Cron

function cronDates(expression: string, dayOr: boolean, window: Window): ScheduleDate[] {
  const pattern = cronerPattern(expression);
  // Croner runs on a UTC clock here that stands for the wall clock of the schedule's zone.
  const cron = new Cron(pattern, { timezone: "UTC", domAndDow: !dayOr, mode: pattern.split(" ").length === 7 ? "7-part" : "6-part" });
  // nextRun is strictly after its argument: start a millisecond early to include the start itself.
  let cursor = Math.ceil(wallClockMicros(window.zone, window.start) / 1000) - 1;
  const collector = new Collector(window);
  for (;;) {
    const next = cron.nextRun(new Date(cursor));
    if (!next) break;
    cursor = next.getTime();
    const instant = instantOfWallClock(window.zone, cursor * 1000);
    // A wall time in a DST gap can land before the start; Prefect only yields dates on or after it.
    if (instant < window.start) continue;
    if (!collector.offer(instant)) break;
  }
  return collector.dates;
}

// ---------------------------------------------------------------------------------------------
// RRule

/** Prefect's DEFAULT_ANCHOR_DATE for rules without DTSTART. */
const DEFAULT_DTSTART = "DTSTART:20200101T000000";
const DATE_PROPERTIES = new Set(["DTSTART", "RDATE", "EXDATE"]);
/** Where an open-ended rule stops being looked at. */
const LAST_DATE_MS = Date.UTC(9999, 11, 31);

/**
 * The rule with every date made floating (TZID parameters and `Z` suffixes removed) and a DTSTART,
 * so that the rrule package computes on the wall clock, which the schedule's zone then places.
 */
export function floatingRRule(value: string): string {
  const lines = value
    .toUpperCase()
    .split(/\s+/)
    .filter((line) => line.length > 0)
    .map((line) => {
      const colon = line.indexOf(":");
      if (colon === -1) return `RRULE:${line.replace(/UNTIL=(\d{8}(?:T\d{6})?)Z/, "UNTIL=$1")}`;
      const [name = "", ...params] = line.slice(0, colon).split(";");
      const body = line.slice(colon + 1);
      if (DATE_PROPERTIES.has(name)) {
        const kept = params.filter((p) => !p.startsWith("TZID="));
        const dates = body
          .split(",")
          .map((date) => date.replace(/Z$/, ""))
          .join(",");
        return `${[name, ...kept].join(";")}:${dates}`;
      }
      return `${line.slice(0, colon)}:${body.replace(/UNTIL=(\d{8}(?:T\d{6})?)Z/, "UNTIL=$1")}`;
    });
  if (!lines.some((line) => line.startsWith("DTSTART"))) lines.unshift(DEFAULT_DTSTART);
  return lines.join("\n");
}

function rruleDates(value: string, window: Window): ScheduleDate[] {
  let set: import("rrule").RRuleSet;
  try {
    set = rrule.rrulestr(floatingRRule(value), { forceset: true }) as import("rrule").RRuleSet;
  } catch (error) {
    throw new ScheduleError(`Invalid RRule string "${value}": ${error instanceof Error ? error.message : String(error)}`);
  }
  // Occurrences come as wall-clock times on a UTC clock; look from two days before the start's wall
  // clock (more than any UTC offset) up to two days after the end's, in windows that double in
  // length (the rrule package sorts the dates of a rule set only within one query).
  const fromMs = Math.floor(wallClockMicros(window.zone, window.start) / 1000) - 2 * DAY_MS;
  const untilMs = window.end === null ? LAST_DATE_MS : Math.floor(wallClockMicros(window.zone, window.end) / 1000) + 2 * DAY_MS;
  const collector = new Collector(window);
  let windowStart = fromMs;
  let span = DAY_MS;
  let last = Number.NEGATIVE_INFINITY;
  while (windowStart <= untilMs) {
    const windowEnd = Math.min(untilMs, windowStart + span);
    for (const date of set.between(new Date(windowStart), new Date(windowEnd), true)) {
      const wall = date.getTime();
      if (wall <= last) continue;
      last = wall;
      const instant = instantOfWallClock(window.zone, wall * 1000);
      if (instant < window.start) continue;
      if (!collector.offer(instant)) return collector.dates;
    }
    if (windowEnd >= untilMs) break;
    windowStart = windowEnd;
    span *= 2;
  }
  return collector.dates;
}
