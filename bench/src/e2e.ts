/**
 * The end-to-end bench: on each backend, a scratch database, the real server (as `pnpm start` runs
 * it, with its services) under HTTP and websocket load, then the floors on the same database (the
 * Fastify floors in a process of their own, the raw driver), the claim path, the worker process, and
 * on PostgreSQL the round trips of one create and graphile-worker. Prints one table.
 */
import { loadavg } from "node:os";
import { dirname } from "node:path";
import { startServer, stopCleanly } from "./apps.js";
import { BENCH_DIR } from "./apps.js";
import { eventBatch, logBatch, rawRowsPerSecond, runTemplate, runWithState, spawnsPerSecond } from "./floors.js";
import { call, drive } from "./load.js";
import { residentBytes, startNode } from "./processes.js";
import { type SelfTime, profileFile, topSelfTime } from "./profile.js";
import { startCountingProxy } from "./round-trips.js";
import { createScratch, type ScratchDatabase, UnreachableError } from "./scratch.js";
import { createBody, EVENT_NAMES, EVENTS_PER_REQUEST, LOGS_PER_REQUEST, type Measured, openSession, SERVER_FIGURES, warmSeconds } from "./server-figures.js";
import { type BackendName, type BenchSettings, PROFILABLE, type ProfilableKey } from "./settings.js";
import { type Line, renderTable } from "./table.js";
import { claimPath, graphileWorker, WORKER_LIMIT, workerProcess } from "./work-figures.js";

const REPO_ROOT = dirname(BENCH_DIR);
/**
 * Events per transaction of the raw floor: the server's event persister merges what arrives into
 * batches of up to 1000, so the floor writes big batches too (500 keeps SQLite under its limit of
 * bound parameters per statement).
 */
const RAW_EVENT_BATCH = 500;
const MB = 1024 * 1024;

interface BackendResults {
  readonly backend: BackendName;
  readonly server: Partial<Record<ProfilableKey, Measured>>;
  memory?: { readonly idle: number; readonly after: number };
  readonly floors: { noop?: number; insert?: number; rawCreate?: number; rawLogs?: number; rawEvents?: number };
  claim?: number;
  worker?: number;
  roundTrips?: number;
  graphile?: number;
  profile?: { readonly figure: ProfilableKey; readonly file: string; readonly top: readonly SelfTime[] };
}

