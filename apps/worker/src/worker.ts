/**
 * A process worker (Prefect's ProcessWorker) that works on the database directly. This class is its
 * lifecycle; the work is done by parts with one job each:
 *
 * - pool-heartbeat.ts: finds (or creates) the work pool and heartbeats into it;
 * - run-poller.ts and claim.ts: take the pool's due runs, moving them to PENDING through
 *   orchestration, and find the held runs that were set CANCELLING;
 * - run-supervisor.ts: one claimed run's process, its output, its exit, its cancellation and its
 *   stop when the worker shuts down;
 * - state-reporter.ts: RUNNING and the state a run ends with (COMPLETED, FAILED or AwaitingRetry,
 *   CRASHED, CANCELLED, or AwaitingRetry when handed back), through orchestration, with events.
 *
 * The worker polls on an interval (a run that ends, or a signal, wakes it early) while it respects
 * its `--limit`. A poll woken early takes runs; what else a poll does (looking for cancelled runs,
 * marking the queues polled) it does at most once a second, so that a busy worker, woken by every
 * run that ends, does not repeat them for each. On SIGTERM/SIGINT it stops taking runs and lets
 * running ones finish for a grace period; after it, or on a second signal, it stops them and hands their runs back to the pool
 * (AwaitingRetry, as Prefect's runner reschedules runs on SIGTERM), so that no run is left RUNNING
 * without a process; a third signal kills what is still stopping.
 */
import { hostname } from "node:os";
import type { Database } from "@prefect/db";
import type { ClaimedRun } from "./claim.js";
import { EventWriter, type Resource, workerEvent, workerResource, workPoolResource } from "./events.js";
import type { WorkerLogger } from "./logger.js";
import { pyRepr } from "./messages.js";
import type { WorkerOptions } from "./options.js";
import { PoolHeartbeat } from "./pool-heartbeat.js";
import { RunLogWriter } from "./run-logs.js";
import { RunPoller } from "./run-poller.js";
import { RunSupervisor, type Supervision } from "./run-supervisor.js";
import { Shutdown } from "./shutdown.js";
import { sleep } from "./sleep.js";
import { RunStateReporter } from "./state-reporter.js";

/** How often a poll woken early looks for cancelled runs and marks the queues polled, at most. */
const EARLY_CHECKS_MS = 1000;

export interface WorkerEnvironment {
  readonly log: WorkerLogger;
  /** The environment flow run processes inherit (the worker's own by default). */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Where flow run output is passed through to (stream_output) and where start/stop messages go. */
  readonly stdout?: NodeJS.WritableStream | null | undefined;
  readonly stderr?: NodeJS.WritableStream | null | undefined;
  /** This machine's name in `infrastructure_pid`. */
  readonly hostname?: string | undefined;
}

export class ProcessWorker {
  readonly name: string;
  readonly options: WorkerOptions;
  readonly #log: WorkerLogger;
  readonly #stdout: NodeJS.WritableStream | null;
  readonly #logs: RunLogWriter;
  readonly #events: EventWriter;
  readonly #resource: Resource;
  readonly #heartbeat: PoolHeartbeat;
  readonly #poller: RunPoller;
  readonly #supervision: Supervision;

  /** The runs this worker holds (claimed, running, or being finished), by id. */
  readonly #runs = new Map<string, RunSupervisor>();
  readonly #shutdown = new Shutdown();
  /** Whether polls take new runs (false once stopping, or after the one poll of `runOnce`). */
  #claiming = true;
  /** Aborted to end the loop's wait early. */
  #wake = new AbortController();
  /** When a poll last looked for cancelled runs and marked the queues polled (performance.now()). */
  #checkedAt = Number.NEGATIVE_INFINITY;
  #running: Promise<void> | null = null;
  #finished = false;

  constructor(db: Database, options: WorkerOptions, environment: WorkerEnvironment) {
    this.options = options;
    this.name = options.name;
    this.#log = environment.log.child({ worker: options.name, work_pool: options.pool });
    this.#stdout = environment.stdout === undefined ? process.stdout : environment.stdout;
    this.#logs = new RunLogWriter(db, this.#log);
    this.#events = new EventWriter(db, this.#log);
    this.#resource = workerResource(options.name);
    this.#heartbeat = new PoolHeartbeat(db, options, this.#log);
    this.#poller = new RunPoller(db, options, this.#events, this.#log);
    this.#supervision = {
      db,
      reporter: new RunStateReporter(db, this.#events, this.#logs, this.#log, { name: this.name, resource: this.#resource, killNow: this.#shutdown.killNow }),
      logs: this.#logs,
      log: this.#log,
      workerName: this.name,
      workerId: () => this.#heartbeat.workerId,
      pool: () => this.#heartbeat.pool,
      apiUrl: options.apiUrl,
      killGraceSeconds: options.killGraceSeconds,
      env: environment.env ?? process.env,
      stdout: this.#stdout,
      stderr: environment.stderr === undefined ? process.stderr : environment.stderr,
      hostname: environment.hostname ?? hostname(),
      shutdown: this.#shutdown,
    };
  }

