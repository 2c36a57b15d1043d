/**
 * PostgreSQL restarted under load, as its clients see it: every connection to the database terminated
 * (`pg_terminate_backend`) three times while a server process and the worker are busy. A load loop
 * creates flow runs, logs and events through the server's API; the worker runs the runs. Through the
 * terminations both processes keep running, a request whose connection dies answers 503 with
 * Retry-After, the server LISTENs again, and afterwards every write the server acknowledged is stored,
 * every event reached a websocket subscriber and every run ended COMPLETED.
 *
 * PostgreSQL only (SQLite has no connections to lose): vitest.config.ts leaves test/postgres out when
 * PostgreSQL is not among the selected backends.
 */
import { randomUUID } from "node:crypto";
import type { DatabaseConfig } from "@prefect/db";
import { freshConfig, openPostgresSession, type PostgresSession, terminateConnections } from "@prefect/db/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ServerProcess, spawnWorker, startServerProcess, subscribeToEvents, type WorkerProcess, waitFor } from "../support.js";

/** What the server acknowledged (2xx) and what it answered otherwise. */
interface Ledger {
  runs: string[];
  logs: string[];
  events: string[];
  /** Answers 503, with their Retry-After header. */
  unavailable: (string | null)[];
  /** Anything else: answers other than 2xx and 503, and requests that got no answer. */
  unexpected: string[];
}

/** A subscriber of `/api/events/out` (Prefect's protocol), keeping the ids it receives. */
async function subscribe(api: string, filter: Record<string, unknown>): Promise<{ ids: Set<string>; close(): void }> {
  const ids = new Set<string>();
  const { close } = await subscribeToEvents(api, filter, (event) => ids.add(event.id));
  return { ids, close };
}

/** Each process names its connections, so that the test can tell whose statement waits. */
const APPLICATION_NAME = "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_APPLICATION_NAME";
const SERVER_APP = "restart-server";
const WORKER_APP = "restart-worker";

const event = (name: string, resourceId: string) => ({
  id: randomUUID(),
  occurred: new Date().toISOString(),
  event: name,
  resource: { "prefect.resource.id": resourceId },
});

