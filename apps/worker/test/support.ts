/** Test support: flow runs to run, workers in this process or as real processes, and waiting. */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { addSeconds, type Database, type DatabaseConfig, type Deployment, type Flow, type FlowRun, type FlowRunCreate, now, type WorkPool } from "@prefect/db";
import { createLogger, logLevelFrom } from "../src/logger.js";
import type { WorkerOptions } from "../src/options.js";
import { defaultBaseJobTemplate } from "../src/job-configuration.js";
import { ProcessWorker } from "../src/worker.js";
import WebSocket from "ws";

export const WORKER_MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");
/** The server as `pnpm start` runs it (built). */
export const SERVER_MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "server", "dist", "main.js");

/** Polls `probe` (every `intervalMs`) until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    last = value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

let counter = 0;

export function workerOptions(overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  counter += 1;
  return {
    pool: "test-pool",
    queues: [],
    name: `test-worker-${counter}`,
    limit: null,
    pollingIntervalSeconds: 0.1,
    prefetchSeconds: 0,
    heartbeatIntervalSeconds: 5,
    apiUrl: "http://127.0.0.1:4200/api",
    createPoolIfNotFound: true,
    runOnce: false,
    shutdownGraceSeconds: 5,
    killGraceSeconds: 2,
    ...overrides,
  };
}

export interface RunningWorker {
  readonly worker: ProcessWorker;
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** The workers' own log in tests: silent unless PREFECT_LOGGING_LEVEL asks for one. */
const testLogLevel = () => (process.env.PREFECT_LOGGING_LEVEL ? logLevelFrom(process.env) : "silent");

/** A worker in this process, with its output discarded. */
export function startWorker(db: Database, overrides: Partial<WorkerOptions> = {}, env: NodeJS.ProcessEnv = process.env): RunningWorker {
  const worker = new ProcessWorker(db, workerOptions(overrides), { log: createLogger(testLogLevel()), env, stdout: null, stderr: null, hostname: "test-host" });
  const done = worker.run();
  return {
    worker,
    done,
    async stop() {
      worker.stop();
      await done;
    },
  };
}

export interface Fixture {
  readonly pool: WorkPool;
  readonly flow: Flow;
  deployment(command: string, input?: Partial<Parameters<Database["deployments"]["create"]>[0]>): Promise<Deployment>;
  run(deployment: Deployment, input?: Partial<FlowRunCreate>): Promise<FlowRun>;
}

/** A `process` pool named `test-pool` (or `name`), a flow, and helpers to add deployments and due runs. */
export async function fixture(db: Database, name = "test-pool", pool: Partial<Parameters<Database["workPools"]["create"]>[0]> = {}): Promise<Fixture> {
  const created = await db.workPools.create({ name, type: "process", base_job_template: defaultBaseJobTemplate(), ...pool });
  const flow = (await db.flows.create({ name: `flow-of-${name}` })).row;
  let deployments = 0;
  return {
    pool: created,
    flow,
    async deployment(command, input = {}) {
      deployments += 1;
      return (
        await db.deployments.create({
          name: `deployment-${deployments}`,
          flow_id: flow.id,
          work_queue_id: created.default_queue_id,
          job_variables: { command },
          ...input,
        })
      ).row;
    },
    async run(deployment, input = {}) {
      const due = input.next_scheduled_start_time ?? addSeconds(now(), -1);
      return (
        await db.flowRuns.create({
          flow_id: flow.id,
          deployment_id: deployment.id,
          work_queue_id: deployment.work_queue_id,
          state: { type: "SCHEDULED", state_details: { scheduled_time: due } },
          next_scheduled_start_time: due,
          ...input,
        })
      ).row;
    },
  };
}

export const stateOf = async (db: Database, id: string) => (await db.flowRuns.get(id))?.state ?? null;

/** Waits until every run is in one of `types`; returns the runs. */
export async function waitForStates(db: Database, ids: readonly string[], types: readonly string[], timeoutMs = 30_000): Promise<FlowRun[]> {
  return waitFor(
    async () => {
      const runs = await db.flowRuns.read({ flow_runs: { id: { any_: [...ids] } } });
      return runs.length === ids.length && runs.every((r) => r.state_type !== null && types.includes(r.state_type)) ? runs : undefined;
    },
    `${ids.length} run(s) to reach ${types.join("/")}`,
    timeoutMs,
  );
}

