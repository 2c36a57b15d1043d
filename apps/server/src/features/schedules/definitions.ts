/**
 * Deployment schedules: Prefect's three kinds of schedule definition (interval, cron, rrule), validated
 * as strictly as Prefect validates them (@prefect/db checks only the stored JSON shape).
 *
 * - Interval: `interval` seconds (> 0), `anchor_date` (default: now), `timezone` (IANA name; "UTC"
 *   when none is given, as Prefect infers it from an ISO anchor date).
 * - Cron: `cron` in croniter's syntax (5 fields; a 6th is seconds and a 7th the year, both at the end;
 *   `@daily`-style aliases, month and weekday names, ranges that wrap, steps, `L`, `#`, `?`),
 *   `timezone` (none by default), `day_or` (day-of-month OR day-of-week when both are restricted).
 *   Random and hashed expressions are refused, as Prefect does. `cronerPattern` translates a valid
 *   expression into the equivalent pattern for croner, which computes times in any time zone across
 *   DST changes.
 * - RRule: an RFC 5545 recurrence rule or rule set, as python-dateutil's `rrulestr` reads it (DTSTART,
 *   RRULE, EXRULE, RDATE, EXDATE lines; at most 6500 characters), `timezone` ("UTC" by default). The
 *   rrule package computes its dates. On create and update, a rule without DTSTART gets one, as
 *   Prefect's action schemas add it (`normalizeRRule`).
 *
 * Time zones are checked with `Intl` (case-sensitive IANA names, aliases accepted).
 */
import { createRequire } from "node:module";
import { isCronSchedule, isRRuleSchedule, type Schedule, ScheduleSchema } from "@prefect/db";
import { CronPattern } from "croner";

const rrule = createRequire(import.meta.url)("rrule") as typeof import("rrule");

// ---------------------------------------------------------------------------------------------
// Time zones

/** Null when `name` is an IANA time zone name; otherwise the reason it is not. */
export function timezoneProblem(name: string): string | null {
  const invalid = `Invalid timezone: "${name}" (specify in IANA tzdata format, for example, America/New_York)`;
  // Offsets ("+05:00") are not zone names, though newer runtimes accept them.
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name)) return invalid;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return invalid;
  }
  // Intl matches names case-insensitively; tzdata (and Prefect) does not.
  if (resolved !== name && resolved.toLowerCase() === name.toLowerCase()) return invalid;
  return null;
}

/** The wall-clock date and time of `instant` in `timeZone`, as a naive UTC-based Date. */
function wallClock(instant: Date, timeZone: string): Date {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? "0");
  return new Date(Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second")));
}

// ---------------------------------------------------------------------------------------------
// Cron (croniter's syntax)

export class ScheduleError extends Error {}

interface CronField {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: Readonly<Record<string, number | "l">>;
}

const MONTH_NAMES = { jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, oct: 10, nov: 11, dec: 12 };
const DAY_NAMES = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

// croniter's field order: minute hour day month weekday [second [year]].
const FIELDS: readonly CronField[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31, names: { l: "l" } },
  { name: "month", min: 1, max: 12, names: MONTH_NAMES },
  { name: "day of week", min: 0, max: 6, names: DAY_NAMES },
  { name: "second", min: 0, max: 59 },
  { name: "year", min: 1970, max: 2099 },
];
const DOM = 2;
const MONTH = 3;
const DOW = 4;

const CRON_ALIASES: Readonly<Record<string, string>> = {
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
  "@daily": "0 0 * * *",
  "@weekly": "0 0 * * 0",
  "@monthly": "0 0 1 * *",
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
};

const WEEKDAY_ALTS = Object.keys(DAY_NAMES).join("|");
const MONTH_ALTS = Object.keys(MONTH_NAMES).join("|");
const SPECIAL_DOW = new RegExp(`^(?:(?<he>(?:(?:${WEEKDAY_ALTS})(?:-(?:${WEEKDAY_ALTS}))?)|(?:(?:${MONTH_ALTS})(?:-(?:${MONTH_ALTS}))?)|\\w+)#|l)(?<last>\\d+)$`);
const RANGE = /^([^-]+)-([^-/]+)(?:\/(\d+))?$/;
const DIGITS = /^\d+$/;
const HASHED = /^(h|r)(\(\d+-\d+\))?(\/\d+)?$/;