const note = (text: string) => process.stdout.write(`${text}\n`);
const started = performance.now();
/** A progress line, with the time since the bench started. */
const step = (text: string) => note(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

/** Runs before any load: the runs the loads refer to (GET targets, log and event owners). */
const seededRuns = (settings: BenchSettings) => (settings.smoke ? 20 : 100);

async function serverFigures(scratch: ScratchDatabase, settings: BenchSettings, results: BackendResults): Promise<void> {
  const wanted = PROFILABLE.filter((k) => settings.figures.has(k));
  if (wanted.length === 0 && !settings.figures.has("memory")) return;
  const raw = scratch.openRaw(2);
  let templateRunId: string | undefined;
  let getBody: string | undefined;
  try {
    const server = await startServer({ env: scratch.env });
    try {
      // Idle: started, services running, no request yet.
      await new Promise((resolve) => setTimeout(resolve, settings.smoke ? 200 : 2000));
      const idle = residentBytes(server.child.pid);
      const session = await openSession(server.api, server.child.pid, raw, settings, seededRuns(settings));
      for (const key of wanted) {
        step(`${scratch.backend}: ${key}`);
        results.server[key] = await SERVER_FIGURES[key](session);
      }
      results.memory = { idle, after: residentBytes(server.child.pid) };
      templateRunId = session.runIds[0]!;
      getBody = JSON.stringify(await call(server.api, "GET", `/flow_runs/${templateRunId}`));
    } finally {
      await stopCleanly(server.child, "The server");
    }
    await httpFloors(scratch, settings, results, templateRunId, getBody);
  } finally {
    await raw.close();
  }
  await rawFloors(scratch, settings, results, templateRunId);
}

/** The Fastify floors, in a process of their own, after the server stopped. */
async function httpFloors(scratch: ScratchDatabase, settings: BenchSettings, results: BackendResults, templateRunId: string, getBody: string): Promise<void> {
  const create = settings.figures.has("create");
  const get = settings.figures.has("get");
  if (!create && !get) return;
  step(`${scratch.backend}: Fastify floors`);
  const { child, match } = await startNode({
    what: "The Fastify floor",
    args: [`${BENCH_DIR}/dist/floor-server.js`],
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
  const api = match[1]!;
  const { connections, seconds } = settings;
  const measure = async (request: Parameters<typeof drive>[1][number]) => {
    const warm = warmSeconds(settings);
    if (warm > 0) await drive(api, [request], { connections, seconds: warm });
    return (await drive(api, [request], { connections, seconds })).perSecond;
  };
  try {
    const flowId = JSON.parse(getBody).flow_id as string;
    if (get) results.floors.noop = await measure({ method: "GET", path: `/floor/noop/${templateRunId}` });
    if (create) results.floors.insert = await measure({ method: "POST", path: "/floor/insert", body: createBody(flowId) });
  } finally {
    await stopCleanly(child, "The Fastify floor");
  }
}

/** The raw driver writing the rows the server wrote, on the same database. */
async function rawFloors(scratch: ScratchDatabase, settings: BenchSettings, results: BackendResults, templateRunId: string | undefined): Promise<void> {
  const wants = (k: "create" | "logs" | "events-http" | "events-ws") => settings.figures.has(k) && results.server[k] !== undefined;
  if (!templateRunId || !(wants("create") || wants("logs") || wants("events-http") || wants("events-ws"))) return;
  step(`${scratch.backend}: raw driver floors`);
  const raw = scratch.openRaw(10);
  const warm = warmSeconds(settings);
  try {
    if (wants("create")) results.floors.rawCreate = await rawRowsPerSecond(raw, runWithState(await runTemplate(raw, templateRunId)), 1, settings.seconds, warm);
    if (wants("logs")) results.floors.rawLogs = await rawRowsPerSecond(raw, await logBatch(raw, LOGS_PER_REQUEST), LOGS_PER_REQUEST, settings.seconds, warm);
    if (wants("events-http") || wants("events-ws")) {
      const name = wants("events-http") ? EVENT_NAMES.http : EVENT_NAMES.websocket;
      results.floors.rawEvents = await rawRowsPerSecond(raw, await eventBatch(raw, name, RAW_EVENT_BATCH), RAW_EVENT_BATCH, settings.seconds, warm);
    }
  } finally {
    await raw.close();
  }
}

/**
 * Round trips of one create on PostgreSQL: the server talks to PostgreSQL through a counting proxy,
 * with the event persister off (it writes the creates' events in batches, apart from the request);
 * the background services' own queries, counted over as long with no load, are taken off.
 */
async function roundTripsPerCreate(scratch: ScratchDatabase, settings: BenchSettings): Promise<number> {
  const proxy = await startCountingProxy(scratch.url!);
  try {
    const server = await startServer({
      env: { ...scratch.env, PREFECT_DATABASE_URL: proxy.url, PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: "false" },
    });
    try {
      const flow = await call<{ id: string }>(server.api, "POST", "/flows/", { name: "bench-round-trips" });
      const body = JSON.parse(createBody(flow.id)) as unknown;
      const creates = async (n: number) => {
        for (let i = 0; i < n; i++) await call(server.api, "POST", "/flow_runs/", body);
      };
      await creates(10);
      const count = settings.smoke ? 20 : 200;
      const before = proxy.roundTrips();
      const start = performance.now();
      await creates(count);
      const elapsed = performance.now() - start;
      const during = proxy.roundTrips() - before;
      const idleBefore = proxy.roundTrips();
      await new Promise((resolve) => setTimeout(resolve, elapsed));
      const idle = proxy.roundTrips() - idleBefore;
      return (during - idle) / count;
    } finally {
      await stopCleanly(server.child, "The server");
    }
  } finally {
    await proxy.close();
  }
}

/** The server under one figure's load, profiled with `node --cpu-prof`. */
async function profileFigure(scratch: ScratchDatabase, settings: BenchSettings, figure: ProfilableKey): Promise<BackendResults["profile"]> {
  step(`${scratch.backend}: profiling the server under ${figure}`);
  const raw = scratch.openRaw(2);
  try {
    const server = await startServer({ env: scratch.env, profile: true });
    try {
      const session = await openSession(server.api, server.child.pid, raw, settings, seededRuns(settings));
      await SERVER_FIGURES[figure](session);
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
  const results: BackendResults = { backend: scratch.backend, server: {}, floors: {} };
  await serverFigures(scratch, settings, results);
  if (scratch.backend === "postgres" && settings.figures.has("round-trips")) {
    step("postgres: round trips per create");
    results.roundTrips = await roundTripsPerCreate(scratch, settings);
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
    step(`${scratch.backend}: pnpm worker`);
    const raw = scratch.openRaw(2);
    try {
      results.worker = await workerProcess(scratch, raw, settings);
    } finally {
      await raw.close();
    }
  }
  return results;
}

const GOALS = {
  create: { sqlite: "≥ 2,000 req/s", postgres: "≥ 1,500 req/s" },
  get: { sqlite: "≥ 15k req/s", postgres: "≥ 6k req/s" },
} as const;

function tableLines(all: readonly BackendResults[], spawnRate: number | undefined): Line[] {
  const lines: Line[] = [];
  const graphile = all.find((r) => r.graphile !== undefined)?.graphile;
  const each = (fn: (r: BackendResults) => void) => {
    for (const r of all) fn(r);
  };
  const server = (r: BackendResults, key: ProfilableKey) => r.server[key];
  each((r) => {
    const m = server(r, "create");
    if (!m) return;
    const figure = "POST /api/flow_runs/ (create, PENDING)";
    const insert = r.floors.insert;
    lines.push({
      figure,
      backend: r.backend,
      ours: m.value,
      floor: insert === undefined ? undefined : { label: "Fastify + 1 raw INSERT", value: { value: insert, unit: "req/s" } },
      serverCpu: m.cpu,
      goal: GOALS.create[r.backend],
    });
    if (r.floors.rawCreate !== undefined) {
      lines.push({ figure, backend: r.backend, ours: m.value, floor: { label: "raw driver: run + state rows", value: { value: r.floors.rawCreate, unit: "req/s" } }, goal: "≥ 0.5× raw" });
    }
  });
  each((r) => {
    const m = server(r, "chain");
    if (m) lines.push({ figure: "create -> set_state RUNNING -> COMPLETED", backend: r.backend, ours: m.value, serverCpu: m.cpu, goal: "≥ 2,000 req/s" });
  });
  each((r) => {
    const m = server(r, "get");
    if (!m) return;
    const noop = r.floors.noop;
    lines.push({
      figure: "GET /api/flow_runs/{id}",
      backend: r.backend,
      ours: m.value,
      floor: noop === undefined ? undefined : { label: "Fastify, no I/O", value: { value: noop, unit: "req/s" } },
      serverCpu: m.cpu,
      goal: GOALS.get[r.backend],
    });
  });
  each((r) => {
    const m = server(r, "logs");
    if (!m) return;
    const raw = r.floors.rawLogs;
    lines.push({
      figure: `POST /api/logs/ (${LOGS_PER_REQUEST} per request)`,
      backend: r.backend,
      ours: m.value,
      floor: raw === undefined ? undefined : { label: `raw driver: ${LOGS_PER_REQUEST}-row INSERT`, value: { value: raw, unit: "rows/s" } },
      serverCpu: m.cpu,
      goal: "≥ 100k rows/s",
    });
  });
  for (const [key, figure] of [
    ["events-http", `events, 3 related: POST /api/events (${EVENTS_PER_REQUEST} per request)`],
    ["events-ws", "events, 3 related: /api/events/in websocket"],
  ] as const) {
    each((r) => {
      const m = server(r, key);
      if (!m) return;
      const raw = r.floors.rawEvents;
      lines.push({
        figure,
        backend: r.backend,
        ours: m.value,
        floor: raw === undefined ? undefined : { label: `raw driver: ${RAW_EVENT_BATCH} events + resources`, value: { value: raw, unit: "events/s" } },
        serverCpu: m.cpu,
        goal: "≥ 30k events/s",
      });
    });
  }
  each((r) => {
    if (r.claim === undefined) return;
    lines.push({
      figure: "claim + RUNNING + COMPLETED in-process, 10 loops × batch 10",
      backend: r.backend,
      ours: { value: r.claim, unit: "runs/s" },
      floor: graphile === undefined ? undefined : { label: "graphile-worker 0.17.3, concurrency 10 (PostgreSQL)", value: { value: graphile, unit: "jobs/s" } },
      goal: "≥ 0.5× graphile",
    });
  });
  each((r) => {
    if (r.worker === undefined) return;
    lines.push({
      figure: `pnpm worker --limit ${WORKER_LIMIT}, command true`,
      backend: r.backend,
      ours: { value: r.worker, unit: "runs/s" },
      floor: spawnRate === undefined ? undefined : { label: "spawning true, 10 at a time", value: { value: spawnRate, unit: "spawns/s" } },
      goal: "≥ 0.5× spawns",
    });
  });
  each((r) => {
    if (r.memory) lines.push({ figure: "server RSS, idle", backend: r.backend, ours: { value: r.memory.idle / MB, unit: "MB" }, goal: "≤ 100 MB" });
  });
  each((r) => {
    if (r.memory && Object.keys(r.server).length > 0) {
      lines.push({ figure: "server RSS, after the load", backend: r.backend, ours: { value: r.memory.after / MB, unit: "MB" }, goal: "≤ 150 MB" });
    }
  });
  each((r) => {
    if (r.roundTrips === undefined) return;
    lines.push({
      figure: "round trips per create",
      backend: r.backend,
      ours: { value: r.roundTrips, unit: "round trips" },
      floor: { label: "raw driver: one statement", value: { value: 1, unit: "round trips" } },
      lowerIsBetter: true,
      goal: "≤ 3",
    });
  });
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
  let spawnRate: number | undefined;
  if (settings.figures.has("worker")) {
    step("machine: spawn rate");
    spawnRate = await spawnsPerSecond(WORKER_LIMIT, settings.seconds);
  }
  const loadAtEnd = loadavg();
  const lines = tableLines(all, spawnRate);
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(" ");
  note(
    `\nEnd to end, ${settings.seconds} s per measurement, ${settings.connections} connections${settings.smoke ? " (smoke run: the numbers mean little)" : ""}; ` +
      `load average ${load(loadAtStart)} at the start, ${load(loadAtEnd)} at the end\n`,
  );
  note(renderTable(lines, settings.markdown));
  for (const r of all) if (r.profile) printProfile(r.backend, r.profile);
}
