/**
 * The figures of the real server under HTTP and websocket load, each beside its floors. A figure is a
 * plan: our side (the server under a load) and its floors' sides (the same load on the Fastify floor,
 * or the raw driver writing the same rows), each a function "work for so many seconds, say how much
 * was done in how long". They are measured in alternating rounds (ours, floors, floors, ours, ...)
 * after a warm-up of each, so that on a shared machine both see the same load: the ratio is worth
 * more than either number. Our side alone serves the CPU profile.
 */
import { eventBatchJson, type EventShape, StoredEvents, sendOverWebsockets } from "./events.js";
import { eventBatch, logBatch, rawSide, runTemplate, runWithState } from "./floors.js";
import { call, drive, type LoadRequest } from "./load.js";
import { cpuSeconds } from "./processes.js";
import type { RawDatabase } from "./raw.js";
import type { BenchSettings, ProfilableKey } from "./settings.js";
import type { Unit } from "./table.js";

export const LOGS_PER_REQUEST = 100;
export const EVENTS_PER_REQUEST = 50;
/**
 * Events per transaction of the raw floor: the server's event persister merges what arrives into
 * batches of up to 1000, so the floor writes big batches too (500 keeps SQLite under its limit of
 * bound parameters per statement).
 */
export const RAW_EVENT_BATCH = 500;
/** Rounds a measurement is cut into (one in a smoke run). */
const ROUNDS = 5;

/** Work for about `seconds`; how much was done (requests, rows, events) in how long. */
export type Side = (seconds: number) => Promise<{ readonly done: number; readonly seconds: number }>;

export type FloorKey = "noop" | "insert" | "rawCreate" | "rawLogs" | "rawEvents";

export interface Plan {
  readonly unit: Unit;
  readonly ours: Side;
  readonly floors: Partial<Record<FloorKey, Side>>;
}

/** What the floors run on while the server runs: the Fastify floor process and the raw driver. */
export interface Floors {
  /** The Fastify floor's base URL (…/api). */
  readonly api: string;
  /** The raw driver, as many connections as the server has. */
  readonly raw: RawDatabase;
}

/** A running server with what the loads need: a flow, runs, and rows for the raw floors to copy. */
export interface Session {
  readonly api: string;
  readonly pid: number;
  /** The bench's own connection, to count and read rows. */
  readonly raw: RawDatabase;
  readonly settings: BenchSettings;
  readonly flowId: string;
  /** Runs created before the loads (PENDING). */
  readonly runIds: readonly string[];
}

export interface FigureResult {
  readonly ours: number;
  readonly unit: Unit;
  /** Share of one core the server used during our rounds. */
  readonly cpu: number | null;
  readonly floors: Partial<Record<FloorKey, number>>;
}

/**
 * Seconds of the same load before each measurement (JIT, caches, connection pools); none in a smoke
 * run, whose numbers are not looked at.
 */
export const warmSeconds = (settings: BenchSettings) => (settings.smoke ? 0 : Math.min(1, settings.seconds / 2));

/** What Prefect's client sends to create a flow run (FlowRunCreate), PENDING. */
export function createBody(flowId: string): string {
  return JSON.stringify({
    flow_id: flowId,
    parameters: {},
    context: {},
    tags: ["bench"],
    empirical_policy: { retries: 0, retry_delay: 0, pause_keys: [], resuming: false },
    state: { type: "PENDING", name: "Pending", message: null, state_details: {} },
  });
}

/** Event names the server's figures store; the raw floor copies the template events. */
export const EVENT_NAMES = { http: "bench.events.http", websocket: "bench.events.websocket", template: "bench.events.template" } as const;

const eventShape = (session: Session, name: string): EventShape => ({ name, flowRunIds: session.runIds, flowId: session.flowId });

