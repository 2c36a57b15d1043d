/**
 * The end-to-end bench. On each backend, a scratch database and the real server (as `pnpm start`
 * runs it, with its services) under HTTP and websocket load, each figure in alternating rounds with
 * its floors (the Fastify floor in a process of its own, the raw driver); then the claim path and
 * graphile-worker, the worker process and the spawn rate, and on PostgreSQL the round trips of one
 * create and of one set_state. Prints one table.
 */
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { BENCH_DIR, startServer, stopCleanly } from "./apps.js";
import { type DeliveryLatency, deliveryLatency } from "./delivery.js";
import { spawnsPerSecond } from "./floors.js";
import { call } from "./load.js";
import { residentBytes, startNode } from "./processes.js";
import { profileFile, type SelfTime, topSelfTime } from "./profile.js";
import { startCountingProxy } from "./round-trips.js";
import { createScratch, type ScratchDatabase, UnreachableError } from "./scratch.js";
import {
  createBody,
  EVENTS_PER_REQUEST,
  type FigureResult,
  type FloorKey,
  type Floors,
  LOGS_PER_REQUEST,
  measurePlan,
  openSession,
  PLANS,
  RAW_EVENT_BATCH,
  type Session,
  warmSeconds,
} from "./server-figures.js";
import { type BackendName, type BenchSettings, PROFILABLE, type ProfilableKey } from "./settings.js";
import { type Line, renderTable } from "./table.js";
import { claimPath, graphileWorker, WORKER_LIMIT, workerProcess } from "./work-figures.js";

const REPO_ROOT = dirname(BENCH_DIR);
const MB = 1024 * 1024;

interface BackendResults {
  readonly backend: BackendName;
  readonly figures: Partial<Record<ProfilableKey, FigureResult>>;
  memory?: { readonly idle: number; readonly after: number };
  claim?: number;
  graphile?: number;
  worker?: number;
  /** The machine's spawn rate: the mean of two halves measured right before and right after the worker's figure. */
  spawns?: number;
  roundTrips?: { readonly create: number; readonly setState: number };
  delivery?: DeliveryLatency;
  profile?: { readonly figure: ProfilableKey; readonly file: string; readonly top: readonly SelfTime[] };
}