/** One field's values: `*`, numbers, `l` (last day of month), and weekdays with an nth (`#n`) or last (`l`) marker. */
interface ExpandedField {
  readonly all: boolean;
  readonly values: ReadonlySet<number>;
  readonly lastDayOfMonth: boolean;
  /** weekday -> occurrences (1-5) or "l" (last), for `2#3` and `l5`. */
  readonly nth: ReadonlyMap<number, ReadonlySet<number | "l">>;
}

/** Substitutions croniter makes (0 -> 1 for day and month, 7 -> 0 for weekday), depending on the field count. */
function valueAlias(value: number, index: number, count: number): number {
  const skip = ([DOM, MONTH].includes(index) && count === 5) || ([MONTH, DOW].includes(index) && count === 6) || ([DOM, MONTH, DOW].includes(index) && count === 7);
  if (skip) return value;
  if ((index === DOM || index === MONTH) && value === 0) return 1;
  if (index === DOW && value === 7) return 0;
  return value;
}

function expandCron(expression: string): { fields: ExpandedField[]; count: number } {
  const invalid = (detail?: string) => new ScheduleError(`Invalid cron string: "${expression}"${detail ? ` (${detail})` : ""}`);
  const lowered = expression.toLowerCase();
  const parts = (CRON_ALIASES[lowered] ?? lowered).split(/\s+/).filter((p) => p.length > 0);
  if (![5, 6, 7].includes(parts.length)) throw invalid("exactly 5, 6 or 7 fields are expected");
  for (const part of parts) {
    const hashed = HASHED.exec(part);
    if (hashed?.[1] === "r") throw new ScheduleError(`Random and Hashed expressions are unsupported, received: "${expression}"`);
    if (hashed) throw invalid("hashed expressions are unsupported");
  }
  const count = parts.length;

  const alpha = (index: number, key: string): number | "l" => {
    const value = FIELDS[index]?.names?.[key];
    if (value === undefined) throw invalid(`"${key}" is not a valid ${FIELDS[index]?.name}`);
    return value;
  };

  const fields = parts.map((raw, index): ExpandedField => {
    const field = FIELDS[index]!;
    let text = raw;
    if (text.includes("?")) {
      if (text !== "?") throw invalid("a question mark cannot be combined with other characters");
      if (index !== DOM && index !== DOW) throw invalid("a question mark is only allowed for the day of month or week");
      text = "*";
    }
    const values = new Set<number>();
    const nth = new Map<number, Set<number | "l">>();
    let star = false;
    let lastDayOfMonth = false;
    const addNth = (day: number, marker: number | "l") => {
      if (!nth.has(day)) nth.set(day, new Set());
      nth.get(day)?.add(marker);
    };

    for (const element of text.split(",")) {
      let e = element;
      let marker: number | "l" | null = null;
      if (index === DOW) {
        const special = SPECIAL_DOW.exec(e);
        if (special?.groups) {
          const { he, last } = special.groups;
          if (he) {
            const n = Number(last);
            if (!(n >= 1 && n <= 5)) throw invalid(`invalid day of week occurrence "${last}"`);
            e = he;
            marker = n;
          } else if (last) {
            e = last;
            marker = "l";
          }
        }
      }

      const starStep = /^\*\/(.+)$/.exec(e);
      let range = RANGE.exec(starStep ? `${field.min}-${field.max}/${starStep[1]}` : e);
      if (!range) {
        const startStep = /^(.+)\/(.+)$/.exec(e);
        if (startStep) range = RANGE.exec(`${startStep[1]}-${field.max}/${startStep[2]}`);
      }

      if (range) {
        let [, low = "", high = "", stepText = "1"] = range;
        if (index === DOM && high === "l") high = "31";
        if (!DIGITS.test(low)) low = String(alpha(index, low));
        if (!DIGITS.test(high)) high = String(alpha(index, high));
        if (!DIGITS.test(low) || !DIGITS.test(high)) throw invalid(`"${element}" is not a valid range`);
        const step = Number(stepText);
        if (step === 0) throw invalid(`step 0 in "${element}"`);
        const lo = valueAlias(Number(low), index, count);
        const hi = valueAlias(Number(high), index, count);
        if (Math.max(lo, hi) > field.max) throw invalid(`"${element}" is out of range for the ${field.name}`);
        const picked: number[] = [];
        if (lo > hi) {
          // A range that wraps (fri-mon, 50-10): to the end of the field, then on from the start.
          for (let v = lo; v <= field.max; v += step) picked.push(v);
          let skip = 0;
          const lastPicked = picked[picked.length - 1];
          if (lastPicked !== undefined) {
            const size = field.max - field.min + 1;
            const skippedAtEnd = field.max - lastPicked;
            if (lastPicked - field.min + step > size && skippedAtEnd < step) skip = step - skippedAtEnd;
          }
          for (let v = field.min + skip; v <= hi; v += step) picked.push(v);
        } else if (lo === hi) {
          // croniter reads "x-x" as the whole cycle.
          for (let v = field.min; v <= field.max; v += step) picked.push(v);
        } else {
          for (let v = lo; v <= hi; v += step) picked.push(v);
        }
        for (const v of picked) {
          values.add(v);
          if (index === DOW && marker !== null && marker !== "l") addNth(v, marker);
        }
        continue;
      }

      if (e.startsWith("-")) throw invalid("negative numbers are not allowed");
      if (e === "*") {
        star = true;
        continue;
      }
      const resolved = DIGITS.test(e) ? Number(e) : alpha(index, e);
      if (resolved === "l") {
        lastDayOfMonth = true;
        continue;
      }
      const v = valueAlias(resolved, index, count);
      if (v < field.min || v > field.max) throw invalid(`"${element}" is out of range for the ${field.name}`);
      values.add(v);
      if (index === DOW && marker !== null) addNth(v, marker);
    }

    const size = field.max - field.min + 1;
    const inRange = [...values].filter((v) => v >= field.min && v <= field.max);
    return { all: star || (inRange.length === size && !lastDayOfMonth && nth.size === 0), values: new Set(inRange), lastDayOfMonth, nth };
  });

  const dow = fields[DOW]!;
  if (dow.nth.size > 0 && !dow.all) {
    const literal = [...dow.values].filter((v) => !dow.nth.has(v));
    if (literal.length > 0 && dow.values.size !== 7) {
      throw invalid("the day of week cannot mix literal values with nth day of week syntax");
    }
  }
  // A field listing every value counts as `*`, except a day field listing every day while the other
  // day field is restricted (croniter keeps those explicit, so day_or still applies).
  const starred = (text: string | undefined) => text === "?" || (text ?? "").includes("*");
  const domStar = starred(parts[DOM]);
  const dowStar = starred(parts[DOW]);
  return {
    count,
    fields: fields.map((f, index) => {
      if ((index === DOM || index === DOW) && f.all && !domStar && !dowStar) return { ...f, all: false };
      return f;
    }),
  };
}

