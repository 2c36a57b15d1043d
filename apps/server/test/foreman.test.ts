/**
 * The foreman (Prefect's services/foreman.py): workers that missed their heartbeats go OFFLINE, pools
 * without an online worker and deployments and queues not polled in time go NOT_READY, each with
 * Prefect's event, once; through passes (as of a later time) and through a real server.
 */
import { addSeconds, now, openDatabase, type Timestamp } from "@prefect/db";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { monitorWorkerHealth } from "../src/loops/foreman.js";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

async function flow(server: TestServer, name = "etl"): Promise<string> {
  return (await server.request("POST", "/flows/", { name })).body.id;
}

async function pool(server: TestServer, name: string) {
  const response = await server.request("POST", "/work_pools/", { name, type: "process" });
  if (response.status !== 201) throw new Error(`pool create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

async function heartbeat(server: TestServer, poolName: string, name: string, interval?: number) {
  const response = await server.request("POST", `/work_pools/${poolName}/workers/heartbeat`, { name, ...(interval === undefined ? {} : { heartbeat_interval_seconds: interval }) });
  expect(response.status).toBe(204);
}

async function workers(server: TestServer, poolName: string): Promise<Record<string, string>> {
  const body = (await server.request("POST", `/work_pools/${poolName}/workers/filter`, {})).body;
  return Object.fromEntries(body.map((w: { name: string; status: string }) => [w.name, w.status]));
}

const poolStatus = async (server: TestServer, name: string) => (await server.request("GET", `/work_pools/${name}`)).body;
const deploymentOf = async (server: TestServer, id: string) => (await server.request("GET", `/deployments/${id}`)).body;
const queueOf = async (server: TestServer, poolName: string, name: string) => (await server.request("GET", `/work_pools/${poolName}/queues/${name}`)).body;

async function deploy(server: TestServer, body: Record<string, unknown>) {
  const response = await server.request("POST", "/deployments/", body);
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

/** A worker of the pool polls these queues; waits until the poll is recorded (the queues READY). */
async function pollQueues(server: TestServer, poolName: string, queueNames: string[]) {
  expect((await server.request("POST", `/work_pools/${poolName}/get_scheduled_flow_runs`, { work_queue_names: queueNames })).status).toBe(200);
  for (const name of queueNames) await waitFor(async () => (await queueOf(server, poolName, name)).status === "READY", `queue ${name} READY`);
}

/** A runner polls these deployments (they become READY at once). */
async function pollDeployments(server: TestServer, ids: string[]) {
  expect((await server.request("POST", "/deployments/get_scheduled_flow_runs", { deployment_ids: ids })).status).toBe(200);
}

function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

const eventsAbout = (events: ReceivedEvent[], name: string, resourceId: string) => events.filter((e) => e.event === name && e.resource["prefect.resource.id"] === resourceId);

const inSeconds = (seconds: number): Timestamp => addSeconds(now(), seconds);

describeApi("foreman: a pass", (t) => {
  const settings = () => t.server.context.settings.services.foreman;
  const pass = (at: Timestamp, overrides: Partial<ReturnType<typeof settings>> = {}) => monitorWorkerHealth(t.server.context, { ...settings(), ...overrides }, { at });

  it("marks workers OFFLINE after missed heartbeats, then their pool NOT_READY with Prefect's event", async () => {
    const p = await pool(t.server, "p");
    const q = await pool(t.server, "q");
    const events = recordEvents(t.server);
    await heartbeat(t.server, "p", "fast", 10);
    await heartbeat(t.server, "p", "default");
    await heartbeat(t.server, "q", "slow", 600);
    expect((await poolStatus(t.server, "p")).status).toBe("READY");
    const [ready] = eventsAbout(events, "prefect.work-pool.ready", `prefect.work-pool.${p.id}`);
    expect(ready).toBeDefined();

    // Heard from recently enough: nothing changes.
    expect(await pass(inSeconds(20))).toEqual({ workersOffline: [], poolsNotReady: [], deploymentsNotReady: [], queuesNotReady: [] });
    // Past 3 x 10 seconds: the fast worker; the pool keeps the one with the default interval (3 x 30 seconds).
    const first = await pass(inSeconds(60));
    expect(first.workersOffline).toHaveLength(1);
    expect(first.poolsNotReady).toEqual([]);
    expect(await workers(t.server, "p")).toEqual({ fast: "OFFLINE", default: "ONLINE" });
    expect((await poolStatus(t.server, "p")).status).toBe("READY");
    // Past 90 seconds: the other worker too, and the pool has none online.
    const second = await pass(inSeconds(120));
    expect(second.workersOffline).toHaveLength(1);
    expect(second.poolsNotReady).toEqual([p.id]);
    expect(await workers(t.server, "p")).toEqual({ fast: "OFFLINE", default: "OFFLINE" });
    const after = await poolStatus(t.server, "p");
    expect(after.status).toBe("NOT_READY");
    const notReady = eventsAbout(events, "prefect.work-pool.not-ready", `prefect.work-pool.${p.id}`);
    expect(notReady).toHaveLength(1);
    expect(notReady[0]).toMatchObject({
      resource: { "prefect.resource.id": `prefect.work-pool.${p.id}`, "prefect.resource.name": "p", "prefect.work-pool.type": "process" },
      follows: ready?.id,
    });
    // The pool of the slow worker, and the workers' records, are untouched.
    expect(await workers(t.server, "q")).toEqual({ slow: "ONLINE" });
    expect((await poolStatus(t.server, "q")).status).toBe("READY");
    expect(eventsAbout(events, "prefect.work-pool.not-ready", `prefect.work-pool.${q.id}`)).toEqual([]);

    // Nothing more to do; a heartbeat brings the pool back.
    expect(await pass(inSeconds(120))).toEqual({ workersOffline: [], poolsNotReady: [], deploymentsNotReady: [], queuesNotReady: [] });
    await heartbeat(t.server, "p", "fast", 10);
    expect((await poolStatus(t.server, "p")).status).toBe("READY");
    expect(await workers(t.server, "p")).toEqual({ fast: "ONLINE", default: "OFFLINE" });
  });

  it("marks deployments and queues not polled within their timeouts NOT_READY, with Prefect's events", async () => {
    const f = await flow(t.server);
    const p = await pool(t.server, "p");
    for (const name of ["stale", "fresh"]) expect((await t.server.request("POST", "/work_pools/p/queues", { name })).status).toBe(201);
    const stale = await deploy(t.server, { name: "stale", flow_id: f, work_pool_name: "p", work_queue_name: "stale" });
    const fresh = await deploy(t.server, { name: "fresh", flow_id: f, work_pool_name: "p", work_queue_name: "fresh" });
    const never = await deploy(t.server, { name: "never", flow_id: f, work_pool_name: "p", work_queue_name: "default" });
    await pollDeployments(t.server, [stale.id, fresh.id]);
    await pollQueues(t.server, "p", ["stale", "fresh"]);
    // The queue of the fresh deployment was polled again later than the others.
    const freshQueue = await queueOf(t.server, "p", "fresh");
    await t.server.db.workQueues.markPolled([freshQueue.id], { now: inSeconds(100) });
    expect((await deploymentOf(t.server, stale.id)).status).toBe("READY");
    expect((await deploymentOf(t.server, never.id)).status).toBe("NOT_READY");
    const events = recordEvents(t.server);

    // Within the timeouts (60 seconds by default): nothing changes.
    expect(await pass(inSeconds(30))).toMatchObject({ deploymentsNotReady: [], queuesNotReady: [] });
    const changed = await pass(inSeconds(120));
    expect(changed.deploymentsNotReady).toEqual([stale.id]);
    const staleQueue = await queueOf(t.server, "p", "stale");
    expect(changed.queuesNotReady).toEqual([staleQueue.id]);
    expect((await deploymentOf(t.server, stale.id)).status).toBe("NOT_READY");
    expect((await deploymentOf(t.server, fresh.id)).status).toBe("READY");
    expect(staleQueue.status).toBe("NOT_READY");
    expect((await queueOf(t.server, "p", "fresh")).status).toBe("READY");
    expect((await queueOf(t.server, "p", "default")).status).toBe("NOT_READY");
    expect((await deploymentOf(t.server, never.id)).status).toBe("NOT_READY");

    const [deploymentEvent, ...moreDeploymentEvents] = eventsAbout(events, "prefect.deployment.not-ready", `prefect.deployment.${stale.id}`);
    expect(moreDeploymentEvents).toEqual([]);
    expect(deploymentEvent?.resource).toEqual({ "prefect.resource.id": `prefect.deployment.${stale.id}`, "prefect.resource.name": "stale" });
    expect(deploymentEvent?.related).toEqual([
      { "prefect.resource.id": `prefect.flow.${f}`, "prefect.resource.name": "etl", "prefect.resource.role": "flow" },
      { "prefect.resource.id": `prefect.work-queue.${staleQueue.id}`, "prefect.resource.name": "stale", "prefect.resource.role": "work-queue" },
      { "prefect.resource.id": `prefect.work-pool.${p.id}`, "prefect.resource.name": "p", "prefect.work-pool.type": "process", "prefect.resource.role": "work-pool" },
    ]);
    const queueEvents = eventsAbout(events, "prefect.work-queue.not-ready", `prefect.work-queue.${staleQueue.id}`);
    expect(queueEvents).toHaveLength(1);
    expect(queueEvents[0]?.related).toEqual([{ "prefect.resource.id": `prefect.work-pool.${p.id}`, "prefect.resource.name": "p", "prefect.work-pool.type": "process", "prefect.resource.role": "work-pool" }]);
    expect(events.map((e) => e.event).sort()).toEqual(["prefect.deployment.not-ready", "prefect.work-queue.not-ready"]);

    // Longer timeouts would have kept them; later, the fresh ones go too.
    const later = await pass(inSeconds(1000), { deploymentLastPolledTimeoutSeconds: 600, workQueueLastPolledTimeoutSeconds: 600 });
    expect(later).toMatchObject({ deploymentsNotReady: [fresh.id], queuesNotReady: [freshQueue.id] });
  });

  it("changes each row once, with one event each, when passes run at once, in one process or from another connection", async () => {
    const f = await flow(t.server);
    const pools = [];
    const deployments: string[] = [];
    for (let i = 0; i < 4; i++) {
      pools.push(await pool(t.server, `p${i}`));
      await heartbeat(t.server, `p${i}`, `w${i}`, 5);
      await heartbeat(t.server, `p${i}`, `v${i}`, 5);
      deployments.push((await deploy(t.server, { name: `d${i}`, flow_id: f, work_pool_name: `p${i}` })).id);
      await pollQueues(t.server, `p${i}`, ["default"]);
    }
    await pollDeployments(t.server, deployments);
    const events = recordEvents(t.server);
    const at = inSeconds(1000);
    const others = t.backend === "sqlite-memory" ? [] : [await openDatabase(t.server.db.config, { migrate: false })];
    try {
      const contexts = [t.server.context, t.server.context, t.server.context, ...others.map((db) => ({ ...t.server.context, db }))];
      const passes = await Promise.all(contexts.map((context) => monitorWorkerHealth(context, settings(), { at })));
      const all = (key: keyof (typeof passes)[number]) => passes.flatMap((pass) => pass[key]);
      expect(all("workersOffline")).toHaveLength(8);
      expect(new Set(all("workersOffline")).size).toBe(8);
      expect(all("poolsNotReady").sort()).toEqual(pools.map((p) => p.id).sort());
      expect(all("deploymentsNotReady").sort()).toEqual([...deployments].sort());
      expect(all("queuesNotReady").sort()).toEqual(pools.map((p) => p.default_queue_id).sort());
    } finally {
      for (const other of others) await other.close();
    }
    for (const p of pools) expect(eventsAbout(events, "prefect.work-pool.not-ready", `prefect.work-pool.${p.id}`)).toHaveLength(1);
    for (const id of deployments) expect(eventsAbout(events, "prefect.deployment.not-ready", `prefect.deployment.${id}`)).toHaveLength(1);
    for (const p of pools) expect(eventsAbout(events, "prefect.work-queue.not-ready", `prefect.work-queue.${p.default_queue_id}`)).toHaveLength(1);
    expect(events).toHaveLength(12);
  });
});

describeApi(
  "foreman: in a real server",
  (t) => {
    it("marks a silent worker OFFLINE, its pool and an unpolled deployment and queue NOT_READY, on its own", async () => {
      const f = await flow(t.server);
      const p = await pool(t.server, "p");
      const events = recordEvents(t.server);
      const d = await deploy(t.server, { name: "d", flow_id: f, work_pool_name: "p" });
      await heartbeat(t.server, "p", "w", 1);
      await pollDeployments(t.server, [d.id]);
      await pollQueues(t.server, "p", ["default"]);
      await waitFor(async () => (await workers(t.server, "p")).w === "OFFLINE", "the worker OFFLINE");
      await waitFor(async () => (await poolStatus(t.server, "p")).status === "NOT_READY", "the pool NOT_READY");
      await waitFor(async () => (await deploymentOf(t.server, d.id)).status === "NOT_READY", "the deployment NOT_READY");
      await waitFor(async () => (await queueOf(t.server, "p", "default")).status === "NOT_READY", "the queue NOT_READY");
      await waitFor(
        () =>
          eventsAbout(events, "prefect.work-pool.not-ready", `prefect.work-pool.${p.id}`).length === 1 &&
          eventsAbout(events, "prefect.deployment.not-ready", `prefect.deployment.${d.id}`).length === 1 &&
          eventsAbout(events, "prefect.work-queue.not-ready", `prefect.work-queue.${p.default_queue_id}`).length === 1,
        "the events",
      );
      // A heartbeat brings the worker and the pool back.
      await heartbeat(t.server, "p", "w", 60);
      expect(await workers(t.server, "p")).toEqual({ w: "ONLINE" });
      expect((await poolStatus(t.server, "p")).status).toBe("READY");
    });
  },
  {
    PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "true",
    PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS: "0.2",
    PREFECT_SERVER_SERVICES_FOREMAN_INACTIVITY_HEARTBEAT_MULTIPLE: "1",
    PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS: "1",
    PREFECT_SERVER_SERVICES_FOREMAN_WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS: "1",
  },
);
