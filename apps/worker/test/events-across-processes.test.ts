/**
 * Events across processes: two servers and a worker on one database, as real processes. A websocket
 * subscriber on server A receives, in order and once each, the events of a run created through server B
 * and executed by the worker (server B and the worker store them; A reads them from the events table),
 * and a subscriber that reconnects as Prefect's client does (backfill from a minute before the last
 * event it saw, dropping the ids it has seen) misses nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseConfig } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ServerProcess, spawnWorker, startServerProcess, subscribeToEvents, type WireEvent, type WorkerProcess, waitFor } from "./support.js";

/** A subscriber of `/api/events/out`, keeping what it receives. */
async function subscribe(api: string, filter: Record<string, unknown>): Promise<{ events: WireEvent[]; close(): void }> {
  const events: WireEvent[] = [];
  const { close } = await subscribeToEvents(api, filter, (event) => events.push(event));
  return { events, close };
}

const FLOW_SCRIPT = `console.log("hello");`;

describe.each(selectedBackends().filter((backend) => backend !== "sqlite-memory"))("events across processes [%s]", (backend) => {
  let config: DatabaseConfig;
  let remove: () => Promise<void>;
  let dir: string;
  const servers: ServerProcess[] = [];
  let worker: WorkerProcess | undefined;

  beforeEach(async () => {
    ({ config, remove } = await freshConfig(backend));
    dir = mkdtempSync(join(tmpdir(), "events-processes-"));
  });
  afterEach(async () => {
    for (const child of [worker?.child, ...servers.map((s) => s.child)]) if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all([worker?.exit, ...servers.map((s) => s.exit)]);
    servers.length = 0;
    worker = undefined;
    rmSync(dir, { recursive: true, force: true });
    await remove();
  });

  // biome-ignore lint/suspicious/noExplicitAny: the API's answers are read freely
  const call = async (api: string, method: string, path: string, body?: unknown): Promise<any> => {
    const response = await fetch(`${api}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  it("a subscriber on one server receives, in order and once, the events of a run created on another and run by the worker", async () => {
    // One after the other: the first migrates the database.
    const a = await startServerProcess(config);
    servers.push(a);
    const b = await startServerProcess(config);
    servers.push(b);
    worker = spawnWorker(config, ["--pool", "events-pool", "--polling-interval", "0.5", "--api-url", b.api]);
    await waitFor(async () => (await fetch(`${b.api}/work_pools/events-pool`)).ok, "the worker to create its pool");

    const flow = await call(b.api, "POST", "/flows/", { name: "events-flow" });
    // As Prefect's client sends it: `occurred.until` at the end of the week (the server's default is now).
    const until = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const filter = { any_resource: { id: [`prefect.flow.${flow.id}`] }, event: { prefix: ["prefect.flow-run."] }, occurred: { until } };
    const live = await subscribe(a.api, filter);

    const path = join(dir, "flow.mjs");
    writeFileSync(path, FLOW_SCRIPT);
    const deployment = await call(b.api, "POST", "/deployments/", {
      name: "once",
      flow_id: flow.id,
      work_pool_name: "events-pool",
      job_variables: { command: `"${process.execPath}" "${path}"` },
    });
    const run = await call(b.api, "POST", `/deployments/${deployment.id}/create_flow_run`, {});
    // The first subscriber goes away after the first event and comes back once the run is over.
    await waitFor(() => live.events.length >= 1, "the first event on server A");
    const early = await subscribe(a.api, filter);
    await waitFor(() => early.events.length >= 1, "the first event on the second subscriber");
    early.close();
    const seen = [...early.events];

    await waitFor(async () => (await call(b.api, "GET", `/flow_runs/${run.id}`)).state_type === "COMPLETED", "the run to complete", 60_000);
    await waitFor(() => live.events.some((e) => e.event === "prefect.flow-run.Completed"), "the Completed event on server A");

    // Everything stored, in the order the table gives (read through server A, oldest first).
    const stored = (await call(a.api, "POST", "/events/filter", { filter: { ...filter, occurred: {}, order: "ASC" } })).events as WireEvent[];
    expect(stored.map((e) => e.event)).toEqual(["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed"]);
    expect(stored.every((e) => e.resource["prefect.resource.id"] === `prefect.flow-run.${run.id}`)).toBe(true);
    expect(live.events.map((e) => e.id)).toEqual(stored.map((e) => e.id));

    // Reconnecting as Prefect's client does: from a minute before the last event seen, skipping seen ids.
    const since = new Date(Date.parse(seen.at(-1)!.occurred) - 60_000).toISOString();
    const again = await subscribe(a.api, { ...filter, occurred: { since, until } });
    await waitFor(() => again.events.length >= stored.length, "the backfill after reconnecting");
    const seenIds = new Set(seen.map((e) => e.id));
    const resumed = [...seen, ...again.events.filter((e) => !seenIds.has(e.id))];
    expect(resumed.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    live.close();
    again.close();
  }, 120_000);
});
