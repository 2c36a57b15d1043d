/**
 * Small helpers shared by the rules: UUIDv7 ids (Prefect mints its states' ids as uuid7, and a
 * state's id doubles as the id of its event), version comparison (client and API versions gate
 * compatibility rules), Prefect's clamped Poisson jitter, and Python's `isoformat` rendering of
 * timestamps (event resource labels carry it).
 */
import { fromMicros, type Timestamp, toMicros, uuid7 } from "@prefect/db";

export { uuid7 };

interface ParsedVersion {
  readonly release: readonly number[];
  /** 0 for dev releases, 1 for alpha, 2 for beta, 3 for release candidates, 4 for final releases. */
  readonly phase: number;
  readonly serial: number;
}

const VERSION = /^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|rc|c|dev)[-_.]?(\d*))?/i;
const PHASES: Record<string, number> = { dev: 0, a: 1, alpha: 1, b: 2, beta: 2, rc: 3, c: 3 };

function parseVersion(version: string): ParsedVersion | null {
  const match = VERSION.exec(version.trim());
  if (!match) return null;
  const release = match[1]!.split(".").map(Number);
  const phase = match[2] ? (PHASES[match[2].toLowerCase()] ?? 4) : 4;
  return { release, phase, serial: match[3] ? Number(match[3]) : 0 };
}

/**
 * Compares two PEP 440-style versions ("3.4.11", "3.0.0rc20", "0.8.4"): negative when `a` is older.
 * Unparseable versions compare as older than any parseable one.
 */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return pa ? 1 : pb ? -1 : 0;
  const length = Math.max(pa.release.length, pb.release.length);
  for (let i = 0; i < length; i++) {
    const diff = (pa.release[i] ?? 0) - (pb.release[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return pa.phase - pb.phase || pa.serial - pb.serial;
}

/** A source of uniform random numbers in [0, 1). */
export type RandomSource = () => number;

function poissonInterval(averageInterval: number, lower: number, upper: number, random: RandomSource): number {
  const u = lower + (upper - lower) * random();
  return -Math.log(Math.max(1 - u, 1e-10)) * averageInterval;
}

const exponentialCdf = (x: number, averageInterval: number) => 1 - Math.exp(-x / averageInterval);

function lowerClampMultiple(k: number): number {
  if (k >= 50) return 0;
  return Math.log2(Math.max(2 ** k / (2 ** k - 1), 1e-10));
}

/**
 * Prefect's `clamped_poisson_interval`: an exponentially distributed interval with mean
 * `averageInterval`, bounded above by `averageInterval * (1 + clampingFactor)` and below so that the
 * average stays about the same.
 */
export function clampedPoissonInterval(averageInterval: number, clampingFactor = 0.3, random: RandomSource = Math.random): number {
  if (clampingFactor <= 0) throw new RangeError("`clamping_factor` must be >= 0.");
  const upperMultiple = 1 + clampingFactor;
  const upperBound = averageInterval * upperMultiple;
  const lowerBound = Math.max(0, averageInterval * lowerClampMultiple(upperMultiple));
  return poissonInterval(averageInterval, exponentialCdf(lowerBound, averageInterval), exponentialCdf(upperBound, averageInterval), random);
}

/** Python's `datetime.isoformat()` of a UTC timestamp: `+00:00`, and no fraction when it is zero. */
export function isoformat(ts: Timestamp): string {
  const micros = toMicros(ts);
  const canonical = fromMicros(micros);
  const fraction = canonical.slice(20, 26);
  return `${canonical.slice(0, 19)}${fraction === "000000" ? "" : `.${fraction}`}+00:00`;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A deep copy of JSON-like data. */
export function cloneJson<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}
