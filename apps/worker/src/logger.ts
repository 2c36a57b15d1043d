/**
 * The worker's own log: structured JSON lines on stderr (pino), at PREFECT_LOGGING_LEVEL (INFO by
 * default; PREFECT_WORKER_DEBUG_MODE=true turns on DEBUG for the worker alone, as in Prefect).
 */
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

export function createLogger(level: pino.LevelWithSilent, destination: NodeJS.WritableStream | number = 2): WorkerLogger {
  const stream = typeof destination === "number" ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino({ name: "prefect.workers.process", level, base: { pid: process.pid } }, stream);
}
