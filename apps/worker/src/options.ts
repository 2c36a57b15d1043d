/**
 * The worker's command line (Prefect's `prefect worker start`), validated with zod. Defaults come
 * from Prefect's settings: PREFECT_WORKER_QUERY_SECONDS (10), PREFECT_WORKER_PREFETCH_SECONDS (10),
 * PREFECT_WORKER_HEARTBEAT_SECONDS (30), PREFECT_API_URL (http://127.0.0.1:4200/api).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";

export interface WorkerOptions {
  /** The work pool to take runs from. */
  readonly pool: string;
  /** Only these queues of the pool; every queue when empty. */
  readonly queues: readonly string[];
  readonly name: string;
  /** Most flow runs this worker runs at once; null: no limit. */
  readonly limit: number | null;
  readonly pollingIntervalSeconds: number;
  readonly prefetchSeconds: number;
  readonly heartbeatIntervalSeconds: number;
  /** What flow run processes get as PREFECT_API_URL. */
  readonly apiUrl: string;
  readonly createPoolIfNotFound: boolean;
  /** Poll once, wait for the runs taken to finish, and stop. */
  readonly runOnce: boolean;
  /** How long a stopping worker waits for its runs to finish before it stops them and hands them back. */
  readonly shutdownGraceSeconds: number;
  /** How long a process gets between SIGTERM and SIGKILL (cancellation, shutdown). */
  readonly killGraceSeconds: number;
}

export const DEFAULT_API_URL = "http://127.0.0.1:4200/api";

export const HELP = `Usage: pnpm worker --pool NAME [options]

Starts a process worker: it takes the work pool's scheduled flow runs straight from the database
(configured as for the server: PREFECT_DATABASE_BACKEND, PREFECT_DATABASE_PATH, PREFECT_DATABASE_URL,
PREFECT_SERVER_DATABASE_CONNECTION_URL, ...) and runs each as a local process.

Options:
  -p, --pool NAME                  The work pool the worker polls (required).
  -q, --queue NAME                 A work queue of the pool to take runs from (repeatable;
                                   --work-queue too). Default: every queue of the pool.
  -n, --name NAME                  The worker's name. Default: ProcessWorker <random uuid>.
  -l, --limit N                    Most flow runs this worker runs at once. Default: no limit.
      --polling-interval SECONDS   Seconds between polls for scheduled runs
                                   [PREFECT_WORKER_QUERY_SECONDS, default 10].
      --prefetch-seconds SECONDS   Take runs due within this many seconds
                                   [PREFECT_WORKER_PREFETCH_SECONDS, default 10].
      --heartbeat-interval SECONDS Seconds between worker heartbeats
                                   [PREFECT_WORKER_HEARTBEAT_SECONDS, default 30].
      --api-url URL                PREFECT_API_URL for the flow run processes
                                   [PREFECT_API_URL, default ${DEFAULT_API_URL}].
      --create-pool-if-not-found   Create the pool (type process) when it does not exist (default).
      --no-create-pool-if-not-found
                                   Wait for the pool to be created instead.
      --shutdown-grace-seconds S   On SIGTERM/SIGINT, how long running flow runs may go on before
                                   they are stopped and rescheduled (default 30).
      --run-once                   Poll once, wait for the runs taken to finish, then stop.
  -h, --help                       Show this help.

SIGTERM or SIGINT stops taking runs and lets running ones finish for the grace period; a second
signal (or the end of the grace period) stops them and hands their runs back to the pool.

The worker's log goes to stderr as Prefect's console lines at PREFECT_LOGGING_LEVEL (INFO);
PREFECT_WORKER_LOG_FORMAT=json writes JSON lines instead.
`;

export type ParseResult = { kind: "help" } | { kind: "options"; options: WorkerOptions } | { kind: "error"; message: string };

const seconds = (what: string) =>
  z.coerce
    .number({ message: `${what} must be a number of seconds` })
    .refine((v) => Number.isFinite(v) && v > 0, { message: `${what} must be a number of seconds greater than 0` });

const Options = z.object({
  pool: z
    .string({ message: "Missing required option '--pool' / '-p'." })
    .min(1, { message: "--pool must not be empty" })
    .refine((v) => !/[/%&><]/.test(v), { message: "--pool must not contain / % & > or <" }),
  queues: z.array(z.string().min(1, { message: "--queue must not be empty" })),
  name: z
    .string()
    .min(1, { message: "--name must not be empty" })
    .refine((v) => !v.includes("/") && !v.includes("%"), { message: "Worker name cannot contain '/' or '%'" })
    .optional(),
  limit: z.coerce
    .number({ message: "--limit must be a whole number" })
    .int({ message: "--limit must be a whole number" })
    .min(1, { message: "--limit must be at least 1" })
    .optional(),
  pollingIntervalSeconds: seconds("--polling-interval (PREFECT_WORKER_QUERY_SECONDS)"),
  prefetchSeconds: z.coerce
    .number({ message: "--prefetch-seconds (PREFECT_WORKER_PREFETCH_SECONDS) must be a number of seconds" })
    .refine((v) => Number.isFinite(v) && v >= 0, { message: "--prefetch-seconds (PREFECT_WORKER_PREFETCH_SECONDS) must be 0 or more seconds" }),
  heartbeatIntervalSeconds: seconds("--heartbeat-interval (PREFECT_WORKER_HEARTBEAT_SECONDS)"),
  apiUrl: z.url({ message: "--api-url (PREFECT_API_URL) must be a URL such as http://127.0.0.1:4200/api" }),
  createPoolIfNotFound: z.boolean(),
  runOnce: z.boolean(),
  shutdownGraceSeconds: z.coerce
    .number({ message: "--shutdown-grace-seconds must be a number of seconds" })
    .refine((v) => Number.isFinite(v) && v >= 0, { message: "--shutdown-grace-seconds must be 0 or more seconds" }),
});

