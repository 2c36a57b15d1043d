/**
 * Deployment schedules as they are stored: Prefect's three kinds of schedule (interval, cron, rrule) in
 * Prefect's JSON shape, with Prefect's defaults filled in.
 *
 * - Interval: `interval` seconds (> 0), `anchor_date` (default: now), `timezone` ("UTC" when none is given).
 * - Cron: `cron`, `timezone` (none by default), `day_or` (true by default).
 * - RRule: `rrule`, `timezone` ("UTC" by default).
 *
 * Only the shape is checked here: whether a cron string, an rrule or a time zone means something, and
 * the dates a schedule fires at, are the scheduler's business (the server's schedules feature).
 */
import { z } from "zod";
import { now, type Timestamp, TimestampSchema } from "./timestamps.js";

export interface IntervalSchedule {
  /** Seconds. */
  interval: number;
  anchor_date: Timestamp;
  timezone: string | null;
}

export interface CronSchedule {
  cron: string;
  timezone: string | null;
  day_or: boolean;
}

export interface RRuleSchedule {
  rrule: string;
  timezone: string | null;
}

/** One of Prefect's schedule objects, as stored and as the API shows it. */
export type Schedule = IntervalSchedule | CronSchedule | RRuleSchedule;

export const isIntervalSchedule = (s: Schedule): s is IntervalSchedule => "interval" in s;
export const isCronSchedule = (s: Schedule): s is CronSchedule => "cron" in s;
export const isRRuleSchedule = (s: Schedule): s is RRuleSchedule => "rrule" in s;

const timezoneField = z.string().nullish();

const IntervalScheduleSchema = z
  .strictObject({
    interval: z.number({ message: "interval must be a number of seconds" }).positive({ message: "interval must be positive" }),
    anchor_date: TimestampSchema.optional(),
    timezone: timezoneField,
  })
  .transform((s): IntervalSchedule => ({ interval: s.interval, anchor_date: s.anchor_date ?? now(), timezone: s.timezone ?? "UTC" }));

const CronScheduleSchema = z
  .strictObject({
    cron: z.string(),
    timezone: timezoneField,
    day_or: z.boolean().default(true),
  })
  .transform((s): CronSchedule => ({ cron: s.cron, timezone: s.timezone ?? null, day_or: s.day_or }));

const RRuleScheduleSchema = z
  .strictObject({
    rrule: z.string(),
    timezone: timezoneField,
  })
  .transform((s): RRuleSchedule => ({ rrule: s.rrule, timezone: s.timezone === undefined ? "UTC" : s.timezone }));

/** Input of an interval, cron or rrule schedule (told apart by which of those keys it has). */
export type ScheduleInput =
  | z.input<typeof IntervalScheduleSchema>
  | z.input<typeof CronScheduleSchema>
  | z.input<typeof RRuleScheduleSchema>;

const kindOf = (value: unknown) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  if ("interval" in value) return IntervalScheduleSchema;
  if ("cron" in value) return CronScheduleSchema;
  if ("rrule" in value) return RRuleScheduleSchema;
  return null;
};

/** A schedule in its stored shape (Prefect's defaults filled in); the values themselves are not checked. */
export const ScheduleSchema = z.custom<ScheduleInput>().transform((value, ctx): Schedule => {
  const schema = kindOf(value);
  if (!schema) {
    ctx.addIssue({ code: "custom", message: "Input should be an interval ({interval}), cron ({cron}) or rrule ({rrule}) schedule" });
    return z.NEVER;
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    for (const issue of result.error.issues) ctx.addIssue({ code: "custom", message: issue.message, path: issue.path.map((p) => (typeof p === "symbol" ? String(p) : p)) });
    return z.NEVER;
  }
  return result.data;
});