/** Null when `expression` is a cron string Prefect accepts; otherwise the reason it is not. */
export function cronProblem(expression: string): string | null {
  try {
    cronerPattern(expression);
    return null;
  } catch (error) {
    if (error instanceof ScheduleError) return error.message;
    throw error;
  }
}

/**
 * The croner pattern (second minute hour day month weekday [year]) equivalent to a croniter
 * expression; throws ScheduleError for an expression Prefect refuses.
 */
export function cronerPattern(expression: string): string {
  const { fields, count } = expandCron(expression);
  const list = (f: ExpandedField | undefined, extra: string[] = []) => {
    if (!f || f.all) return "*";
    const items = [...f.values].sort((a, b) => a - b).map(String);
    return [...items, ...extra].join(",");
  };
  const dom = fields[DOM]!;
  const dow = fields[DOW]!;
  let dowText: string;
  if (dow.all) dowText = "*";
  else {
    const items: string[] = [];
    for (const v of [...dow.values].sort((a, b) => a - b)) {
      const markers = dow.nth.get(v);
      if (!markers) items.push(String(v));
      else for (const m of markers) items.push(m === "l" ? `${v}L` : `${v}#${m}`);
    }
    dowText = items.join(",");
  }
  const domText = dom.all ? "*" : list(dom, dom.lastDayOfMonth ? ["L"] : []);
  const second = count >= 6 ? list(fields[5]) : "0";
  const pattern = [second, list(fields[0]), list(fields[1]), domText, list(fields[MONTH]), dowText];
  if (count === 7) pattern.push(list(fields[6]));
  const text = pattern.join(" ");
  try {
    new CronPattern(text, undefined, { mode: count === 7 ? "7-part" : "6-part" });
  } catch (error) {
    throw new ScheduleError(`Invalid cron string: "${expression}" (${error instanceof Error ? error.message : String(error)})`);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// RRule (python-dateutil's rrulestr)

export const MAX_RRULE_LENGTH = 6500;

const FREQUENCIES = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"] as const;
type Frequency = (typeof FREQUENCIES)[number];
const WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
const INT_LIST_PARTS = ["BYSETPOS", "BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYEASTER", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND"];
const INTEGER = /^[+-]?\d+$/;
const RFC_DATE = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?)?$/;

interface ParsedRule {
  readonly freq: Frequency;
  readonly interval: number;
  readonly count: number | null;
  /** UNTIL, when given: whether it is in UTC ("Z"). */
  readonly untilUtc: boolean | null;
}

interface ParsedRRule {
  readonly rules: ParsedRule[];
  /** True for anything but one RRULE (with an optional DTSTART): several rules, EXRULE, RDATE, EXDATE. */
  readonly isSet: boolean;
  readonly hasDtstart: boolean;
}

function rruleError(value: string, detail: string): ScheduleError {
  return new ScheduleError(`Invalid RRule string "${value}": ${detail}`);
}

/** Checks one RFC 5545 date or date-time value; returns whether it is in UTC. */
function parseRfcDate(original: string, text: string): boolean {
  const m = RFC_DATE.exec(text);
  if (!m) throw rruleError(original, `invalid date "${text}"`);
  const [, y, mo, d, h = "00", mi = "00", s = "00", z] = m;
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  if (date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    throw rruleError(original, `invalid date "${text}"`);
  }
  return z === "Z";
}

/** Date values with their parameters (TZID=..., VALUE=DATE-TIME / DATE); returns whether they are time-zone aware. */
function parseDateValues(original: string, value: string, params: string[]): boolean {
  let aware = false;
  for (const param of params) {
    if (param.startsWith("TZID=")) {
      // Lines are upper-cased before parsing (as dateutil does); find the zone's own spelling.
      const zone = /TZID=([^;:]+)/i.exec(original.slice(original.toUpperCase().indexOf(param)))?.[1] ?? param.slice(5);
      if (timezoneProblem(zone)) throw rruleError(original, `unknown TZID "${zone}"`);
      aware = true;
    } else if (param !== "VALUE=DATE-TIME" && param !== "VALUE=DATE") throw rruleError(original, `unsupported parm: ${param}`);
  }
  for (const item of value.split(",")) if (parseRfcDate(original, item)) aware = true;
  return aware;
}

function parseRuleLine(original: string, line: string, dtstartAware: boolean): ParsedRule {
  let value = line;
  if (line.includes(":")) {
    const pieces = line.split(":");
    if (pieces.length !== 2 || pieces[0] !== "RRULE") throw rruleError(original, "unknown parameter name");
    value = pieces[1] ?? "";
  }
  let freq: Frequency | null = null;
  let interval = 1;
  let count: number | null = null;
  let untilUtc: boolean | null = null;
  for (const pair of value.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) throw rruleError(original, `"${pair}" is not NAME=VALUE`);
    const [name = "", v = ""] = kv;
    if (name === "FREQ") {
      if (!(FREQUENCIES as readonly string[]).includes(v)) throw rruleError(original, `invalid 'FREQ': ${v}`);
      freq = v as Frequency;
    } else if (name === "INTERVAL" || name === "COUNT") {
      if (!INTEGER.test(v)) throw rruleError(original, `invalid '${name}': ${v}`);
      if (name === "INTERVAL") {
        interval = Number(v);
        if (interval < 1) throw rruleError(original, `invalid 'INTERVAL': ${v} (must be at least 1)`);
      } else count = Number(v);
    } else if (name === "UNTIL") {
      untilUtc = parseRfcDate(original, v);
    } else if (name === "WKST") {
      if (!WEEKDAYS.includes(v)) throw rruleError(original, `invalid 'WKST': ${v}`);
    } else if (name === "BYDAY" || name === "BYWEEKDAY") {
      for (const day of v.split(",")) {
        const m = /^([+-]?\d+)?([A-Z]+)$/.exec(day);
        if (!m || !WEEKDAYS.includes(m[2] ?? "")) throw rruleError(original, `invalid '${name}': ${v}`);
      }
    } else if (INT_LIST_PARTS.includes(name)) {
      const numbers = v.split(",");
      if (!numbers.every((n) => INTEGER.test(n))) throw rruleError(original, `invalid '${name}': ${v}`);
      if (name === "BYSETPOS" && numbers.some((n) => Number(n) === 0 || Math.abs(Number(n)) > 366)) {
        throw rruleError(original, "bysetpos must be between 1 and 366, or between -366 and -1");
      }
    } else throw rruleError(original, `unknown parameter '${name}'`);
  }
  if (!freq) throw rruleError(original, "FREQ is required");
  if (untilUtc !== null && untilUtc !== dtstartAware) {
    throw rruleError(original, "RRULE UNTIL values must be specified in UTC when DTSTART is timezone-aware");
  }
  return { freq, interval, count, untilUtc };
}

function parseRRule(original: string): ParsedRRule {
  const s = original.toUpperCase();
  if (!s.trim()) throw rruleError(original, "empty string");
  const lines = s.split(/\s+/).filter((l) => l.length > 0);
  if (lines.length === 1 && (!s.includes(":") || s.trimStart().startsWith("RRULE:"))) {
    return { rules: [parseRuleLine(original, lines[0] ?? "", false)], isSet: false, hasDtstart: false };
  }
  const rules: string[] = [];
  const exrules: string[] = [];
  let dates = 0;
  let dtstartAware = false;
  let hasDtstart = false;
  for (const line of lines) {
    const colon = line.indexOf(":");
    const [name = "", ...params] = (colon === -1 ? "RRULE" : line.slice(0, colon)).split(";");
    const value = colon === -1 ? line : line.slice(colon + 1);
    if (!name) throw rruleError(original, "empty property name");
    if (name === "RRULE" || name === "EXRULE") {
      if (params.length > 0) throw rruleError(original, `unsupported ${name} parm: ${params[0]}`);
      (name === "RRULE" ? rules : exrules).push(value);
    } else if (name === "RDATE") {
      for (const p of params) if (p !== "VALUE=DATE-TIME") throw rruleError(original, `unsupported RDATE parm: ${p}`);
      parseDateValues(original, value, []);
      dates++;
    } else if (name === "EXDATE") {
      parseDateValues(original, value, params);
      dates++;
    } else if (name === "DTSTART") {
      if (value.includes(",")) throw rruleError(original, `Multiple DTSTART values specified: ${value}`);
      dtstartAware = parseDateValues(original, value, params);
      hasDtstart = true;
    } else throw rruleError(original, `unsupported property: ${name}`);
  }
  const isSet = rules.length > 1 || exrules.length > 0 || dates > 0;
  if (!isSet && rules.length === 0) throw rruleError(original, "no RRULE given");
  const parsed = [...rules, ...exrules].map((r) => parseRuleLine(original, r, dtstartAware));
  return { rules: parsed.slice(0, rules.length), isSet, hasDtstart };
}

/** Null when `value` is an RRule string Prefect accepts; otherwise the reason it is not. */
export function rruleProblem(value: string): string | null {
  try {
    parseRRule(value);
  } catch (error) {
    if (error instanceof ScheduleError) return error.message;
    throw error;
  }
  if (value.length > MAX_RRULE_LENGTH) return `Invalid RRule string "${value.slice(0, 40)}...": max length is ${MAX_RRULE_LENGTH}, got ${value.length}`;
  try {
    rrule.rrulestr(value, { forceset: true });
  } catch (error) {
    return `Invalid RRule string "${value}": ${error instanceof Error ? error.message : String(error)}`;
  }
  return null;
}

/** RRule's implicit anchor when a rule has no DTSTART. */
const DEFAULT_RRULE_ANCHOR = Date.UTC(2020, 0, 1);

const rfcLocal = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, "");