describe("PostgreSQL connections terminated under load", () => {
  let config: DatabaseConfig;
  let remove: () => Promise<void>;
  let server: ServerProcess | undefined;
  let worker: WorkerProcess | undefined;
  let session: PostgresSession | undefined;
  let subscriber: { ids: Set<string>; close(): void } | undefined;
  /** The load loops run while this is true. */
  let loading = false;
  let loops: Promise<void>[] = [];

  beforeEach(async () => {
    ({ config, remove } = await freshConfig("postgres"));
  });
  afterEach(async () => {
    loading = false;
    await Promise.all(loops);
    subscriber?.close();
    for (const child of [worker?.child, server?.child]) if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all([worker?.exit, server?.exit]);
    await session?.close();
    server = worker = session = subscriber = undefined;
    loops = [];
    await remove();
  });

  it("the server and the worker keep running, answer 503 meanwhile, reconnect, and lose nothing acknowledged", async () => {
    if (config.backend !== "postgres") throw new Error("a PostgreSQL database was expected");
    server = await startServerProcess(config, { PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: "0.1", [APPLICATION_NAME]: SERVER_APP });
    const api = server.api;
    worker = spawnWorker(config, ["--pool", "restart-pool", "--polling-interval", "0.2", "--api-url", api], { [APPLICATION_NAME]: WORKER_APP });
    session = await openPostgresSession(config.url);
    const admin = session;

    const post = async (path: string, body: unknown): Promise<Response> =>
      fetch(`${api}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    // biome-ignore lint/suspicious/noExplicitAny: the API's answers are read freely
    const create = async (path: string, body: unknown): Promise<any> => {
      const response = await post(path, body);
      if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
      return response.json();
    };
    await waitFor(async () => (await fetch(`${api}/work_pools/restart-pool`)).ok, "the worker to create its pool");
    const flow = await create("/flows/", { name: "restart-flow" });
    const deployment = await create("/deployments/", { name: "under-load", flow_id: flow.id, work_pool_name: "restart-pool", job_variables: { command: "sleep 0.2" } });
    const until = new Date(Date.now() + 7 * 86_400_000).toISOString();
    subscriber = await subscribe(api, { event: { prefix: ["restart."] }, occurred: { until } });

    const ledger: Ledger = { runs: [], logs: [], events: [], unavailable: [], unexpected: [] };
    /** One request of the load: its outcome goes into the ledger; true when it was acknowledged. */
    const send = async (path: string, body: unknown): Promise<Response | null> => {
      let response: Response;
      try {
        response = await post(path, body);
      } catch (error) {
        ledger.unexpected.push(`POST ${path}: no answer (${String(error)})`);
        return null;
      }
      if (response.ok) return response;
      if (response.status === 503) ledger.unavailable.push(response.headers.get("retry-after"));
      else ledger.unexpected.push(`POST ${path}: ${response.status} ${await response.text()}`);
      return null;
    };
    loading = true;
    const loop = async () => {
      while (loading) {
        const created = await send(`/deployments/${deployment.id}/create_flow_run`, {});
        if (!created) continue;
        const run = (await created.json()) as { id: string };
        ledger.runs.push(run.id);
        const message = `load log ${randomUUID()}`;
        const log = { name: "restart.load", level: 20, message, timestamp: new Date().toISOString(), flow_run_id: run.id };
        if (await send("/logs/", [log])) ledger.logs.push(message);
        const sent = event("restart.load", `prefect.flow-run.${run.id}`);
        if (await send("/events", [sent])) ledger.events.push(sent.id);
      }
    };
    loops = [loop(), loop(), loop()];

    const listening = () =>
      waitFor(
        async () =>
          (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND query = 'LISTEN prefect_events'", [SERVER_APP]))
            .length > 0,
        "the server to LISTEN",
      );
    /** Waits until a statement of `application` (LIKE one of `statements`) waits for a lock. */
    const blocked = (application: string, statements: string[]) =>
      waitFor(async () => {
        // Inside a transaction, pg_stat_activity is read once; this reads it anew.
        await admin.query("SELECT pg_stat_clear_snapshot()");
        const rows = await admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock' AND query LIKE ANY($2)",
          [application, statements],
        );
        return rows.length > 0;
      }, `a statement of ${application} (${statements.join(" or ")}) to wait for a lock`);

    /** Begins a transaction holding the tables the outage's writes wait for (again when it deadlocks with one of them). */
    const holdLocks = () =>
      waitFor(async () => {
        await admin.query("BEGIN");
        try {
          await admin.query("LOCK TABLE flow, flow_run, events IN EXCLUSIVE MODE");
          return true;
        } catch (error) {
          await admin.query("ROLLBACK");
          if ((error as { code?: string }).code !== "40P01") throw error;
          return false;
        }
      }, "the locks");

    for (let outage = 0; outage < 3; outage++) {
      // Load goes through before each outage, and the server is listening.
      const before = ledger.events.length;
      await waitFor(() => ledger.events.length >= before + 3, "the load to go on");
      await listening();
      // Writes certainly in flight when the connections go, held by locks of this session: a request
      // (a flow insert, which the load never makes), the persister's batch with an event the server has
      // acknowledged, and a transaction of the worker (claiming or finishing a run).
      await holdLocks();
      const probe = post("/flows/", { name: `probe-${outage}` });
      const held = event("restart.held", "restart.held");
      expect((await post("/events", [held])).ok).toBe(true);
      ledger.events.push(held.id);
      await blocked(SERVER_APP, ['INSERT INTO "flow" (%']);
      // The batch waits for the table, or for the append lock that a writer waiting for the table holds.
      await blocked(SERVER_APP, ["WITH head AS (SELECT COALESCE(MAX(position), 0) AS h FROM events)%", "SELECT pg_advisory_xact_lock(%"]);
      await blocked(WORKER_APP, ["%"]);
      const terminated = await terminateConnections(admin);
      await admin.query("COMMIT");
      expect(terminated).toBeGreaterThan(0);
      const answer = await probe;
      expect(answer.status).toBe(503);
      expect(Number(answer.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }

    // After the last outage: the load goes on, the server LISTENs again, new events reach the subscriber.
    const last = ledger.events.length;
    await waitFor(() => ledger.events.length >= last + 3, "the load to go on after the last outage");
    await listening();
    loading = false;
    await Promise.all(loops);
    const after = event("restart.after", "restart.after");
    expect((await post("/events", [after])).ok).toBe(true);

    expect(ledger.unexpected).toEqual([]);
    expect(ledger.unavailable.every((header) => Number(header) >= 1)).toBe(true);
    expect(server.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();

    // Everything acknowledged is stored; every stored event reached the subscriber; every run completed.
    /** The values of the query's column `v` (the query takes an array of them as $1). */
    const stored = async (sql: string, values: string[]) => new Set((await admin.query<{ v: string }>(sql, [values])).map((row) => row.v));
    await waitFor(
      async () => (await stored("SELECT id::text AS v FROM events WHERE id = ANY($1::uuid[])", [...ledger.events, after.id])).size === ledger.events.length + 1,
      "every acknowledged event to be stored",
    );
    const received = subscriber.ids;
    await waitFor(() => ledger.events.every((id) => received.has(id)) && received.has(after.id), "every event at the subscriber");
    expect((await stored("SELECT message AS v FROM log WHERE message = ANY($1)", ledger.logs)).size).toBe(ledger.logs.length);
    expect((await stored("SELECT id::text AS v FROM flow_run WHERE id = ANY($1::uuid[])", ledger.runs)).size).toBe(ledger.runs.length);
    await waitFor(
      async () => {
        const states = await admin.query<{ state_type: string; n: number }>(
          "SELECT state_type, count(*)::int AS n FROM flow_run WHERE deployment_id = $1 GROUP BY state_type",
          [deployment.id],
        );
        return states.length === 1 && states[0]!.state_type === "COMPLETED" ? true : undefined;
      },
      "every run to complete",
    );
    // The worker's events of each run (its transitions), stored although the worker's writes failed.
    const transitions = async () =>
      (
        await admin.query<{ n: number }>(
          `SELECT count(DISTINCT (resource_id, event))::int AS n FROM events
           WHERE event IN ('prefect.flow-run.Pending', 'prefect.flow-run.Running', 'prefect.flow-run.Completed') AND resource_id = ANY($1)`,
          [ledger.runs.map((id) => `prefect.flow-run.${id}`)],
        )
      )[0]!.n;
    await waitFor(async () => (await transitions()) === 3 * ledger.runs.length || undefined, "the worker's events of every run", 15_000);
    expect(server.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
  }, 120_000);
});
