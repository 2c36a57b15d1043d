/**
 * The whole path as a user takes it, with real processes: the server (with its scheduler) and a
 * worker on one database, a deployment with an interval schedule created through the API, and flow
 * run processes that talk to the API. Runs are created by the scheduler, taken by the worker when
 * due, executed, and end COMPLETED with their output in their logs; a run cancelled through the API
 * has its process stopped and ends CANCELLED.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseConfig } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ServerProcess, spawnWorker, startServerProcess, type WorkerProcess, waitFor } from "./support.js";

/** A flow run's command: reads its own run through PREFECT_API_URL and prints about it. */
const FLOW_SCRIPT = `
const api = process.env.PREFECT_API_URL;
const id = process.env.PREFECT__FLOW_RUN_ID;
const response = await fetch(api + "/flow_runs/" + id);
if (!response.ok) throw new Error("cannot read my flow run: " + response.status);
const run = await response.json();
console.log("hello from " + run.name + " (" + run.id + "), deployment " + run.deployment_id);
console.error("a line on stderr");
`;

/** A flow run's command that waits until it is stopped. */
const SLEEPER_SCRIPT = `
console.log("sleeping");
setTimeout(() => undefined, 600_000);
`;

describe.each(selectedBackends().filter((backend) => backend !== "sqlite-memory"))("a scheduled deployment run by a worker [%s]", (backend) => {
  let config: DatabaseConfig;
  let remove: () => Promise<void>;
  let dir: string;
  let server: ServerProcess | undefined;
  let worker: WorkerProcess | undefined;

  beforeEach(async () => {
    ({ config, remove } = await freshConfig(backend));
    dir = mkdtempSync(join(tmpdir(), "worker-e2e-"));
  });
  afterEach(async () => {
    for (const child of [worker?.child, server?.child]) if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await Promise.all([worker?.exit, server?.exit]);
    worker = undefined;
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
    await remove();
  });

  // biome-ignore lint/suspicious/noExplicitAny: the API's answers are read freely
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    if (!server) throw new Error("no server");
    const response = await fetch(`${server.api}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const script = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return `"${process.execPath}" "${path}"`;
  };

  /** The server, and a worker that creates its `process` pool; resolves once the pool exists. */
  const startBoth = async () => {
    server = await startServerProcess(config, {
      PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: "1",
      PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS: "1",
      PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS: "3",
      PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS: "3",
    });
    worker = spawnWorker(config, ["--pool", "e2e-pool", "--polling-interval", "0.5", "--prefetch-seconds", "2", "--api-url", server.api]);
    await waitFor(async () => {
      const response = await fetch(`${server?.api}/work_pools/e2e-pool`);
      return response.ok;
    }, "the worker to create its pool");
    return call("POST", "/flows/", { name: "e2e-flow" });
  };

  const stopBoth = async () => {
    worker?.child.kill("SIGTERM");
    expect(await worker?.exit).toEqual({ code: 0, signal: null });
    server?.child.kill("SIGTERM");
    expect(await server?.exit).toBe(0);
  };

  it("creates runs from an interval schedule, executes each when due, and stores COMPLETED with the output in the logs", async () => {
    const flow = await startBoth();
    const deployment = await call("POST", "/deployments/", {
      name: "every-two-seconds",
      flow_id: flow.id,
      work_pool_name: "e2e-pool",
      tags: ["e2e"],
      job_variables: { command: script("flow.mjs", FLOW_SCRIPT) },
      schedules: [{ schedule: { interval: 2 }, active: true }],
    });

    const completed = await waitFor(
      async () => {
        const runs = await call("POST", "/flow_runs/filter", { flow_runs: { deployment_id: { any_: [deployment.id] }, state: { type: { any_: ["COMPLETED"] } } } });
        return runs.length >= 3 ? runs : undefined;
      },
      "three scheduled runs to complete",
      90_000,
    );

    for (const run of completed) {
      expect(run).toMatchObject({ auto_scheduled: true, work_queue_name: "default", infrastructure_pid: expect.stringMatching(/:\d+$/) });
      expect(run.tags).toEqual(expect.arrayContaining(["auto-scheduled", "e2e"]));
      expect(run.idempotency_key).toMatch(new RegExp(`^scheduled ${deployment.id} `));
      // Taken ahead of time, started only once due.
      expect(Date.parse(run.start_time)).toBeGreaterThanOrEqual(Date.parse(run.expected_start_time));
      const states = await call("GET", `/flow_run_states/?flow_run_id=${run.id}`);
      const types = states.map((s: { type: string }) => s.type);
      expect(types[0]).toBe("SCHEDULED");
      expect(types.slice(-3)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
      const logs = await call("POST", "/logs/filter", { logs: { flow_run_id: { any_: [run.id] } }, sort: "TIMESTAMP_ASC" });
      const messages = logs.map((l: { message: string }) => l.message).join("\n");
      expect(messages).toContain(`hello from ${run.name} (${run.id}), deployment ${deployment.id}`);
      expect(messages).toContain("a line on stderr");
    }
    // Every run of the schedule is unique per date.
    const all = await call("POST", "/flow_runs/filter", { flow_runs: { deployment_id: { any_: [deployment.id] } } });
    const dates = all.map((r: { expected_start_time: string }) => r.expected_start_time);
    expect(new Set(dates).size).toBe(dates.length);
    await stopBoth();
  });

  it("stops the process of a run cancelled through the API and ends it CANCELLED", async () => {
    const flow = await startBoth();
    const deployment = await call("POST", "/deployments/", {
      name: "sleeper",
      flow_id: flow.id,
      work_pool_name: "e2e-pool",
      job_variables: { command: script("sleeper.mjs", SLEEPER_SCRIPT) },
    });
    const run = await call("POST", `/deployments/${deployment.id}/create_flow_run`, {});
    const running = await waitFor(
      async () => {
        const current = await call("GET", `/flow_runs/${run.id}`);
        return current.state_type === "RUNNING" && current.infrastructure_pid ? current : undefined;
      },
      "the run to be RUNNING",
      60_000,
    );
    const pid = Number(String(running.infrastructure_pid).split(":").pop());
    expect(pid).toBeGreaterThan(0);

    const proposed = await call("POST", `/flow_runs/${run.id}/set_state`, { state: { type: "CANCELLING", name: "Cancelling" } });
    expect(proposed.status).toBe("ACCEPT");
    const cancelled = await waitFor(
      async () => {
        const current = await call("GET", `/flow_runs/${run.id}`);
        return current.state_type === "CANCELLED" ? current : undefined;
      },
      "the run to be CANCELLED",
      60_000,
    );
    expect(cancelled.state.name).toBe("Cancelled");
    expect(() => process.kill(pid, 0)).toThrow();
    await stopBoth();
  });
});