/**
 * Gives a rule without DTSTART an explicit one, as Prefect's action schemas do: for SECONDLY and
 * MINUTELY rules without COUNT, the latest instant at or before `at` (wall clock in `timezone`) that
 * is in phase with 2020-01-01T00:00:00; for anything else, 2020-01-01T00:00:00 itself. The DTSTART is
 * floating (no offset): the schedule's timezone places it. Strings with a DTSTART, and invalid ones,
 * are returned unchanged.
 */
export function normalizeRRule(value: string, timezone: string | null | undefined, at: Date = new Date()): string {
  if (value.toUpperCase().includes("DTSTART")) return value;
  let parsed: ParsedRRule;
  try {
    parsed = parseRRule(value);
  } catch {
    return value;
  }
  const prepend = (ms: number) => `DTSTART:${rfcLocal(ms)}\n${value}`;
  const rule = parsed.rules[0];
  if (parsed.isSet || !rule || rule.count !== null || (rule.freq !== "SECONDLY" && rule.freq !== "MINUTELY")) return prepend(DEFAULT_RRULE_ANCHOR);
  const zone = timezone && !timezoneProblem(timezone) ? timezone : "UTC";
  const elapsed = (wallClock(at, zone).getTime() - DEFAULT_RRULE_ANCHOR) / 1000;
  if (elapsed <= 0) return prepend(DEFAULT_RRULE_ANCHOR);
  const period = (rule.freq === "SECONDLY" ? 1 : 60) * rule.interval;
  return prepend(DEFAULT_RRULE_ANCHOR + Math.floor(elapsed / period) * period * 1000);
}