/** A flow, `runs` PENDING runs, a log and a batch of events, through the API, as a client makes them. */
export async function openSession(api: string, pid: number, raw: RawDatabase, settings: BenchSettings, runs: number): Promise<Session> {
  const flow = await call<{ id: string }>(api, "POST", "/flows/", { name: "bench" });
  const runIds: string[] = [];
  const body = JSON.parse(createBody(flow.id)) as unknown;
  for (let i = 0; i < runs; i++) runIds.push((await call<{ id: string }>(api, "POST", "/flow_runs/", body)).id);
  const session: Session = { api, pid, raw, settings, flowId: flow.id, runIds };
  await call(api, "POST", "/logs/", [{ name: "prefect.flow_runs", level: 20, message: "A log line", timestamp: new Date().toISOString(), flow_run_id: runIds[0] }]);
  const templates = JSON.parse(eventBatchJson(eventShape(session, EVENT_NAMES.template), EVENTS_PER_REQUEST)) as unknown;
  const stored = await StoredEvents.open(raw, EVENT_NAMES.template);
  await call(api, "POST", "/events", templates);
  await stored.waitFor(stored.count + EVENTS_PER_REQUEST);
  return session;
}

/** Measures a plan: a warm-up of each side, then alternating rounds; rates per second. */
export async function measurePlan(plan: Plan, settings: BenchSettings, pid: number): Promise<FigureResult> {
  const sides: [FloorKey | "ours", Side][] = [["ours", plan.ours], ...(Object.entries(plan.floors) as [FloorKey, Side][])];
  const warm = warmSeconds(settings);
  if (warm > 0) for (const [, side] of sides) await side(warm);
  const rounds = settings.smoke ? 1 : ROUNDS;
  const totals = new Map(sides.map(([key]) => [key, { done: 0, seconds: 0 }]));
  let cpu: { used: number; wall: number } | null = { used: 0, wall: 0 };
  for (let round = 0; round < rounds; round++) {
    for (const [key, side] of round % 2 === 0 ? sides : [...sides].reverse()) {
      const before = key === "ours" ? cpuSeconds(pid) : null;
      const start = performance.now();
      const { done, seconds } = await side(settings.seconds / rounds);
      const total = totals.get(key)!;
      total.done += done;
      total.seconds += seconds;
      if (key === "ours") {
        const after = cpuSeconds(pid);
        if (cpu && before !== null && after !== null) {
          cpu.used += after - before;
          cpu.wall += (performance.now() - start) / 1000;
        } else cpu = null;
      }
    }
  }
  const rate = (key: FloorKey | "ours") => {
    const t = totals.get(key)!;
    return t.done / t.seconds;
  };
  const floors: Partial<Record<FloorKey, number>> = {};
  for (const key of Object.keys(plan.floors) as FloorKey[]) floors[key] = rate(key);
  return { ours: rate("ours"), unit: plan.unit, cpu: cpu && cpu.wall > 0 ? cpu.used / cpu.wall : null, floors };
}

/** A load of `requests` on `api`, each answered request counting `per`. */
function httpSide(api: string, requests: readonly LoadRequest[], connections: number, per = 1): Side {
  return async (seconds) => {
    const result = await drive(api, requests, { connections, seconds });
    return { done: result.answered * per, seconds: result.seconds };
  };
}

const stateOf = (body: string): { status?: string; state?: { type?: string } } => JSON.parse(body);

function setState(type: "RUNNING" | "COMPLETED"): LoadRequest {
  return {
    method: "POST",
    path: "/flow_runs/{id}/set_state",
    body: JSON.stringify({ state: { type, name: type === "RUNNING" ? "Running" : "Completed", message: null, state_details: {} }, force: false }),
    setup: (context) => ({ path: `/flow_runs/${context.runId as string}/set_state` }),
    check: (body) => {
      const result = stateOf(body);
      return result.status === "ACCEPT" && result.state?.type === type ? undefined : `expected ACCEPT into ${type}, got ${body.slice(0, 300)}`;
    },
  };
}

function createRequest(session: Session): LoadRequest {
  return {
    method: "POST",
    path: "/flow_runs/",
    body: createBody(session.flowId),
    check: (body, context) => {
      const run = JSON.parse(body) as { id?: string; state_type?: string };
      if (run.state_type !== "PENDING" || !run.id) return `expected a PENDING run, got ${body.slice(0, 300)}`;
      context.runId = run.id;
      return undefined;
    },
  };
}

/**
 * Events counted by the rows stored: each round sends for about its seconds (`send` gets the last
 * rate seen, events per second), then waits until every event sent is in the table; the round lasts
 * from the first event sent to the last row seen.
 */
