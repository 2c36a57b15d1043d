/**
 * Timestamps are ISO 8601 strings in one canonical form, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC,
 * microseconds), everywhere in this package: in domain objects, in SQLite (as text, so that text
 * order is time order) and as what PostgreSQL's timestamptz columns are read back into.
 *
 * Microseconds matter: Prefect clients send them, run states of one run must have distinct
 * timestamps, and the task-run recorder orders a run's states by timestamp, often less than a
 * millisecond apart. A JavaScript Date would drop them.
 */
import { z } from "zod";

export type Timestamp = string & { readonly __timestamp: unique symbol };

const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Microseconds since the Unix epoch (exact: well inside 2^53 for any plausible date). */
export function toMicros(ts: Timestamp | string): number {
  const m = ISO.exec(ts);
  if (!m) throw new RangeError(`not an ISO 8601 timestamp: ${JSON.stringify(ts)}`);
  const [, y, mo, d, h, mi, s = "0", frac = "", zone] = m;
  const millis = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(millis)) throw new RangeError(`not a valid date: ${JSON.stringify(ts)}`);
  const micros = Number(frac.padEnd(6, "0").slice(0, 6));
  let offsetMinutes = 0;
  if (zone && zone !== "Z" && zone !== "z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || "0"));
  }
  return (millis - offsetMinutes * 60_000) * 1000 + micros;
}

export function fromMicros(micros: number): Timestamp {
  const whole = Math.floor(micros);
  const seconds = Math.floor(whole / 1_000_000);
  const fraction = whole - seconds * 1_000_000;
  const d = new Date(seconds * 1000);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) throw new RangeError(`timestamp out of range: ${micros}`);
  return `${pad(year, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())}.${pad(fraction, 6)}Z` as Timestamp;
}

/** Normalises any ISO 8601 date-time (any offset, any precision) to the canonical form. */
export function toTimestamp(value: string | Date): Timestamp {
  if (value instanceof Date) return fromMicros(value.getTime() * 1000);
  if (CANONICAL.test(value)) return value as Timestamp;
  return fromMicros(toMicros(value));
}

let lastNow = 0;
/**
 * The current time with microsecond resolution, strictly increasing within this process so that two
 * calls never return the same instant.
 */
export function now(): Timestamp {
  let micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  if (micros <= lastNow) micros = lastNow + 1;
  lastNow = micros;
  return fromMicros(micros);
}

export function addSeconds(ts: Timestamp | string, seconds: number): Timestamp {
  return fromMicros(toMicros(ts) + Math.round(seconds * 1_000_000));
}

/** `a - b` in seconds. */
export function secondsBetween(a: Timestamp | string, b: Timestamp | string): number {
  return (toMicros(a) - toMicros(b)) / 1_000_000;
}

export function toDate(ts: Timestamp | string): Date {
  return new Date(Math.floor(toMicros(ts) / 1000));
}

/** Accepts any ISO 8601 date-time string (or Date) and yields the canonical timestamp. */
export const TimestampSchema = z
  .union([z.string(), z.date()])
  .transform((value, ctx): Timestamp => {
    try {
      return toTimestamp(value);
    } catch {
      ctx.addIssue({ code: "custom", message: "Input should be a valid datetime" });
      return z.NEVER;
    }
  });
