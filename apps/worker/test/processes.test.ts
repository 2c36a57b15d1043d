/**
 * The worker as it is run: the built command line as real OS processes on one database. Several
 * worker processes share a pool's runs (each run taken and executed exactly once), hold to their
 * own and the pool's, queues' and deployments' limits together, heartbeat, leave a state a flow
 * run process reported itself alone, and stop cleanly on SIGTERM. The command line's answers to
 * good and bad options come first.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Database } from "@prefect/db";
import { openTestDatabase, selectedBackends, type TestBackend, type TestDatabase } from "@prefect/db/testing";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  alive,
  databaseSetting,
  type Fixture,
  fixture,
  mostAtOnce,
  pidOf,
  spawnWorker,
  WORKER_MAIN,
  type WorkerProcess,
  waitFor,
} from "./support.js";

/** The worker package's directory: flow run processes started there can import the workspace's packages. */
const WORKER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");

const FINAL = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"] as const;

/** Quotes an argument for the worker's command splitting (POSIX shell rules). */
const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** A command running `script` with this Node.js (`node [flags] -e script`). */
const nodeCommand = (script: string, flags: readonly string[] = []) => [process.execPath, ...flags, "-e", script].map(quote).join(" ");

/** Appends the run's id as a line to $RUNS_FILE. */
const APPEND_SCRIPT = `require("node:fs").appendFileSync(process.env.RUNS_FILE, process.env.PREFECT__FLOW_RUN_ID + "\\n")`;

/** Writes "started <id>", waits until $RELEASE_FILE exists, writes "finished <id>" and exits 0. */
const HOLD_SCRIPT = `
const fs = require("node:fs");
const id = process.env.PREFECT__FLOW_RUN_ID;
fs.appendFileSync(process.env.RUNS_FILE, "started " + id + "\\n");
const timer = setInterval(() => {
  if (!fs.existsSync(process.env.RELEASE_FILE)) return;
  clearInterval(timer);
  fs.appendFileSync(process.env.RUNS_FILE, "finished " + id + "\\n");
}, 50);
`;

/** Runs until it is stopped. */
const SLEEP_SCRIPT = "setInterval(() => undefined, 1000)";

/** Ignores SIGTERM (only SIGKILL stops it), writes "ignoring <id>" to $RUNS_FILE once it does, and runs on. */
const IGNORE_TERM_SCRIPT = `
process.on("SIGTERM", () => undefined);
require("node:fs").appendFileSync(process.env.RUNS_FILE, "ignoring " + process.env.PREFECT__FLOW_RUN_ID + "\\n");
setInterval(() => undefined, 1000);
`;

/** Takes a while (a slot is held meanwhile), then exits 0. */
const BRIEF_SCRIPT = "setTimeout(() => undefined, 300)";

/**
 * As a flow run engine does: waits until its run is RUNNING, sets $REPORT_STATE on it itself through
 * orchestration, and exits with $EXIT_CODE.
 */
const REPORT_SCRIPT = `
import { loadDatabaseConfig, openDatabase } from "@prefect/db";
import { setFlowRunState } from "@prefect/orchestration";
const id = process.env.PREFECT__FLOW_RUN_ID;
const db = await openDatabase(loadDatabaseConfig(process.env), { migrate: false });
try {
  while ((await db.flowRuns.get(id))?.state_type !== "RUNNING") await new Promise((resolve) => setTimeout(resolve, 50));
  const result = await setFlowRunState(db, id, { type: process.env.REPORT_STATE, message: "reported by the flow run itself" });
  if (result.status !== "ACCEPT") throw new Error("the state was not accepted: " + result.status);
} finally {
  await db.close();
}
process.exit(Number(process.env.EXIT_CODE));
`;

const exitOf = (w: WorkerProcess) => w.exit;
const running = (w: WorkerProcess) => w.child.exitCode === null && w.child.signalCode === null;

beforeAll(() => {
  if (!existsSync(WORKER_MAIN)) throw new Error(`The worker's command line is not built (${WORKER_MAIN}): run the build of @prefect/worker first.`);
});

