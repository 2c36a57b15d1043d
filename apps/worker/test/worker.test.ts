import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addSeconds, type Database, now, openDatabase } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { setFlowRunState } from "@prefect/orchestration";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultBaseJobTemplate } from "../src/job-configuration.js";
import type { WorkerOptions } from "../src/options.js";
import {
  alive,
  type Fixture,
  fixture,
  mostAtOnce,
  pidOf,
  type RunningWorker,
  startWorker,
  stateOf,
  waitFor,
  waitForStates,
} from "./support.js";

const FINAL = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"];

describeEachBackend("process worker", (t) => {
  let f: Fixture;
  const workers: RunningWorker[] = [];
  const extra: Database[] = [];
  const dirs: string[] = [];
  beforeEach(async () => {
    f = await fixture(t.db);
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) {
      w.worker.stop();
      w.worker.stop();
      await w.done;
    }
    await Promise.all(extra.splice(0).map((db) => db.close()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const start = (overrides: Partial<WorkerOptions> = {}) => {
    const w = startWorker(t.db, overrides);
    workers.push(w);
    return w;
  };
  /** Another connection to the database where the backend allows it (each worker as if in its own process). */
  const connection = async () => {
    if (t.backend === "sqlite-memory") return t.db;
    const db = await openDatabase(t.db.config, { migrate: false });
    extra.push(db);
    return db;
  };
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "worker-test-"));
    dirs.push(dir);
    return dir;
  };
  const logsOf = async (id: string) => (await t.db.logs.read({ filter: { flow_run_id: { any_: [id] } }, sort: "TIMESTAMP_ASC" })).map((l) => ({ name: l.name, level: l.level, message: l.message }));
  const historyOf = async (id: string) => (await t.db.flowRuns.readStates(id)).map((s) => `${s.type}/${s.name}`);

  it("runs a due flow run: COMPLETED, its output in its logs, where it ran recorded, Prefect's events stored", async () => {
    const deployment = await f.deployment("sh -c 'echo hello; echo \"run $PREFECT__FLOW_RUN_ID at $PREFECT_API_URL\"; echo warning >&2'");
    const run = await f.run(deployment);
    const w = start();
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state_type).toBe("COMPLETED");
    expect(done!.infrastructure_pid).toMatch(/^test-host:\d+$/);
    expect(done!.run_count).toBe(1);
    expect(done!.labels).toMatchObject({ "prefect.worker.name": w.worker.name, "prefect.worker.type": "process", "prefect.work-pool.name": "test-pool" });
    expect(await historyOf(run.id)).toEqual(["SCHEDULED/Scheduled", "PENDING/Pending", "RUNNING/Running", "COMPLETED/Completed"]);

    const logs = await logsOf(run.id);
    expect(logs).toContainEqual({ name: "prefect.flow_runs", level: 20, message: "hello" });
    expect(logs).toContainEqual({ name: "prefect.flow_runs", level: 20, message: `run ${run.id} at http://127.0.0.1:4200/api` });
    expect(logs).toContainEqual({ name: "prefect.flow_runs", level: 40, message: "warning" });
    expect(logs).toContainEqual({ name: "prefect.flow_runs.worker", level: 20, message: `Worker '${w.worker.name}' submitting flow run '${run.id}'` });
    expect(logs).toContainEqual({ name: "prefect.flow_runs.worker", level: 20, message: `Process for flow run '${run.name}' exited cleanly.` });

    const events = await waitFor(async () => {
      const stored = await t.db.events.read({ filter: { related: { id: [`prefect.flow-run.${run.id}`] } } });
      const own = await t.db.events.read({ filter: { resource: { id: [`prefect.flow-run.${run.id}`] } } });
      const all = [...stored, ...own];
      return all.some((e) => e.event === "prefect.worker.executed-flow-run") ? all : undefined;
    }, "the worker's events");
    const names = events.map((e) => e.event);
    for (const name of ["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed", "prefect.worker.submitted-flow-run"]) {
      expect(names).toContain(name);
    }
    const submitted = events.find((e) => e.event === "prefect.worker.submitted-flow-run")!;
    const executed = events.find((e) => e.event === "prefect.worker.executed-flow-run")!;
    expect(executed.follows).toBe(submitted.id);
    expect(executed.resource).toMatchObject({ "prefect.resource.name": w.worker.name, "prefect.worker-type": "process" });
    expect(executed.resource["prefect.resource.id"]).toMatch(/^prefect\.worker\.process\.test-worker-\d+$/);
    expect(executed.related).toContainEqual(
      expect.objectContaining({
        "prefect.resource.id": `prefect.flow-run.${run.id}`,
        "prefect.resource.role": "flow-run",
        "prefect.infrastructure.identifier": done!.infrastructure_pid,
        "prefect.infrastructure.status-code": "0",
      }),
    );
    expect(executed.related.map((r) => r["prefect.resource.role"])).toEqual(["deployment", "flow", "flow-run", "work-pool"]);

    const [worker] = await t.db.workers.read(f.pool.id);
    expect(worker).toMatchObject({ name: w.worker.name, status: "ONLINE" });
    expect((await t.db.workPools.get(f.pool.id))!.status).toBe("READY");
  });

  it("runs Prefect's engine when no command is configured, leaving its logs to it (they reach the API on their own)", async () => {
    // A stand-in for `python -m prefect.engine` first on the PATH.
    const bin = tempDir();
    writeFileSync(join(bin, "python"), '#!/bin/sh\necho "engine $1 $2 for $PREFECT__FLOW_RUN_ID"\n', { mode: 0o755 });
    const deployment = await f.deployment("", { job_variables: {} });
    const run = await f.run(deployment);
    const w = startWorker(t.db, {}, { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` });
    workers.push(w);
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state_type).toBe("COMPLETED");
    const logs = await logsOf(run.id);
    expect(logs).toContainEqual({ name: "prefect.flow_runs.worker", level: 20, message: `Process for flow run '${run.name}' exited cleanly.` });
    expect(logs.filter((l) => l.name === "prefect.flow_runs")).toEqual([]);
  });

  it("fails a run whose process exits with a non-zero code, with Prefect's message", async () => {
    const run = await f.run(await f.deployment("sh -c 'echo failing; exit 3'"));
    start();
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state).toMatchObject({
      type: "FAILED",
      message: "Flow run infrastructure exited with non-zero status code 3. Process exited with an unexpected status code.",
    });
    const logs = await logsOf(run.id);
    expect(logs).toContainEqual({ name: "prefect.flow_runs.worker", level: 40, message: `Process for flow run '${run.name}' exited with status code: 3; Process exited with an unexpected status code.` });
    expect(logs.map((l) => l.message)).toContain("failing");
  });

  it("retries a failed run as the retry policy says, and fails it when the retries are used up", async () => {
    const run = await f.run(await f.deployment("sh -c 'echo attempt; exit 3'"), { empirical_policy: { retries: 1, retry_delay: 0 } });
    start();
    const [done] = await waitForStates(t.db, [run.id], ["FAILED", "CRASHED", "COMPLETED"]);
    expect(done!.state_type).toBe("FAILED");
    expect(done!.run_count).toBe(2);
    expect(await historyOf(run.id)).toEqual([
      "SCHEDULED/Scheduled",
      "PENDING/Pending",
      "RUNNING/Running",
      "SCHEDULED/AwaitingRetry",
      "PENDING/Pending",
      "RUNNING/Running",
      "FAILED/Failed",
    ]);
    expect((await logsOf(run.id)).filter((l) => l.message === "attempt")).toHaveLength(2);
  });

  it("completes a run whose retry succeeds", async () => {
    const dir = tempDir();
    const command = "sh -c 'if [ -e marker ]; then echo second try; else touch marker; exit 1; fi'";
    const run = await f.run(await f.deployment(command), { empirical_policy: { retries: 3, retry_delay: 0 }, job_variables: { working_dir: dir } });
    start();
    const [done] = await waitForStates(t.db, [run.id], ["FAILED", "CRASHED", "COMPLETED"]);
    expect(done!.state_type).toBe("COMPLETED");
    expect(done!.run_count).toBe(2);
    expect(done!.empirical_policy.retry_type ?? null).toBeNull();
    expect((await logsOf(run.id)).map((l) => l.message)).toContain("second try");
  });

  it("reports a run whose process was killed by a signal as CRASHED", async () => {
    const run = await f.run(await f.deployment("sh -c 'kill -KILL $$'"));
    start();
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state).toMatchObject({ type: "CRASHED", message: expect.stringMatching(/^Flow run infrastructure exited with non-zero status code -9\. Process exited due to a SIGKILL signal/) });
  });

  it("reports a run whose command cannot start as CRASHED", async () => {
    const run = await f.run(await f.deployment("no-such-program-for-the-worker --flag"));
    start();
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state).toMatchObject({ type: "CRASHED", message: expect.stringContaining("Flow run could not start: spawn no-such-program-for-the-worker ENOENT") });
  });

  it("cancels a running run moved to CANCELLING: its process is stopped and the run ends CANCELLED", async () => {
    const run = await f.run(await f.deployment("sleep 60"));
    start();
    const running = await waitFor(async () => {
      const current = await t.db.flowRuns.get(run.id);
      return current?.state_type === "RUNNING" && current.infrastructure_pid ? current : undefined;
    }, "the run to be RUNNING");
    const pid = pidOf(running);
    expect(alive(pid)).toBe(true);
    expect((await setFlowRunState(t.db, run.id, { type: "CANCELLING" })).status).toBe("ACCEPT");
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state).toMatchObject({ type: "CANCELLED", name: "Cancelled", message: "Flow run was cancelled successfully." });
    expect(alive(pid)).toBe(false);
  });

  it("kills a process that ignores SIGTERM once the grace period is over", async () => {
    const run = await f.run(await f.deployment(`sh -c 'trap "" TERM; echo started; sleep 60'`));
    start({ killGraceSeconds: 0.5 });
    const running = await waitFor(async () => {
      const current = await t.db.flowRuns.get(run.id);
      const logs = current?.state_type === "RUNNING" ? await logsOf(run.id) : [];
      return logs.some((l) => l.message === "started") ? current : undefined;
    }, "the run to be RUNNING");
    await setFlowRunState(t.db, run.id, { type: "CANCELLING" });
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state_type).toBe("CANCELLED");
    expect(alive(pidOf(running!))).toBe(false);
  });

  it("never runs more flow runs at once than its limit", async () => {
    const deployment = await f.deployment("sleep 0.3");
    const runs = [];
    for (let i = 0; i < 6; i++) runs.push((await f.run(deployment)).id);
    start({ limit: 2 });
    await waitForStates(t.db, runs, ["COMPLETED"], 60_000);
    expect(await mostAtOnce(t.db, runs)).toBeLessThanOrEqual(2);
  });

  describe("with two workers", () => {
    const twoWorkers = async () => {
      start();
      const second = startWorker(await connection());
      workers.push(second);
    };

    it("holds to the pool's concurrency limit", async () => {
      await t.db.workPools.update(f.pool.id, { concurrency_limit: 2 });
      const deployment = await f.deployment("sleep 0.3");
      const runs = [];
      for (let i = 0; i < 6; i++) runs.push((await f.run(deployment)).id);
      await twoWorkers();
      await waitForStates(t.db, runs, ["COMPLETED"], 60_000);
      expect(await mostAtOnce(t.db, runs)).toBeLessThanOrEqual(2);
    });

    it("holds to a queue's concurrency limit", async () => {
      const queue = await t.db.workQueues.create(f.pool.id, { name: "limited", concurrency_limit: 1 });
      const deployment = await f.deployment("sleep 0.3", { work_queue_id: queue.id });
      const free = await f.deployment("sleep 0.3");
      const limited = [];
      for (let i = 0; i < 3; i++) limited.push((await f.run(deployment)).id);
      const others = [(await f.run(free)).id, (await f.run(free)).id];
      await twoWorkers();
      await waitForStates(t.db, [...limited, ...others], ["COMPLETED"], 60_000);
      expect(await mostAtOnce(t.db, limited)).toBe(1);
    });

    it("holds to a deployment's concurrency limit, taking and giving back its slot through orchestration", async () => {
      const deployment = await f.deployment("sleep 0.3", { concurrency_limit: 1 });
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push((await f.run(deployment)).id);
      await twoWorkers();
      await waitForStates(t.db, runs, ["COMPLETED"], 60_000);
      expect(await mostAtOnce(t.db, runs)).toBe(1);
      const limit = (await t.db.deployments.get(deployment.id))!.global_concurrency_limit!;
      expect(limit.active_slots).toBe(0);
    });
  });

  it("holds a run taken ahead of time until it is due", async () => {
    const due = addSeconds(now(), 1.5);
    const run = await f.run(await f.deployment("sh -c 'echo on time'"), { next_scheduled_start_time: due });
    start({ prefetchSeconds: 10 });
    await waitFor(async () => (await stateOf(t.db, run.id))?.type === "PENDING", "the run to be taken");
    const [done] = await waitForStates(t.db, [run.id], FINAL);
    expect(done!.state_type).toBe("COMPLETED");
    const states = await t.db.flowRuns.readStates(run.id);
    expect(states.find((s) => s.type === "RUNNING")!.timestamp >= due).toBe(true);
  });

  it("leaves runs that are not due yet alone", async () => {
    const later = await f.run(await f.deployment("true"), { next_scheduled_start_time: addSeconds(now(), 3600) });
    const w = start({ runOnce: true });
    await w.done;
    expect((await stateOf(t.db, later.id))?.type).toBe("SCHEDULED");
  });

  it("renders the job template: placeholders, workspace variables, environment; refuses what needs a template engine", async () => {
    await t.db.variables.create({ name: "where", value: "the variable" });
    const command = "sh -c 'echo \"$GREETING from {{ prefect.variables.where }} in $(pwd)\"'";
    const deployment = await f.deployment(command, { job_variables: { command, env: { GREETING: "hello", OTHER: "x" } } });
    const dir = tempDir();
    const run = await f.run(deployment, { job_variables: { env: { GREETING: "hi" }, working_dir: dir } });
    const jinja = await f.run(await f.deployment("echo {{ name | upper }}"));
    start();
    const [done, refused] = await Promise.all([waitForStates(t.db, [run.id], FINAL), waitForStates(t.db, [jinja.id], FINAL)]);
    expect(done![0]!.state_type).toBe("COMPLETED");
    expect((await logsOf(run.id)).map((l) => l.message)).toContain(`hi from the variable in ${dir}`);
    expect(refused![0]!.state).toMatchObject({ type: "CRASHED", message: expect.stringContaining("uses template syntax this worker cannot render") });
  });

  it("creates its pool when it does not exist, and waits for it otherwise", async () => {
    const absent = start({ pool: "not-yet", createPoolIfNotFound: false, runOnce: true });
    await absent.done;
    expect(await t.db.workPools.getByName("not-yet")).toBeNull();
    const creating = start({ pool: "made-by-worker", runOnce: true });
    await creating.done;
    const pool = await t.db.workPools.getByName("made-by-worker");
    expect(pool).toMatchObject({ type: "process", status: "READY" });
    // Compared as a value: PostgreSQL's jsonb does not keep the order of an object's keys.
    expect(pool!.base_job_template).toEqual(defaultBaseJobTemplate());
  });

  it("takes only the queues it is given", async () => {
    const queue = await t.db.workQueues.create(f.pool.id, { name: "mine" });
    const mine = await f.run(await f.deployment("true", { work_queue_id: queue.id }));
    const other = await f.run(await f.deployment("true"));
    start({ queues: ["mine"] });
    await waitForStates(t.db, [mine.id], FINAL);
    expect((await stateOf(t.db, other.id))?.type).toBe("SCHEDULED");
  });

  it("hands runs back when it stops before they finish", async () => {
    const run = await f.run(await f.deployment("sleep 60"));
    const w = start({ shutdownGraceSeconds: 0.2 });
    const running = await waitFor(async () => {
      const current = await t.db.flowRuns.get(run.id);
      return current?.state_type === "RUNNING" ? current : undefined;
    }, "the run to be RUNNING");
    await w.stop();
    const current = await t.db.flowRuns.get(run.id);
    expect(current!.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry" });
    expect(alive(pidOf(running))).toBe(false);
    // Any worker can take it again.
    expect((await t.db.workerRuns.getScheduledFlowRuns()).map((r) => r.flow_run.id)).toEqual([run.id]);
  });
});