// ---------------------------------------------------------------------------------------------
// Definitions

/** What is wrong with the schedule's time zone, cron string or rrule, field by field. */
function scheduleProblems(schedule: Schedule): { field: string; problem: string }[] {
  const problems: { field: string; problem: string }[] = [];
  const check = (field: string, problem: string | null) => {
    if (problem) problems.push({ field, problem });
  };
  if (isCronSchedule(schedule)) check("cron", cronProblem(schedule.cron));
  if (isRRuleSchedule(schedule)) check("rrule", rruleProblem(schedule.rrule));
  if (schedule.timezone) check("timezone", timezoneProblem(schedule.timezone));
  return problems;
}

/** A schedule definition in the stored shape, validated as Prefect validates it. */
export const ValidScheduleSchema = ScheduleSchema.superRefine((schedule, ctx) => {
  for (const { field, problem } of scheduleProblems(schedule)) ctx.addIssue({ code: "custom", message: problem, path: [field] });
});

/**
 * A schedule as Prefect's create and update actions take it: validated, and an rrule without DTSTART
 * given one (`normalizeRRule`).
 */
export const NormalizedScheduleSchema = ValidScheduleSchema.transform((s): Schedule => (isRRuleSchedule(s) ? { ...s, rrule: normalizeRRule(s.rrule, s.timezone) } : s));