describe("worker command line", () => {
  const cli = async (args: readonly string[], env: NodeJS.ProcessEnv = {}) => {
    const w = spawnWorker(null, args, env);
    const exit = await exitOf(w);
    return { ...exit, ...w.output() };
  };

  it("prints its usage for --help and exits 0", async () => {
    const result = await cli(["--help"]);
    expect(result).toMatchObject({ code: 0, signal: null });
    expect(result.stdout).toContain("Usage: pnpm worker --pool NAME [options]");
    expect(result.stdout).toContain("--limit N");
    expect(result.stderr).toBe("");
  });

  it.each([
    { args: ["--pool", "p", "--bogus"], message: 'Error: Unknown option "--bogus".' },
    { args: [], message: "Error: Missing required option '--pool' / '-p'." },
    { args: ["--limit", "3"], message: "Error: Missing required option '--pool' / '-p'." },
    { args: ["--pool", "p", "--limit", "abc"], message: "Error: --limit must be a whole number" },
    { args: ["--pool", "p", "--limit", "0"], message: "Error: --limit must be at least 1" },
    { args: ["--pool", "p", "--polling-interval", "soon"], message: "Error: --polling-interval (PREFECT_WORKER_QUERY_SECONDS) must be a number of seconds" },
    { args: ["--pool"], message: "Error: Option --pool needs a value." },
  ])("exits 2 with a message for bad options: $args", async ({ args, message }) => {
    const result = await cli(args);
    expect(result).toMatchObject({ code: 2, signal: null, stdout: "" });
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain("Run with --help to see the options.");
  });

  it("refuses a log format it does not know (exit 2)", async () => {
    const result = await cli(["--pool", "p"], { PREFECT_WORKER_LOG_FORMAT: "xml" });
    expect(result).toMatchObject({ code: 2, signal: null });
    expect(result.stderr).toContain("PREFECT_WORKER_LOG_FORMAT must be text or json");
  });

  it.each([
    { env: { PREFECT_DATABASE_URL: "not a url" }, variable: "PREFECT_DATABASE_URL" },
    { env: { PREFECT_DATABASE_BACKEND: "oracle" }, variable: "PREFECT_DATABASE_BACKEND" },
  ])("exits 1 with a message naming the variable for a bad database setting: $variable", async ({ env, variable }) => {
    const result = await cli(["--pool", "p"], env);
    expect(result).toMatchObject({ code: 1, signal: null });
    expect(result.stderr).toContain("The worker could not start:");
    expect(result.stderr).toContain(variable);
  });

  it("exits 1 with a message when the database server cannot be reached", async () => {
    const result = await cli(["--pool", "p"], { PREFECT_DATABASE_URL: "postgresql://prefect:prefect@127.0.0.1:1/prefect" });
    expect(result).toMatchObject({ code: 1, signal: null });
    expect(result.stderr).toContain("The worker could not start: The PostgreSQL server cannot be reached");
  });
});

/** How many runs and worker processes the exactly-once test uses on each backend. */
const SCALE: Record<Exclude<TestBackend, "sqlite-memory">, { runs: number; workers: number }> = {
  postgres: { runs: 300, workers: 4 },
  "sqlite-file": { runs: 150, workers: 2 },
};

