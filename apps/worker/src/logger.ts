/**
 * The worker's own log (pino), at PREFECT_LOGGING_LEVEL (INFO by default; PREFECT_WORKER_DEBUG_MODE=true
 * turns on DEBUG for the worker alone, as in Prefect). On a terminal's stderr it is written as
 * Prefect's console lines (`12:00:00.000 | INFO    | prefect.workers.process - message`);
 * PREFECT_WORKER_LOG_FORMAT=json keeps pino's JSON lines, for log collectors.
 */
import { Writable } from "node:stream";
import { pino } from "pino";

export type WorkerLogger = pino.Logger;

const LEVELS: Record<string, pino.LevelWithSilent> = {
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
  trace: "trace",
  silent: "silent",
};

/** The level the environment asks for; throws for a value that is not a level. */
export function logLevelFrom(env: NodeJS.ProcessEnv): pino.LevelWithSilent {
  const debug = env.PREFECT_WORKER_DEBUG_MODE?.trim().toLowerCase();
  if (debug && ["true", "1", "yes", "on"].includes(debug)) return "debug";
  const raw = env.PREFECT_LOGGING_LEVEL?.trim();
  if (!raw) return "info";
  const level = LEVELS[raw.toLowerCase()];
  if (!level) throw new Error(`PREFECT_LOGGING_LEVEL must be a log level such as INFO or DEBUG (got ${JSON.stringify(raw)})`);
  return level;
}

/** The log formats PREFECT_WORKER_LOG_FORMAT may name. */
export type LogFormat = "text" | "json";

export function logFormatFrom(env: NodeJS.ProcessEnv): LogFormat {
  const raw = env.PREFECT_WORKER_LOG_FORMAT?.trim().toLowerCase();
  if (!raw || raw === "text") return "text";
  if (raw === "json") return "json";
  throw new Error(`PREFECT_WORKER_LOG_FORMAT must be text or json (got ${JSON.stringify(env.PREFECT_WORKER_LOG_FORMAT)})`);
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARNING", 50: "ERROR", 60: "CRITICAL" };
/** Fields every pino line has, left out of a text line's extras. */
const STANDARD_FIELDS = new Set(["level", "time", "pid", "hostname", "name", "msg"]);

const pad = (n: number, width = 2) => String(n).padStart(width, "0");
/** `HH:MM:SS.mmm` in local time, as Prefect's console lines. */
const localTime = (d: Date) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;

/** One pino JSON line as Prefect's console handler would print it, extra fields after the message. */
export function formatLogLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof record.time === "number" ? localTime(new Date(record.time)) : "--:--:--.---";
  const level = (LEVEL_NAMES[Number(record.level)] ?? String(record.level)).padEnd(7);
  const extras = Object.entries(record)
    .filter(([key]) => !STANDARD_FIELDS.has(key))
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  const message = typeof record.msg === "string" ? record.msg : "";
  return `${time} | ${level} | ${String(record.name ?? "")} - ${message}${extras.length > 0 ? ` (${extras.join(", ")})` : ""}`;
}

/** A stream taking pino's JSON lines and writing them to `out` as text lines. */
function textStream(out: NodeJS.WritableStream): Writable {
  let pending = "";
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.length > 0) out.write(`${formatLogLine(line)}\n`);
      callback();
    },
  });
}

export function createLogger(level: pino.LevelWithSilent, destination: NodeJS.WritableStream | number = 2, format: LogFormat = "json"): WorkerLogger {
  const options = { name: "prefect.workers.process", level, base: { pid: process.pid } };
  if (format === "text") return pino(options, textStream(typeof destination === "number" ? (destination === 1 ? process.stdout : process.stderr) : destination));
  return pino(options, typeof destination === "number" ? pino.destination({ dest: destination, sync: true }) : destination);
}