/**
 * The most runs that held a slot at once, from their state histories: a run holds one from its
 * PENDING state until the state that ends it (the next state that is neither PENDING nor RUNNING).
 */
export async function mostAtOnce(db: Database, ids: readonly string[]): Promise<number> {
  const points: [string, number][] = [];
  for (const id of ids) {
    const states = await db.flowRuns.readStates(id);
    let start: string | null = null;
    for (const state of states) {
      if (state.type === "PENDING" && start === null) start = state.timestamp;
      else if (state.type !== "PENDING" && state.type !== "RUNNING" && start !== null) {
        points.push([start, 1], [state.timestamp, -1]);
        start = null;
      }
    }
    if (start !== null) points.push([start, 1]);
  }
  // Ends before starts at the same instant: a slot freed and taken at once is not an overlap.
  points.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
  let current = 0;
  let most = 0;
  for (const [, delta] of points) {
    current += delta;
    most = Math.max(most, current);
  }
  return most;
}

/** This process's environment without database settings. */
export function envWithoutDatabase(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (/^PREFECT_(DATABASE|SERVER_DATABASE|API_DATABASE)_/.test(key)) delete env[key];
  return env;
}

/** The variable that points a process at `config`'s database. */
export function databaseSetting(config: DatabaseConfig): Record<string, string> {
  return config.backend === "sqlite" ? { PREFECT_DATABASE_PATH: config.path } : { PREFECT_DATABASE_URL: config.url };
}

export function databaseEnv(config: DatabaseConfig): NodeJS.ProcessEnv {
  return { ...envWithoutDatabase(), ...databaseSetting(config) };
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): { stdout: string; stderr: string };
}

/**
 * The worker's command line as a real process (the built CLI), its output kept; on `config`'s
 * database, or with no database setting at all for null.
 */
export function spawnWorker(config: DatabaseConfig | null, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): WorkerProcess {
  const env = { ...(config ? databaseEnv(config) : envWithoutDatabase()), ...extraEnv };
  const child = spawn(process.execPath, [WORKER_MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const keep = (text: string, chunk: Buffer) => (text.length > 2_000_000 ? text : text + chunk.toString("utf8"));
  child.stdout.on("data", (chunk: Buffer) => {
    stdout = keep(stdout, chunk);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = keep(stderr, chunk);
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, exit, output: () => ({ stdout, stderr }) };
}

/** Whether a process with this id is alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const pidOf = (run: FlowRun) => Number(run.infrastructure_pid?.split(":").pop());

export interface ServerProcess {
  readonly child: ChildProcess;
  /** http://host:port/api */
  readonly api: string;
  readonly exit: Promise<number | null>;
  /** What it wrote to stdout and stderr so far. */
  output(): string;
}

/** The server as a real process on `config`'s database, on a free port; resolves once it listens. */
export async function startServerProcess(config: DatabaseConfig, extraEnv: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [SERVER_MAIN], {
    env: {
      ...databaseEnv(config),
      PREFECT_SERVER_API_HOST: "127.0.0.1",
      PREFECT_SERVER_API_PORT: "0",
      PREFECT_SERVER_BLOCKS_REGISTER_ON_START: "false",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const api = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}): ${output}`);
    return /listening on (http:\/\/\S+\/api)/.exec(output)?.[1];
  }, "the server to listen");
  return { child, api, exit, output: () => output };
}

/** An event as `/api/events/out` sends it. */
export interface WireEvent {
  id: string;
  event: string;
  occurred: string;
  resource: Record<string, string>;
}

/** A subscriber of `/api/events/out` (Prefect's protocol: auth, then a filter, with backfill), handing each event to `onEvent`. */
export async function subscribeToEvents(api: string, filter: Record<string, unknown>, onEvent: (event: WireEvent) => void): Promise<{ close(): void }> {
  const socket = new WebSocket(`${api.replace(/^http/, "ws")}/events/out`, ["prefect"]);
  let authenticated!: () => void;
  const ready = new Promise<void>((resolve) => {
    authenticated = resolve;
  });
  socket.on("message", (raw) => {
    const data = JSON.parse(String(raw));
    if (data.type === "auth_success") authenticated();
    else if (data.type === "event") onEvent(data.event as WireEvent);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", () => reject(new Error("cannot connect to /events/out")));
  });
  socket.send(JSON.stringify({ type: "auth", token: null }));
  await ready;
  socket.send(JSON.stringify({ type: "filter", filter, backfill: true }));
  return { close: () => socket.close() };
}