interface OptionSpec {
  readonly key: "pool" | "queues" | "name" | "limit" | "pollingIntervalSeconds" | "prefetchSeconds" | "heartbeatIntervalSeconds" | "apiUrl" | "shutdownGraceSeconds";
}

const VALUE_OPTIONS: Record<string, OptionSpec> = {
  "--pool": { key: "pool" },
  "-p": { key: "pool" },
  "--queue": { key: "queues" },
  "--work-queue": { key: "queues" },
  "-q": { key: "queues" },
  "--name": { key: "name" },
  "-n": { key: "name" },
  "--limit": { key: "limit" },
  "-l": { key: "limit" },
  "--polling-interval": { key: "pollingIntervalSeconds" },
  "--prefetch-seconds": { key: "prefetchSeconds" },
  "--heartbeat-interval": { key: "heartbeatIntervalSeconds" },
  "--api-url": { key: "apiUrl" },
  "--shutdown-grace-seconds": { key: "shutdownGraceSeconds" },
};

const BOOLEAN_VALUES: Record<string, boolean> = { true: true, false: false, "1": true, "0": false, yes: true, no: false, on: true, off: false };

const env = (environment: NodeJS.ProcessEnv, name: string): string | undefined => {
  const value = environment[name]?.trim();
  return value ? value : undefined;
};

/** Parses the worker's arguments (without `node` and the script). */
export function parseArguments(argv: readonly string[], environment: NodeJS.ProcessEnv = process.env): ParseResult {
  const raw: Partial<Record<Exclude<OptionSpec["key"], "queues">, string>> = {};
  const queues: string[] = [];
  const flags = { createPoolIfNotFound: true, runOnce: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") return { kind: "help" };
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (flag === "--run-once" || flag === "--create-pool-if-not-found" || flag === "--no-create-pool-if-not-found") {
      let value = true;
      if (inline !== undefined) {
        const parsed = BOOLEAN_VALUES[inline.toLowerCase()];
        if (parsed === undefined) return { kind: "error", message: `${flag} takes true or false (got ${JSON.stringify(inline)})` };
        value = parsed;
      }
      if (flag === "--run-once") flags.runOnce = value;
      else flags.createPoolIfNotFound = flag === "--no-create-pool-if-not-found" ? !value : value;
      continue;
    }
    const spec = VALUE_OPTIONS[flag];
    if (!spec) return { kind: "error", message: arg.startsWith("-") ? `Unknown option ${JSON.stringify(flag)}.` : `Unexpected argument ${JSON.stringify(arg)}.` };
    let value = inline;
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || (value.startsWith("-") && value.length > 1 && Number.isNaN(Number(value)))) return { kind: "error", message: `Option ${flag} needs a value.` };
      i++;
    }
    if (spec.key === "queues") queues.push(value);
    else if (raw[spec.key] !== undefined) return { kind: "error", message: `Option ${flag} was given more than once.` };
    else raw[spec.key] = value;
  }

  const parsed = Options.safeParse({
    pool: raw.pool,
    queues,
    name: raw.name,
    limit: raw.limit,
    pollingIntervalSeconds: raw.pollingIntervalSeconds ?? env(environment, "PREFECT_WORKER_QUERY_SECONDS") ?? "10",
    prefetchSeconds: raw.prefetchSeconds ?? env(environment, "PREFECT_WORKER_PREFETCH_SECONDS") ?? "10",
    heartbeatIntervalSeconds: raw.heartbeatIntervalSeconds ?? env(environment, "PREFECT_WORKER_HEARTBEAT_SECONDS") ?? "30",
    apiUrl: raw.apiUrl ?? env(environment, "PREFECT_API_URL") ?? DEFAULT_API_URL,
    createPoolIfNotFound: flags.createPoolIfNotFound,
    runOnce: flags.runOnce,
    shutdownGraceSeconds: raw.shutdownGraceSeconds ?? "30",
  });
  if (!parsed.success) return { kind: "error", message: parsed.error.issues[0]?.message ?? "Invalid options." };
  const o = parsed.data;
  return {
    kind: "options",
    options: {
      pool: o.pool,
      queues: [...new Set(o.queues)],
      name: o.name ?? defaultWorkerName(),
      limit: o.limit ?? null,
      pollingIntervalSeconds: o.pollingIntervalSeconds,
      prefetchSeconds: o.prefetchSeconds,
      heartbeatIntervalSeconds: o.heartbeatIntervalSeconds,
      apiUrl: o.apiUrl,
      createPoolIfNotFound: o.createPoolIfNotFound,
      runOnce: o.runOnce,
      shutdownGraceSeconds: o.shutdownGraceSeconds,
      killGraceSeconds: 30,
    },
  };
}

/** Prefect's default worker name: the worker class and a random UUID. */
export function defaultWorkerName(): string {
  return `ProcessWorker ${randomUUID()}`;
}