for (const backend of selectedBackends().filter((b): b is keyof typeof SCALE => b !== "sqlite-memory")) {
  describe(`worker processes [${backend}]`, () => {
    let test: TestDatabase;
    let db: Database;
    let f: Fixture;
    let dir: string;
    const workers: WorkerProcess[] = [];
    /** Flow run processes to make sure of at the end (in case a worker did not stop them). */
    const flowRunPids: number[] = [];

    beforeEach(async () => {
      test = await openTestDatabase(backend);
      db = test.db;
      f = await fixture(db);
      dir = mkdtempSync(join(tmpdir(), "worker-processes-"));
    });
    afterEach(async () => {
      for (const w of workers.splice(0)) {
        if (running(w)) w.child.kill("SIGKILL");
        await w.exit;
      }
      for (const pid of flowRunPids.splice(0)) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      rmSync(dir, { recursive: true, force: true });
      await test.cleanup();
    });

    /** A worker process on the test's database, polling often. */
    const spawn = (args: readonly string[], env: NodeJS.ProcessEnv = {}) => {
      const w = spawnWorker(test.config, ["--pool", "test-pool", "--polling-interval", "0.2", "--prefetch-seconds", "0", ...args], env);
      workers.push(w);
      return w;
    };
    const stop = async (w: WorkerProcess) => {
      w.child.kill("SIGTERM");
      const exit = await w.exit;
      expect(exit, `the worker's output: ${w.output().stderr.slice(-4000)}`).toEqual({ code: 0, signal: null });
    };
    /** Waits until every run has a final state; fails early, with its output, when a worker exits. */
    const waitForFinal = (ids: readonly string[], timeoutMs: number) =>
      waitFor(
        async () => {
          for (const w of workers) if (!running(w)) throw new Error(`A worker exited early (${w.child.exitCode ?? w.child.signalCode}): ${w.output().stderr.slice(-4000)}`);
          const done = await db.flowRuns.count({ flow_runs: { id: { any_: [...ids] }, state: { type: { any_: [...FINAL] } } } });
          return done === ids.length;
        },
        `${ids.length} run(s) to end`,
        timeoutMs,
        250,
      );
    const readRuns = (ids: readonly string[]) => db.flowRuns.read({ flow_runs: { id: { any_: [...ids] } } });
    const statesOf = async (id: string) => (await db.flowRuns.readStates(id)).map((s) => s.type);
    const logsOf = async (id: string) => (await db.logs.read({ filter: { flow_run_id: { any_: [id] } }, sort: "TIMESTAMP_ASC" })).map((l) => l.message);
    const exitNoted = (id: string, message: string) => waitFor(async () => (await logsOf(id)).includes(message), `the worker's note of the exit of ${id}: ${message}`);
    const lines = (path: string) => (existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((l) => l !== "") : []);
    const runningWithPid = (id: string) =>
      waitFor(
        async () => {
          const current = await db.flowRuns.get(id);
          return current?.state_type === "RUNNING" && current.infrastructure_pid ? current : undefined;
        },
        "the run to be RUNNING",
        60_000,
      );

    it(
      "shares many runs between worker processes: each run executed exactly once, through PENDING and RUNNING once",
      async () => {
        const { runs: count, workers: workerCount } = SCALE[backend];
        const runsFile = join(dir, "runs.txt");
        const deployment = await f.deployment(nodeCommand(APPEND_SCRIPT), { job_variables: { command: nodeCommand(APPEND_SCRIPT), env: { RUNS_FILE: runsFile } } });
        const ids: string[] = [];
        for (let i = 0; i < count; i++) ids.push((await f.run(deployment)).id);

        const names = Array.from({ length: workerCount }, (_, i) => `worker-process-${i}`);
        const started = names.map((name) => spawn(["--name", name, "--limit", "16", "--heartbeat-interval", "5"], { PREFECT_LOGGING_LEVEL: "WARNING" }));
        await waitForFinal(ids, 240_000);

        const runs = await readRuns(ids);
        expect(runs.filter((r) => r.state_type !== "COMPLETED").map((r) => ({ id: r.id, state: r.state }))).toEqual([]);

        // Every run's process ran once: its id is in the file exactly once, and nothing else is.
        const written = lines(runsFile);
        const times = new Map<string, number>();
        for (const id of written) times.set(id, (times.get(id) ?? 0) + 1);
        expect([...times.entries()].filter(([, n]) => n !== 1)).toEqual([]);
        expect(new Set(written)).toEqual(new Set(ids));
        expect(written).toHaveLength(count);

        for (const run of runs) {
          const types = await statesOf(run.id);
          expect({ id: run.id, types }).toEqual({ id: run.id, types: ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"] });
          expect(run.infrastructure_pid).toMatch(/^.+:\d+$/);
          expect(run.run_count).toBe(1);
          expect(names).toContain(run.labels?.["prefect.worker.name"]);
        }

        // Every worker process heartbeated into the pool.
        const heartbeats = await db.workers.read(f.pool.id);
        expect(heartbeats.map((w) => w.name).sort()).toEqual([...names].sort());

        for (const w of started) w.child.kill("SIGTERM");
        for (const w of started) expect(await w.exit, w.output().stderr.slice(-4000)).toEqual({ code: 0, signal: null });
      },
      360_000,
    );

    it("holds to its own --limit and to the pool's, a queue's and a deployment's concurrency limits across worker processes", async () => {
      await db.workPools.update(f.pool.id, { concurrency_limit: 3 });
      const queue = await db.workQueues.create(f.pool.id, { name: "limited", concurrency_limit: 1 });
      const command = nodeCommand(BRIEF_SCRIPT);
      const capped = await f.deployment(command, { concurrency_limit: 1 });
      const queued = await f.deployment(command, { work_queue_id: queue.id });
      const free = await f.deployment(command);
      const cappedRuns: string[] = [];
      const queuedRuns: string[] = [];
      const freeRuns: string[] = [];
      for (let i = 0; i < 4; i++) cappedRuns.push((await f.run(capped)).id);
      for (let i = 0; i < 3; i++) queuedRuns.push((await f.run(queued)).id);
      for (let i = 0; i < 6; i++) freeRuns.push((await f.run(free)).id);
      const all = [...cappedRuns, ...queuedRuns, ...freeRuns];

      const one = spawn(["--name", "limit-one", "--limit", "1"]);
      const many = spawn(["--name", "limit-ten", "--limit", "10"]);
      await waitForFinal(all, 120_000);

      const runs = await readRuns(all);
      expect(runs.filter((r) => r.state_type !== "COMPLETED").map((r) => ({ id: r.id, state: r.state }))).toEqual([]);
      expect(await mostAtOnce(db, all)).toBeLessThanOrEqual(3);
      expect(await mostAtOnce(db, cappedRuns)).toBe(1);
      expect(await mostAtOnce(db, queuedRuns)).toBe(1);
      const byWorker = (name: string) => runs.filter((r) => r.labels?.["prefect.worker.name"] === name).map((r) => r.id);
      expect(byWorker("limit-one").length + byWorker("limit-ten").length).toBe(all.length);
      expect(await mostAtOnce(db, byWorker("limit-one"))).toBeLessThanOrEqual(1);
      // The deployment's slot was given back with each run's final state.
      expect((await db.deployments.get(capped.id))!.global_concurrency_limit!.active_slots).toBe(0);

      await stop(one);
      await stop(many);
    });

    it("heartbeats into its pool while it runs", async () => {
      const w = spawn(["--name", "heartbeating", "--heartbeat-interval", "1"]);
      const first = await waitFor(async () => (await db.workers.read(f.pool.id)).find((r) => r.name === "heartbeating"), "the worker's first heartbeat");
      expect(first).toMatchObject({ status: "ONLINE", heartbeat_interval_seconds: 1 });
      expect((await db.workPools.get(f.pool.id))!.status).toBe("READY");
      const later = await waitFor(
        async () => {
          const row = (await db.workers.read(f.pool.id)).find((r) => r.name === "heartbeating");
          return row && Date.parse(row.last_heartbeat_time) > Date.parse(first.last_heartbeat_time) ? row : undefined;
        },
        "a later heartbeat",
      );
      expect(later.status).toBe("ONLINE");
      await stop(w);
    });

    it("records the process of each run and leaves a final state the process reported itself alone", async () => {
      const command = nodeCommand(REPORT_SCRIPT, ["--input-type=module"]);
      const deployment = await f.deployment(command, { job_variables: { command, working_dir: WORKER_DIR, env: databaseSetting(test.config) } });
      const completedThenFailing = await f.run(deployment, { job_variables: { env: { REPORT_STATE: "COMPLETED", EXIT_CODE: "1" } } });
      const failedThenExiting = await f.run(deployment, { job_variables: { env: { REPORT_STATE: "FAILED", EXIT_CODE: "0" } } });
      const w = spawn(["--name", "reporting"]);
      await waitForFinal([completedThenFailing.id, failedThenExiting.id], 60_000);

      const completed = (await db.flowRuns.get(completedThenFailing.id))!;
      expect(completed.state).toMatchObject({ type: "COMPLETED", message: "reported by the flow run itself" });
      expect(await statesOf(completed.id)).toEqual(["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]);
      expect(completed.infrastructure_pid).toMatch(/^.+:\d+$/);
      // The process set the final state before it exited: the worker notes the exit after it.
      await exitNoted(completed.id, `Process for flow run '${completed.name}' exited with status code: 1; Process exited with a general error.`);

      const failed = (await db.flowRuns.get(failedThenExiting.id))!;
      expect(failed.state).toMatchObject({ type: "FAILED", message: "reported by the flow run itself" });
      expect(await statesOf(failed.id)).toEqual(["SCHEDULED", "PENDING", "RUNNING", "FAILED"]);
      await exitNoted(failed.id, `Process for flow run '${failed.name}' exited cleanly.`);
      await stop(w);
    });

    it("on SIGTERM stops taking runs, lets a running one finish within the grace period, and exits 0", async () => {
      const runsFile = join(dir, "runs.txt");
      const releaseFile = join(dir, "release");
      const env = { RUNS_FILE: runsFile, RELEASE_FILE: releaseFile };
      const holding = await f.deployment(nodeCommand(HOLD_SCRIPT), { job_variables: { command: nodeCommand(HOLD_SCRIPT), env } });
      const quick = await f.deployment(nodeCommand(APPEND_SCRIPT), { job_variables: { command: nodeCommand(APPEND_SCRIPT), env } });
      const held = await f.run(holding);
      const w = spawn(["--name", "stopping", "--shutdown-grace-seconds", "120", "--heartbeat-interval", "1"]);
      const current = await runningWithPid(held.id);
      flowRunPids.push(pidOf(current));
      await waitFor(() => lines(runsFile).includes(`started ${held.id}`), "the run's process to start");

      w.child.kill("SIGTERM");
      await waitFor(() => w.output().stderr.includes("Stopping: no new flow runs are taken"), "the worker to begin stopping");
      const stoppedAt = Date.now();
      const later = await f.run(quick);
      // The worker goes on (it heartbeats) while its run has not finished; it takes nothing new meanwhile.
      await waitFor(
        async () => {
          const row = (await db.workers.read(f.pool.id)).find((r) => r.name === "stopping");
          return row !== undefined && Date.parse(row.last_heartbeat_time) > stoppedAt;
        },
        "a heartbeat while stopping",
      );
      expect(running(w)).toBe(true);
      writeFileSync(releaseFile, "");

      expect(await w.exit, w.output().stderr.slice(-4000)).toEqual({ code: 0, signal: null });
      expect(w.output().stdout).toContain("Worker 'stopping' stopped!");
      const done = (await db.flowRuns.get(held.id))!;
      expect(done.state_type).toBe("COMPLETED");
      expect(lines(runsFile)).toContain(`finished ${held.id}`);
      expect(await statesOf(later.id)).toEqual(["SCHEDULED"]);
      expect(lines(runsFile)).not.toContain(later.id);
    });

    // Prefect's worker answers a second SIGTERM by killing itself (SIGKILL) and leaves its flow run
    // processes to end on their own; this worker stops them and hands their runs back instead, as
    // it does when the grace period ends, so that no run is left RUNNING without a process.
    it("on a second SIGTERM during the grace period stops its running runs at once and hands them back", async () => {
      const deployment = await f.deployment(nodeCommand(SLEEP_SCRIPT));
      const run = await f.run(deployment);
      // A grace period longer than the test's timeout: only the second signal can end the wait.
      const w = spawn(["--name", "forced", "--shutdown-grace-seconds", "600"]);
      const pid = pidOf(await runningWithPid(run.id));
      flowRunPids.push(pid);

      w.child.kill("SIGTERM");
      await waitFor(() => w.output().stderr.includes("Stopping: no new flow runs are taken"), "the worker to begin stopping");
      // The grace period holds: the run goes on.
      expect(running(w)).toBe(true);
      expect(alive(pid)).toBe(true);
      expect((await db.flowRuns.get(run.id))!.state_type).toBe("RUNNING");

      w.child.kill("SIGTERM");
      await waitFor(() => !running(w), "the worker to exit after the second SIGTERM", 60_000);
      expect(await w.exit, w.output().stderr.slice(-4000)).toEqual({ code: 0, signal: null });
      expect(w.output().stderr).toContain("Stopping now: running flow runs are stopped and handed back");
      expect(w.output().stdout).toContain("Worker 'forced' stopped!");
      expect(alive(pid)).toBe(false);
      expect((await db.flowRuns.get(run.id))!.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry" });
      expect(await statesOf(run.id)).toEqual(["SCHEDULED", "PENDING", "RUNNING", "SCHEDULED"]);
      const logs = await logsOf(run.id);
      expect(logs).toContain("Rescheduling flow run for resubmission: the worker is shutting down.");
      expect(logs).toContain("Rescheduled flow run for resubmission");
      // Any worker can take it again.
      expect((await db.workerRuns.getScheduledFlowRuns()).map((r) => r.flow_run.id)).toEqual([run.id]);
    });

    it("on a third SIGTERM kills a run's process that ignores SIGTERM, without waiting for the kill grace period", async () => {
      const runsFile = join(dir, "runs.txt");
      const command = nodeCommand(IGNORE_TERM_SCRIPT);
      const deployment = await f.deployment(command, { job_variables: { command, env: { RUNS_FILE: runsFile } } });
      const run = await f.run(deployment);
      // The command line's kill grace period is 30 s; the test's timeout would end a wait for it.
      const w = spawn(["--name", "killing", "--shutdown-grace-seconds", "600"]);
      const pid = pidOf(await runningWithPid(run.id));
      flowRunPids.push(pid);
      await waitFor(() => lines(runsFile).includes(`ignoring ${run.id}`), "the run's process to ignore SIGTERM");

      w.child.kill("SIGTERM");
      await waitFor(() => w.output().stderr.includes("Stopping: no new flow runs are taken"), "the worker to begin stopping");
      w.child.kill("SIGTERM");
      await waitFor(() => w.output().stderr.includes("Rescheduling flow run for resubmission: the worker is shutting down."), "the worker to stop the run");
      // SIGTERM reached the process, which ignored it.
      expect(alive(pid)).toBe(true);
      expect(running(w)).toBe(true);

      const killedAt = Date.now();
      w.child.kill("SIGTERM");
      expect(await w.exit, w.output().stderr.slice(-4000)).toEqual({ code: 0, signal: null });
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      expect(w.output().stderr).toContain("Killing the flow run processes that are still stopping");
      expect(alive(pid)).toBe(false);
      expect((await db.flowRuns.get(run.id))!.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry" });
      expect(await statesOf(run.id)).toEqual(["SCHEDULED", "PENDING", "RUNNING", "SCHEDULED"]);
    });

    it("on SIGTERM hands back a run that outlasts the grace period: its process is stopped and the run rescheduled", async () => {
      const deployment = await f.deployment(nodeCommand(SLEEP_SCRIPT));
      const run = await f.run(deployment);
      const w = spawn(["--name", "handing-back", "--shutdown-grace-seconds", "1"]);
      const current = await runningWithPid(run.id);
      const pid = pidOf(current);
      flowRunPids.push(pid);
      expect(alive(pid)).toBe(true);

      w.child.kill("SIGTERM");
      expect(await w.exit, w.output().stderr.slice(-4000)).toEqual({ code: 0, signal: null });
      const after = (await db.flowRuns.get(run.id))!;
      expect(after.state).toMatchObject({ type: "SCHEDULED", name: "AwaitingRetry" });
      expect(await statesOf(run.id)).toEqual(["SCHEDULED", "PENDING", "RUNNING", "SCHEDULED"]);
      expect(alive(pid)).toBe(false);
      expect(await logsOf(run.id)).toContain("Rescheduled flow run for resubmission");
      // Any worker can take it again.
      expect((await db.workerRuns.getScheduledFlowRuns()).map((r) => r.flow_run.id)).toEqual([run.id]);
    });
  });
}