function eventsSide(session: Session, name: string, send: (shape: EventShape, seconds: number, rate: number) => Promise<number>): Side {
  let stored: StoredEvents | undefined;
  let rate = 0;
  return async (seconds) => {
    stored ??= await StoredEvents.open(session.raw, name);
    const expected = stored.count;
    const start = performance.now();
    const sent = await send(eventShape(session, name), seconds, rate);
    const took = ((await stored.waitFor(expected + sent)) - start) / 1000;
    rate = sent / took;
    return { done: sent, seconds: took };
  };
}

/** The plan of each figure; `floors` is null when only our side is measured (a profile). */
export const PLANS: Record<ProfilableKey, (session: Session, floors: Floors | null) => Promise<Plan>> = {
  async create(session, floors) {
    const { connections } = session.settings;
    return {
      unit: "req/s",
      ours: httpSide(session.api, [createRequest(session)], connections),
      floors: floors
        ? {
            insert: httpSide(floors.api, [{ method: "POST", path: "/floor/insert", body: createBody(session.flowId) }], connections),
            rawCreate: rawSide(floors.raw, runWithState(await runTemplate(session.raw, session.runIds[0]!)), 1),
          }
        : {},
    };
  },
  async chain(session) {
    return { unit: "req/s", ours: httpSide(session.api, [createRequest(session), setState("RUNNING"), setState("COMPLETED")], session.settings.connections), floors: {} };
  },
  async get(session, floors) {
    const ids = session.runIds;
    let next = 0;
    const { connections } = session.settings;
    const read = (path: string): LoadRequest => ({ method: "GET", path, setup: () => ({ path: path.replace("{id}", ids[next++ % ids.length]!) }) });
    return {
      unit: "req/s",
      ours: httpSide(session.api, [read("/flow_runs/{id}")], connections),
      floors: floors ? { noop: httpSide(floors.api, [read("/floor/noop/{id}")], connections) } : {},
    };
  },
  async logs(session, floors) {
    const timestamp = new Date().toISOString();
    const body = JSON.stringify(
      Array.from({ length: LOGS_PER_REQUEST }, (_, i) => ({
        name: "prefect.flow_runs",
        level: 20,
        message: `Log line ${i} of a batch the bench sends`,
        timestamp,
        flow_run_id: session.runIds[i % session.runIds.length],
        task_run_id: null,
      })),
    );
    return {
      unit: "rows/s",
      ours: httpSide(session.api, [{ method: "POST", path: "/logs/", body }], session.settings.connections, LOGS_PER_REQUEST),
      floors: floors ? { rawLogs: rawSide(floors.raw, await logBatch(session.raw, LOGS_PER_REQUEST), LOGS_PER_REQUEST) } : {},
    };
  },
  // autocannon stops a timed load with requests in flight, whose events the server may still take:
  // a given number of requests leaves none, so every event sent is one counted.
  async "events-http"(session, floors) {
    const { connections } = session.settings;
    return {
      unit: "events/s",
      ours: eventsSide(session, EVENT_NAMES.http, async (shape, seconds, rate) => {
        const amount = rate > 0 ? Math.max(connections, Math.round((rate * seconds) / EVENTS_PER_REQUEST)) : connections * 4;
        const body = () => ({ body: eventBatchJson(shape, EVENTS_PER_REQUEST) });
        const result = await drive(session.api, [{ method: "POST", path: "/events", setup: body }], { connections, amount });
        return result.answered * EVENTS_PER_REQUEST;
      }),
      floors: floors ? { rawEvents: rawSide(floors.raw, await eventBatch(session.raw, EVENT_NAMES.template, RAW_EVENT_BATCH), RAW_EVENT_BATCH) } : {},
    };
  },
  async "events-ws"(session, floors) {
    return {
      unit: "events/s",
      ours: eventsSide(session, EVENT_NAMES.websocket, (shape, seconds) => sendOverWebsockets(session.api, shape, session.settings.connections, seconds)),
      floors: floors ? { rawEvents: rawSide(floors.raw, await eventBatch(session.raw, EVENT_NAMES.template, RAW_EVENT_BATCH), RAW_EVENT_BATCH) } : {},
    };
  },
};
