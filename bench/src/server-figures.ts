/**
 * The figures of the real server under HTTP and websocket load: each is a function of a running
 * server (a session), so the same load serves the table and a CPU profile. Each measurement starts
 * with a warm-up of the same load, and reports the share of a core the server used meanwhile.
 */
import { eventBatchJson, type EventShape, sendOverWebsockets, waitUntilStored } from "./events.js";
import { call, drive, type LoadRequest } from "./load.js";
import { withCpuShare } from "./processes.js";
import type { RawDatabase } from "./raw.js";
import type { BenchSettings, ProfilableKey } from "./settings.js";
import type { Quantity } from "./table.js";

export const LOGS_PER_REQUEST = 100;
export const EVENTS_PER_REQUEST = 50;

/** A running server with what the loads need: a flow and a few runs. */
export interface Session {
  readonly api: string;
  readonly pid: number;
  readonly raw: RawDatabase;
  readonly settings: BenchSettings;
  readonly flowId: string;
  /** Runs created before the loads (PENDING). */
  readonly runIds: readonly string[];
}

export interface Measured {
  readonly value: Quantity;
  /** Share of one core the server used. */
  readonly cpu: number | null;
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

export async function openSession(api: string, pid: number, raw: RawDatabase, settings: BenchSettings, runs: number): Promise<Session> {
  const flow = await call<{ id: string }>(api, "POST", "/flows/", { name: "bench" });
  const runIds: string[] = [];
  const body = JSON.parse(createBody(flow.id)) as unknown;
  for (let i = 0; i < runs; i++) runIds.push((await call<{ id: string }>(api, "POST", "/flow_runs/", body)).id);
  return { api, pid, raw, settings, flowId: flow.id, runIds };
}

async function measureHttp(session: Session, requests: readonly LoadRequest[], perRequest = 1): Promise<{ perSecond: number; cpu: number | null }> {
  const { connections, seconds } = session.settings;
  const warm = warmSeconds(session.settings);
  if (warm > 0) await drive(session.api, requests, { connections, seconds: warm });
  const { result, cpu } = await withCpuShare(session.pid, () => drive(session.api, requests, { connections, seconds }));
  return { perSecond: result.perSecond * perRequest, cpu };
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
 * Events per second, counted by the rows stored: from the first event sent to the last row seen.
 * `send` sends about `seconds` worth of events (`rate`: the last measured events per second) and
 * returns how many it sent, every one of them acknowledged.
 */
async function measureEvents(
  session: Session,
  send: (shape: EventShape, seconds: number, rate: number) => Promise<number>,
  name: string,
): Promise<Measured> {
  const shape = (n: string): EventShape => ({ name: n, flowRunIds: session.runIds, flowId: session.flowId });
  const timed = async (n: string, seconds: number, rate: number) => {
    const start = performance.now();
    const sent = await send(shape(n), seconds, rate);
    const storedAt = await waitUntilStored(session.raw, n, sent);
    return sent / ((storedAt - start) / 1000);
  };
  const warm = warmSeconds(session.settings);
  const warmRate = warm > 0 ? await timed(`${name}.warm-up`, warm, 0) : 0;
  const { result, cpu } = await withCpuShare(session.pid, () => timed(name, session.settings.seconds, warmRate));
  return { value: { value: result, unit: "events/s" }, cpu };
}

/** Event names the server's figures store (the raw floor copies one of them). */
export const EVENT_NAMES = { http: "bench.events.http", websocket: "bench.events.websocket" } as const;

export const SERVER_FIGURES: Record<ProfilableKey, (session: Session) => Promise<Measured>> = {
  async create(session) {
    const m = await measureHttp(session, [createRequest(session)]);
    return { value: { value: m.perSecond, unit: "req/s" }, cpu: m.cpu };
  },
  async chain(session) {
    const m = await measureHttp(session, [createRequest(session), setState("RUNNING"), setState("COMPLETED")]);
    return { value: { value: m.perSecond, unit: "req/s" }, cpu: m.cpu };
  },
  async get(session) {
    const ids = session.runIds;
    let next = 0;
    const m = await measureHttp(session, [
      {
        method: "GET",
        path: "/flow_runs/{id}",
        setup: () => ({ path: `/flow_runs/${ids[next++ % ids.length]}` }),
      },
    ]);
    return { value: { value: m.perSecond, unit: "req/s" }, cpu: m.cpu };
  },
  async logs(session) {
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
    const m = await measureHttp(session, [{ method: "POST", path: "/logs/", body }], LOGS_PER_REQUEST);
    return { value: { value: m.perSecond, unit: "rows/s" }, cpu: m.cpu };
  },
  // autocannon stops a timed load with requests in flight, whose events the server may still take:
  // a given number of requests leaves none, so every event sent is one counted.
  "events-http": (session) =>
    measureEvents(
      session,
      async (shape, seconds, rate) => {
        const { connections } = session.settings;
        const amount = rate > 0 ? Math.max(connections, Math.round((rate * seconds) / EVENTS_PER_REQUEST)) : connections * 4;
        const body = () => ({ body: eventBatchJson(shape, EVENTS_PER_REQUEST) });
        const result = await drive(session.api, [{ method: "POST", path: "/events", setup: body }], { connections, amount });
        return result.answered * EVENTS_PER_REQUEST;
      },
      EVENT_NAMES.http,
    ),
  "events-ws": (session) =>
    measureEvents(session, (shape, seconds) => sendOverWebsockets(session.api, shape, session.settings.connections, seconds), EVENT_NAMES.websocket),
};