const note = (text: string) => process.stdout.write(`${text}\n`);
const started = performance.now();
/** A progress line, with the time since the bench started. */
const step = (text: string) => note(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

/** Runs before any load: the runs the loads refer to (GET targets, log and event owners). */
const seededRuns = (settings: BenchSettings) => (settings.smoke ? 20 : 100);

/**
 * The floors that run beside the server: the Fastify floor in a process of its own (answering a
 * GET with what the server answered, inserting copies of a run the server created) and the raw
 * driver with as many connections as the server's pool.
 */
async function startFloors(scratch: ScratchDatabase, session: Session): Promise<Floors & { stop(): Promise<void> }> {
  const templateRunId = session.runIds[0]!;
  const getBody = JSON.stringify(await call(session.api, "GET", `/flow_runs/${templateRunId}`));
  const { child, match } = await startNode({
    what: "The Fastify floor",
    args: [join(BENCH_DIR, "dist", "floor-server.js")],
    cwd: BENCH_DIR,
    env: {
      ...process.env,
      FLOOR_BACKEND: scratch.backend,
      FLOOR_DATABASE: scratch.url ?? scratch.env.PREFECT_DATABASE_PATH!,
      FLOOR_TEMPLATE_RUN: templateRunId,
      FLOOR_GET_BODY: getBody,
    },
    ready: /floor listening on (\S+)/,
  });
  const raw = scratch.openRaw(10);
  return {
    api: match[1]!,
    raw,
    async stop() {
      await raw.close();
      await stopCleanly(child, "The Fastify floor");
    },
  };
}

/** The server's figures, each beside its floors, on one running server; and the server's memory. */
async function serverFigures(scratch: ScratchDatabase, settings: BenchSettings, results: BackendResults): Promise<void> {
  const wanted = PROFILABLE.filter((k) => settings.figures.has(k));
  if (wanted.length === 0 && !settings.figures.has("memory")) return;
  const raw = scratch.openRaw(2);
  try {
    const server = await startServer({ env: scratch.env });
    try {
      // Idle: started, services running, no request yet.
      await new Promise((resolve) => setTimeout(resolve, settings.smoke ? 200 : 2000));
      const idle = residentBytes(server.child.pid);
      const session = await openSession(server.api, server.child.pid, raw, settings, seededRuns(settings));
      const floors = wanted.length > 0 ? await startFloors(scratch, session) : null;
      try {
        for (const key of wanted) {
          step(`${scratch.backend}: ${key}`);
          results.figures[key] = await measurePlan(await PLANS[key](session, floors), settings, server.child.pid);
        }
      } finally {
        await floors?.stop();
      }
      if (settings.figures.has("memory")) results.memory = { idle, after: residentBytes(server.child.pid) };
    } finally {
      await stopCleanly(server.child, "The server");
    }
  } finally {
    await raw.close();
  }
}

/**
 * Round trips of one create on PostgreSQL: the server talks to PostgreSQL through a counting proxy,
 * with every background service off (the event persister, for one, writes the creates' events in
 * batches, apart from the request); what is left of the process's own queries, counted over as long
 * with no load, is taken off.
 */
/** Every background service off: their own queries would blur the count. */
const SERVICES_OFF = Object.fromEntries(
  ["ACTIONS", "CANCELLATION_CLEANUP", "EVENT_PERSISTER", "FOREMAN", "LATE_RUNS", "REPOSSESSOR", "SCHEDULER", "TASK_RUN_RECORDER", "TRIGGERS"].map((name) => [
    `PREFECT_SERVER_SERVICES_${name}_ENABLED`,
    "false",
  ]),
);

async function roundTripsPerCall(scratch: ScratchDatabase, settings: BenchSettings): Promise<NonNullable<BackendResults["roundTrips"]>> {
  const proxy = await startCountingProxy(scratch.url!);
  try {
    const server = await startServer({
      env: { ...scratch.env, PREFECT_DATABASE_URL: proxy.url, ...SERVICES_OFF },
    });
    try {
      const flow = await call<{ id: string }>(server.api, "POST", "/flows/", { name: "bench-round-trips" });
      const body = JSON.parse(createBody(flow.id)) as unknown;
      const ids: string[] = [];
      const creates = async (n: number) => {
        for (let i = 0; i < n; i++) ids.push((await call<{ id: string }>(server.api, "POST", "/flow_runs/", body)).id);
      };
      const running = async (n: number) => {
        for (const id of ids.splice(0, n)) await call(server.api, "POST", `/flow_runs/${id}/set_state`, { state: { type: "RUNNING" } });
      };
      const count = settings.smoke ? 20 : 200;
      /** Round trips per call of `calls`, less what the process sends by itself over as long. */
      const perCall = async (calls: (n: number) => Promise<void>) => {
        await calls(10);
        const before = proxy.roundTrips();
        const start = performance.now();
        await calls(count);
        const elapsed = performance.now() - start;
        const during = proxy.roundTrips() - before;
        const idleBefore = proxy.roundTrips();
        await new Promise((resolve) => setTimeout(resolve, elapsed));
        const idle = proxy.roundTrips() - idleBefore;
        return (during - idle) / count;
      };
      const create = await perCall(creates);
      return { create, setState: await perCall(running) };
    } finally {
      await stopCleanly(server.child, "The server");
    }
  } finally {
    await proxy.close();
  }
}

/** The server under one figure's load (ours alone, after a warm-up), profiled with `node --cpu-prof`. */
async function profileFigure(scratch: ScratchDatabase, settings: BenchSettings, figure: ProfilableKey): Promise<BackendResults["profile"]> {
  step(`${scratch.backend}: profiling the server under ${figure}`);
  const raw = scratch.openRaw(2);
  try {
    const server = await startServer({ env: scratch.env, profile: true });
    try {
      const session = await openSession(server.api, server.child.pid, raw, settings, seededRuns(settings));
      const plan = await PLANS[figure](session, null);
      const warm = warmSeconds(settings);
      if (warm > 0) await plan.ours(warm);
      await plan.ours(settings.seconds);
    } finally {
      await stopCleanly(server.child, "The profiled server");
    }
    const file = profileFile(server.profileDir!);
    return { figure, file, top: topSelfTime(file, 10, REPO_ROOT) };
  } finally {
    await raw.close();
  }
}

async function benchBackend(scratch: ScratchDatabase, settings: BenchSettings): Promise<BackendResults> {
  const results: BackendResults = { backend: scratch.backend, figures: {} };
  await serverFigures(scratch, settings, results);
  if (scratch.backend === "postgres" && settings.figures.has("round-trips")) {
    step("postgres: round trips per create and per set_state");
    results.roundTrips = await roundTripsPerCall(scratch, settings);
  }
  if (settings.figures.has("delivery")) {
    step(`${scratch.backend}: event delivery latency`);
    results.delivery = await deliveryLatency(scratch, settings);
  }
  if (settings.profile) results.profile = await profileFigure(scratch, settings, settings.profile);
  if (settings.figures.has("claim")) {
    step(`${scratch.backend}: claim path`);
    results.claim = await claimPath(scratch, settings);
    if (scratch.backend === "postgres") {
      step("postgres: graphile-worker");
      results.graphile = await graphileWorker(scratch.url!, settings);
    }
  }
  if (settings.figures.has("worker")) {
    // A machine's spawn rate can swing threefold from one run to the next on shared cores, so the floor
    // is measured in two halves around the worker's figure, under the conditions the worker met.
    step(`${scratch.backend}: spawn rate (first half)`);
    const before = await spawnsPerSecond(WORKER_LIMIT, settings.seconds / 2);
    step(`${scratch.backend}: pnpm worker`);
    const raw = scratch.openRaw(2);
    try {
      results.worker = await workerProcess(scratch, raw, settings);
    } finally {
      await raw.close();
    }
    step(`${scratch.backend}: spawn rate (second half)`);
    const after = await spawnsPerSecond(WORKER_LIMIT, settings.seconds / 2);
    results.spawns = (before + after) / 2;
  }
  return results;
}

const GOALS = {
  create: { sqlite: "≥ 2,000 req/s", postgres: "≥ 1,500 req/s" },
  get: { sqlite: "≥ 15k req/s", postgres: "≥ 6k req/s" },
} as const;

/** What each floor is, for the table. */
const FLOOR_LABELS: Record<FloorKey, string> = {
  insert: "Fastify + 1 raw INSERT",
  rawCreate: "raw driver: run + state rows",
  noop: "Fastify, no I/O",
  rawLogs: `raw driver: ${LOGS_PER_REQUEST}-row INSERT`,
  rawEvents: `raw driver: ${RAW_EVENT_BATCH} events + resources`,
};

const FIGURE_LABELS: Record<ProfilableKey, string> = {
  create: "POST /api/flow_runs/ (create, PENDING)",
  chain: "create -> set_state RUNNING -> COMPLETED",
  get: "GET /api/flow_runs/{id}",
  logs: `POST /api/logs/ (${LOGS_PER_REQUEST} per request)`,
  "events-http": `events, 3 related: POST /api/events (${EVENTS_PER_REQUEST} per request)`,
  "events-ws": "events, 3 related: /api/events/in websocket",
};

function figureGoals(key: ProfilableKey, backend: BackendName): string {
  switch (key) {
    case "create":
      return GOALS.create[backend];
    case "get":
      return GOALS.get[backend];
    case "chain":
      return "≥ 2,000 req/s";
    case "logs":
      return "≥ 100k rows/s";
    default:
      return "≥ 30k events/s";
  }
}

function tableLines(all: readonly BackendResults[]): Line[] {
  const lines: Line[] = [];
  const graphile = all.find((r) => r.graphile !== undefined)?.graphile;
  for (const key of PROFILABLE) {
    for (const r of all) {
      const result = r.figures[key];
      if (!result) continue;
      const ours = { value: result.ours, unit: result.unit };
      const floors = Object.entries(result.floors) as [FloorKey, number][];
      const base = { figure: FIGURE_LABELS[key], backend: r.backend, ours };
      if (floors.length === 0) lines.push({ ...base, serverCpu: result.cpu, goal: figureGoals(key, r.backend) });
      floors.forEach(([floor, value], i) => {
        lines.push({
          ...base,
          floor: { label: FLOOR_LABELS[floor], value: { value, unit: result.unit } },
          ...(i === 0 ? { serverCpu: result.cpu, goal: figureGoals(key, r.backend) } : { goal: floor === "rawCreate" ? "≥ 0.5× raw" : undefined }),
        });
      });
    }
  }
  for (const r of all) {
    if (r.claim === undefined) continue;
    lines.push({
      figure: "claim + RUNNING + COMPLETED in-process, 10 loops × batch 10",
      backend: r.backend,
      ours: { value: r.claim, unit: "runs/s" },
      floor: graphile === undefined ? undefined : { label: "graphile-worker 0.17.3, concurrency 10 (PostgreSQL)", value: { value: graphile, unit: "jobs/s" } },
      goal: "≥ 0.5× graphile",
    });
  }
  for (const r of all) {
    if (r.worker === undefined) continue;
    lines.push({
      figure: `pnpm worker --limit ${WORKER_LIMIT}, command true`,
      backend: r.backend,
      ours: { value: r.worker, unit: "runs/s" },
      floor: r.spawns === undefined ? undefined : { label: "spawning true, 10 at a time", value: { value: r.spawns, unit: "spawns/s" } },
      goal: "≥ 0.5× spawns",
    });
  }
  for (const r of all) {
    if (r.memory) lines.push({ figure: "server RSS, idle", backend: r.backend, ours: { value: r.memory.idle / MB, unit: "MB" }, goal: "≤ 100 MB" });
  }
  for (const r of all) {
    if (r.memory && Object.keys(r.figures).length > 0) {
      lines.push({ figure: "server RSS, after the load", backend: r.backend, ours: { value: r.memory.after / MB, unit: "MB" }, goal: "≤ 150 MB" });
    }
  }
  for (const r of all) {
    if (r.delivery === undefined) continue;
    const figure = "event delivery: commit -> /api/events/out of another process";
    const goal = r.backend === "postgres" ? "p99 < 250 ms" : "p99 < 1 s";
    lines.push({ figure: `${figure} (p50)`, backend: r.backend, ours: { value: r.delivery.p50, unit: "ms" }, lowerIsBetter: true });
    lines.push({ figure: `${figure} (p99)`, backend: r.backend, ours: { value: r.delivery.p99, unit: "ms" }, lowerIsBetter: true, goal });
  }
  for (const r of all) {
    if (r.roundTrips === undefined) continue;
    lines.push({
      figure: "round trips per create",
      backend: r.backend,
      ours: { value: r.roundTrips.create, unit: "round trips" },
      floor: { label: "raw driver: one statement", value: { value: 1, unit: "round trips" } },
      lowerIsBetter: true,
      goal: "≤ 3",
    });
    lines.push({
      figure: "round trips per set_state (PENDING -> RUNNING)",
      backend: r.backend,
      ours: { value: r.roundTrips.setState, unit: "round trips" },
      floor: { label: "raw driver: one statement", value: { value: 1, unit: "round trips" } },
      lowerIsBetter: true,
    });
  }
  return lines;
}

function printProfile(backend: BackendName, profile: NonNullable<BackendResults["profile"]>): void {
  note(`\nCPU profile of the server under "${profile.figure}" on ${backend}: ${profile.file}`);
  note("top 10 functions by self time:");
  for (const [i, entry] of profile.top.entries()) {
    note(`${String(i + 1).padStart(3)}. ${(entry.share * 100).toFixed(1).padStart(5)}%  ${entry.milliseconds.toFixed(0).padStart(6)} ms  ${entry.name}  ${entry.where}`);
  }
}

export async function runEndToEnd(settings: BenchSettings, backendsChosen: boolean): Promise<void> {
  const loadAtStart = loadavg();
  const all: BackendResults[] = [];
  for (const backend of settings.backends) {
    let scratch: ScratchDatabase;
    try {
      scratch = await createScratch(backend, settings.postgresUrl);
    } catch (error) {
      // Without PREFECT_BENCH_BACKENDS a missing PostgreSQL only narrows the table; asked for, it fails.
      if (error instanceof UnreachableError && !backendsChosen) {
        step(`${backend}: skipped, ${error.message} (set PREFECT_BENCH_POSTGRES_URL)`);
        continue;
      }
      throw error;
    }
    try {
      all.push(await benchBackend(scratch, settings));
    } finally {
      await scratch.drop();
    }
  }
  const loadAtEnd = loadavg();
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(" ");
  note(
    `\nEnd to end, ${settings.seconds} s per measurement, ${settings.connections} connections${settings.smoke ? " (smoke run: the numbers mean little)" : ""}; ` +
      `load average ${load(loadAtStart)} at the start, ${load(loadAtEnd)} at the end\n`,
  );
  note(renderTable(tableLines(all), settings.markdown));
  for (const r of all) if (r.profile) printProfile(r.backend, r.profile);
}