  /** The ids of the flow runs this worker holds (claimed, running, or being finished). */
  get activeRunIds(): string[] {
    return [...this.#runs.keys()];
  }

  /** The worker's id in the database (from its heartbeat), once it has one. */
  get workerId(): string | null {
    return this.#heartbeat.workerId;
  }

  /** Runs the worker until it stops (after `stop()`, or after one poll with `runOnce`). */
  run(): Promise<void> {
    this.#running ??= this.#main();
    return this.#running;
  }

  /**
   * First call: stop taking runs and let running ones finish for `shutdownGraceSeconds`. Second:
   * stop them now and hand their runs back. After that: SIGKILL what is still stopping.
   */
  stop(): void {
    if (this.#finished) return;
    if (!this.#shutdown.requested) {
      this.#shutdown.request(this.options.shutdownGraceSeconds);
      this.#claiming = false;
      this.#log.info({ active: this.#runs.size }, "Stopping: no new flow runs are taken; running ones may finish");
      // Runs that have not started yet go back to the pool at once.
      for (const run of this.#runs.values()) if (!run.started) run.interruptWait();
    } else if (!this.#shutdown.handingBack) {
      this.#shutdown.forced = true;
      this.#log.info("Stopping now: running flow runs are stopped and handed back");
    } else {
      this.#log.warn("Killing the flow run processes that are still stopping");
      this.#shutdown.kill();
    }
    this.#wake.abort();
  }

  async #main(): Promise<void> {
    this.#logs.start();
    await this.#heartbeat.beat();
    const pool = this.#heartbeat.pool;
    if (pool?.is_paused) {
      this.#log.warn(`The work pool ${pyRepr(this.options.pool)} is currently paused. This worker will not execute any flow runs until the work pool is unpaused.`);
    }
    const started = workerEvent("prefect.worker.started", this.#resource, pool ? [workPoolResource(pool)] : []);
    await this.#events.write([started]);
    this.#heartbeat.start();
    this.#print(`Worker ${pyRepr(this.name)} started!`);
    try {
      await this.#loop();
      this.#shutdown.handingBack = true;
      await this.#handBackAll();
    } finally {
      await this.#heartbeat.stop();
      const last = this.#heartbeat.pool;
      await this.#events.write([workerEvent("prefect.worker.stopped", this.#resource, last ? [workPoolResource(last)] : [], started.id)]);
      await this.#events.stop();
      await this.#logs.stop();
      this.#finished = true;
      this.#print(`Worker ${pyRepr(this.name)} stopped!`);
    }
  }

  /** Polls until there is nothing left to do: not taking runs and holding none, or the grace period over. */
  async #loop(): Promise<void> {
    for (;;) {
      if (this.#claiming) {
        await this.#pollSafely(this.#wake.signal.aborted);
        if (this.options.runOnce) this.#claiming = false;
      } else {
        await this.#checkCancellationsSafely();
      }
      if (!this.#claiming && this.#runs.size === 0) return;
      if (this.#shutdown.graceOver) return;
      const wait = Math.min(this.options.pollingIntervalSeconds * 1000, this.#shutdown.graceLeftMs());
      if (this.#wake.signal.aborted) this.#wake = new AbortController();
      await sleep(wait, this.#wake.signal);
    }
  }

  #print(line: string): void {
    this.#stdout?.write(`${line}\n`);
  }

  // A failed poll or check is logged and tried again on the next round: the worker must outlive a
  // database that is away for a while.

  async #pollSafely(early: boolean): Promise<void> {
    try {
      await this.#poll(early);
    } catch (error) {
      this.#log.error({ err: error }, "Polling for scheduled flow runs failed; will try again");
    }
  }

  async #checkCancellationsSafely(): Promise<void> {
    try {
      await this.#checkCancellations();
    } catch (error) {
      this.#log.error({ err: error }, "Checking for cancelled flow runs failed; will try again");
    }
  }

  /** `early`: woken before the interval was over (see the class's comment). */
  async #poll(early: boolean): Promise<void> {
    if (!this.#heartbeat.pool) await this.#heartbeat.beat();
    const pool = this.#heartbeat.pool;
    if (!pool) return;
    const checks = !early || performance.now() - this.#checkedAt >= Math.min(EARLY_CHECKS_MS, this.options.pollingIntervalSeconds * 1000);
    if (checks) {
      this.#checkedAt = performance.now();
      await this.#checkCancellations();
    }
    const free = this.options.limit === null ? Number.POSITIVE_INFINITY : this.options.limit - this.#runs.size;
    if (free <= 0) this.#log.debug({ active: this.#runs.size }, "Flow run limit reached");
    await this.#poller.claimDueRuns(pool, free, { proceed: () => this.#claiming, launch: (run) => this.#launch(run) });
    if (checks) await this.#poller.markPolled(this.#heartbeat.queueIds);
  }

  /** Stops the processes of this worker's runs that were set CANCELLING. */
  async #checkCancellations(): Promise<void> {
    const ids = [...this.#runs.keys()];
    if (ids.length === 0) return;
    for (const run of await this.#poller.cancelling(ids)) this.#runs.get(run.id)?.cancel(run);
  }

  #launch(claimed: ClaimedRun): void {
    const supervisor = new RunSupervisor(claimed, this.#supervision);
    this.#runs.set(supervisor.id, supervisor);
    supervisor.start(() => {
      this.#runs.delete(supervisor.id);
      // A free slot: poll again now rather than at the next interval.
      this.#wake.abort();
    });
  }

  async #handBackAll(): Promise<void> {
    const runs = [...this.#runs.values()];
    for (const run of runs) run.handBack();
    await Promise.all(runs.map((run) => run.done));
  }
}
