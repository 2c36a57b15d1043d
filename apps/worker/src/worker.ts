/**
 * A process worker (Prefect's ProcessWorker) that works on the database directly: it heartbeats into
 * its work pool, takes the pool's due flow runs (moving them to PENDING through orchestration, see
 * claim.ts), runs each run's command as a local process, records where it runs
 * (`infrastructure_pid` = `hostname:pid`), moves it to RUNNING, stores its output as the run's logs
 * and, when the process exits, sets the state the exit means (unless the process reported one
 * itself): COMPLETED for 0, FAILED for another code (orchestration's retry policy may turn that
 * into AwaitingRetry; the worker hands such a retry back to the pool, where any worker takes it
 * again), CRASHED for a signal.
 *
 * Runs moved to CANCELLING are stopped (SIGTERM to the process group, SIGKILL after a grace period)
 * and set CANCELLED. On SIGTERM/SIGINT the worker stops taking runs and lets running ones finish for
 * a grace period; after it, or on a second signal, it stops them and hands their runs back to the
 * pool (AwaitingRetry, as Prefect's runner reschedules runs on SIGTERM), so that no run is left
 * RUNNING without a process.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import {
  AlreadyExistsError,
  addSeconds,
  type Database,
  type Deployment,
  type Flow,
  type FlowRun,
  now,
  type WorkPool,
} from "@prefect/db";
import { type OrchestrationResult, type StateInput, setFlowRunState } from "@prefect/orchestration";
import { type ClaimedRun, claimScheduledFlowRuns } from "./claim.js";
import { EventWriter, flowRunResources, type Resource, WORKER_TYPE, workerEvent, workerResource, workPoolResource } from "./events.js";
import { exitInfo, pyRepr } from "./exit-codes.js";
import { defaultBaseJobTemplate, type ProcessJobConfiguration, resolveJobConfiguration } from "./job-configuration.js";
import type { WorkerLogger } from "./logger.js";
import type { WorkerOptions } from "./options.js";
import { type ExitStatus, FlowRunProcess, type OutputStream, statusCode } from "./process.js";
import { LogLevel, RUN_OUTPUT_LOGGER, RunLogWriter, WORKER_RUN_LOGGER } from "./run-logs.js";
import { splitCommand } from "./shlex.js";

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

/** Most runs claimed in one transaction. */
const CLAIM_BATCH = 10;
/** How often a state proposal is tried again when the database fails it. */
const STATE_ATTEMPTS = 6;

interface ActiveRun {
  readonly id: string;
  run: FlowRun;
  process: FlowRunProcess | null;
  /** The run was seen CANCELLING: its process is being stopped. */
  cancelRequested: boolean;
  /** The worker is stopping: the run goes back to the pool instead of getting a final state. */
  handBack: boolean;
  /** Ends the wait for a run's due time (cancellation, shutdown). */
  readonly interrupt: AbortController;
  done: Promise<void>;
}

type Level = (typeof LogLevel)[keyof typeof LogLevel];

class Deferred {
  resolved = false;
  resolve!: () => void;
  readonly promise = new Promise<void>((resolve) => {
    this.resolve = () => {
      this.resolved = true;
      resolve();
    };
  });
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
const errorName = (error: unknown) => (error instanceof Error ? error.constructor.name : "Error");

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export class ProcessWorker {
  readonly name: string;
  readonly options: WorkerOptions;
  readonly #db: Database;
  readonly #log: WorkerLogger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #stdout: NodeJS.WritableStream | null;
  readonly #stderr: NodeJS.WritableStream | null;
  readonly #hostname: string;
  readonly #logs: RunLogWriter;
  readonly #events: EventWriter;
  readonly #resource: Resource;

  #pool: WorkPool | null = null;
  #queueIds: string[] = [];
  #workerId: string | null = null;
  #warnedType = false;
  readonly #active = new Map<string, ActiveRun>();

  #claiming = true;
  #stopRequested = false;
  #stopDeadline: number | null = null;
  #forced = false;
  #handingBack = false;
  readonly #killNow = new Deferred();
  #wake = new AbortController();
  #syncing: Promise<void> | null = null;
  #running: Promise<void> | null = null;
  #finished = false;

  constructor(db: Database, options: WorkerOptions, environment: WorkerEnvironment) {
    this.#db = db;
    this.options = options;
    this.name = options.name;
    this.#log = environment.log.child({ worker: options.name, work_pool: options.pool });
    this.#env = environment.env ?? process.env;
    this.#stdout = environment.stdout === undefined ? process.stdout : environment.stdout;
    this.#stderr = environment.stderr === undefined ? process.stderr : environment.stderr;
    this.#hostname = environment.hostname ?? hostname();
    this.#logs = new RunLogWriter(db, this.#log);
    this.#events = new EventWriter(db, this.#log);
    this.#resource = workerResource(options.name);
  }

  /** The ids of the flow runs this worker holds (claimed, running, or being finished). */
  get activeRunIds(): string[] {
    return [...this.#active.keys()];
  }

  /** The worker's id in the database (from its heartbeat), once it has one. */
  get workerId(): string | null {
    return this.#workerId;
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
    if (!this.#stopRequested) {
      this.#stopRequested = true;
      this.#claiming = false;
      this.#stopDeadline = Date.now() + this.options.shutdownGraceSeconds * 1000;
      this.#log.info({ active: this.#active.size }, "Stopping: no new flow runs are taken; running ones may finish");
      // Runs that have not started yet go back to the pool at once.
      for (const active of this.#active.values()) if (!active.process) active.interrupt.abort();
    } else if (!this.#handingBack) {
      this.#forced = true;
      this.#log.info("Stopping now: running flow runs are stopped and handed back");
    } else {
      this.#log.warn("Killing the flow run processes that are still stopping");
      this.#killNow.resolve();
    }
    this.#wake.abort();
  }

  async #main(): Promise<void> {
    this.#logs.start();
    await this.#syncSafely();
    if (this.#pool?.is_paused) {
      this.#log.warn(`The work pool ${pyRepr(this.options.pool)} is currently paused. This worker will not execute any flow runs until the work pool is unpaused.`);
    }
    const started = workerEvent("prefect.worker.started", this.#resource, this.#pool ? [workPoolResource(this.#pool)] : []);
    await this.#events.write([started]);
    const heartbeat = setInterval(() => void this.#syncSafely(), this.options.heartbeatIntervalSeconds * 1000);
    this.#print(`Worker ${pyRepr(this.name)} started!`);
    try {
      await this.#loop();
      this.#handingBack = true;
      await this.#handBackAll();
    } finally {
      clearInterval(heartbeat);
      await this.#syncing;
      await this.#events.write([workerEvent("prefect.worker.stopped", this.#resource, this.#pool ? [workPoolResource(this.#pool)] : [], started.id)]);
      await this.#logs.stop();
      this.#finished = true;
      this.#print(`Worker ${pyRepr(this.name)} stopped!`);
    }
  }

  async #loop(): Promise<void> {
    for (;;) {
      if (this.#claiming) {
        await this.#pollSafely();
        if (this.options.runOnce) this.#claiming = false;
      } else {
        await this.#checkCancellationsSafely();
      }
      if (!this.#claiming && this.#active.size === 0) return;
      if (this.#stopDeadline !== null && (this.#forced || Date.now() >= this.#stopDeadline)) return;
      let wait = this.options.pollingIntervalSeconds * 1000;
      if (this.#stopDeadline !== null) wait = Math.min(wait, this.#stopDeadline - Date.now());
      if (this.#wake.signal.aborted) this.#wake = new AbortController();
      await sleep(wait, this.#wake.signal);
    }
  }

  #print(line: string): void {
    this.#stdout?.write(`${line}\n`);
  }

  /** Wakes the main loop early (a run ended, a signal came). */
  #nudge(): void {
    this.#wake.abort();
  }

  // --- Pool and heartbeat ---------------------------------------------------------------------

  #syncSafely(): Promise<void> {
    this.#syncing ??= this.#sync()
      .catch((error: unknown) => this.#log.error({ err: error }, "Could not sync with the database; will try again"))
      .finally(() => {
        this.#syncing = null;
      });
    return this.#syncing;
  }

  /** Prefect's `sync_with_backend`: find (or create) the pool, then heartbeat. */
  async #sync(): Promise<void> {
    const name = this.options.pool;
    let pool = await this.#db.workPools.getByName(name);
    if (!pool && this.options.createPoolIfNotFound) {
      try {
        pool = await this.#db.workPools.create({ name, type: WORKER_TYPE, base_job_template: defaultBaseJobTemplate() });
        this.#log.info(`Work pool ${pyRepr(name)} created.`);
      } catch (error) {
        if (!(error instanceof AlreadyExistsError)) throw error;
        pool = await this.#db.workPools.getByName(name);
      }
    }
    if (!pool) {
      this.#log.warn(`Work pool ${pyRepr(name)} not found!`);
      this.#pool = null;
      return;
    }
    if (Object.keys(pool.base_job_template).length === 0) {
      pool = await this.#db.workPools.update(pool.id, { base_job_template: defaultBaseJobTemplate() });
    }
    if (pool.type !== WORKER_TYPE && !this.#warnedType) {
      this.#warnedType = true;
      this.#log.warn(
        `Worker type mismatch! This worker process expects type ${pyRepr(WORKER_TYPE)} but received ${pyRepr(pool.type)} from the server. Unexpected behavior may occur.`,
      );
    }
    const queues = await this.#db.workPools.readQueues(pool.id);
    const wanted = new Set(this.options.queues);
    this.#queueIds = queues.filter((q) => wanted.size === 0 || wanted.has(q.name)).map((q) => q.id);
    const worker = await this.#db.workPools.heartbeat(pool.id, {
      name: this.name,
      heartbeat_interval_seconds: Math.max(1, Math.round(this.options.heartbeatIntervalSeconds)),
    });
    this.#pool = pool;
    this.#workerId = worker.id;
    this.#log.debug({ worker_id: worker.id }, "Worker synchronized with the database");
  }

  // --- Polling ------------------------------------------------------------------------------------

  async #pollSafely(): Promise<void> {
    try {
      await this.#poll();
    } catch (error) {
      this.#log.error({ err: error }, "Polling for scheduled flow runs failed; will try again");
    }
  }

  async #poll(): Promise<void> {
    if (!this.#pool) await this.#syncSafely();
    const pool = this.#pool;
    if (!pool) return;
    await this.#checkCancellations();
    let free = this.options.limit === null ? Number.POSITIVE_INFINITY : this.options.limit - this.#active.size;
    if (free <= 0) this.#log.debug({ active: this.#active.size }, "Flow run limit reached");
    while (free > 0 && this.#claiming) {
      const batch = Math.min(free, CLAIM_BATCH);
      // A stop that comes while runs are being locked leaves them SCHEDULED for other workers.
      const outcome = await claimScheduledFlowRuns(
        this.#db,
        {
          workPoolNames: [pool.name],
          workQueueNames: this.options.queues.length > 0 ? [...this.options.queues] : null,
          scheduledBefore: addSeconds(now(), Math.trunc(this.options.prefetchSeconds)),
          limit: batch,
        },
        { proceed: () => this.#claiming },
      );
      await this.#events.write(outcome.events);
      for (const refused of outcome.refused) {
        if (refused.error) {
          this.#log.error({ err: refused.error, flow_run_id: refused.run.id }, `Failed to update state of flow run ${pyRepr(refused.run.id)}`);
        } else if (refused.result?.details.type === "abort_details") {
          this.#log.info(`Aborted submission of flow run ${pyRepr(refused.run.id)}. Server sent an abort signal: ${refused.result.details.reason ?? ""}`);
        } else {
          this.#log.info(
            `Aborted submission of flow run ${pyRepr(refused.run.id)}: Server returned a non-pending state ${pyRepr(refused.result?.state?.type ?? "None")}`,
          );
        }
      }
      for (const claimed of outcome.claimed) this.#launch(claimed);
      free -= outcome.claimed.length;
      if (outcome.claimed.length === 0 || outcome.claimed.length + outcome.refused.length < batch) break;
    }
    if (this.#queueIds.length > 0) {
      await this.#db.workPools.markQueuesPolled(this.#queueIds);
      await this.#db.workPools.markDeploymentsPolled(this.#queueIds);
    }
  }

  // --- Cancellation ----------------------------------------------------------------------------

  async #checkCancellationsSafely(): Promise<void> {
    try {
      await this.#checkCancellations();
    } catch (error) {
      this.#log.error({ err: error }, "Checking for cancelled flow runs failed; will try again");
    }
  }

  /** Stops the processes of this worker's runs that were moved to CANCELLING. */
  async #checkCancellations(): Promise<void> {
    const ids = [...this.#active.keys()];
    if (ids.length === 0) return;
    const cancelling = await this.#db.flowRuns.read({ flow_runs: { id: { any_: ids }, state: { type: { any_: ["CANCELLING"] } } } });
    for (const run of cancelling) {
      const active = this.#active.get(run.id);
      if (!active || active.cancelRequested) continue;
      active.cancelRequested = true;
      this.#runLog(active, LogLevel.INFO, `Cancelling flow run ${pyRepr(run.name)}: stopping its process.`);
      if (active.process?.running) void active.process.terminate(this.options.killGraceSeconds, this.#killNow.promise);
      else active.interrupt.abort();
    }
  }

  // --- Shutdown --------------------------------------------------------------------------------

  async #handBackAll(): Promise<void> {
    for (const active of this.#active.values()) {
      active.handBack = true;
      if (active.process?.running) {
        this.#runLog(active, LogLevel.INFO, "Rescheduling flow run for resubmission: the worker is shutting down.");
        void active.process.terminate(this.options.killGraceSeconds, this.#killNow.promise);
      } else {
        active.interrupt.abort();
      }
    }
    await Promise.all([...this.#active.values()].map((a) => a.done));
  }

  // --- One flow run ----------------------------------------------------------------------------

  #launch(claimed: ClaimedRun): void {
    const active: ActiveRun = {
      id: claimed.flow_run.id,
      run: claimed.flow_run,
      process: null,
      cancelRequested: false,
      handBack: false,
      interrupt: new AbortController(),
      done: Promise.resolve(),
    };
    this.#active.set(active.id, active);
    active.done = this.#execute(active, claimed)
      .catch((error: unknown) => this.#log.error({ err: error, flow_run_id: active.id }, "Unexpected error while running a flow run"))
      .finally(() => {
        this.#active.delete(active.id);
        this.#nudge();
      });
  }

  /** A message about the run: into its logs (Prefect's worker flow run logger) and the worker's log. */
  #runLog(active: ActiveRun, level: Level, message: string): void {
    this.#logs.add(active.id, WORKER_RUN_LOGGER, level, message);
    const fields = { flow_run_id: active.id };
    if (level >= LogLevel.ERROR) this.#log.error(fields, message);
    else if (level >= LogLevel.WARNING) this.#log.warn(fields, message);
    else this.#log.info(fields, message);
  }

  async #execute(active: ActiveRun, claimed: ClaimedRun): Promise<void> {
    const run = claimed.flow_run;
    this.#runLog(active, LogLevel.INFO, `Worker ${pyRepr(this.name)} submitting flow run ${pyRepr(run.id)}`);

    // A run taken ahead of time (prefetch) starts when it is due.
    const due = claimed.scheduled.next_scheduled_start_time;
    if (due) await sleep(Date.parse(due) - Date.now(), active.interrupt.signal);
    if (active.cancelRequested || this.#stopRequested) {
      if (!active.cancelRequested) active.handBack = true;
      await this.#settle(active, null, "Flow run was cancelled before execution started.");
      return;
    }

    const pool = this.#pool ?? (await this.#db.workPools.get(claimed.work_pool_id));
    let flow: Flow | null = null;
    let deployment: Deployment | null = null;
    let configuration: ProcessJobConfiguration;
    try {
      if (!pool) throw new Error(`Work pool ${claimed.work_pool_id} not found.`);
      flow = await this.#db.flows.get(run.flow_id);
      deployment = run.deployment_id ? await this.#db.deployments.get(run.deployment_id) : null;
      configuration = await resolveJobConfiguration(
        { flowRun: run, flow, deployment, workPool: pool, workerName: this.name, workerId: this.#workerId, apiUrl: this.options.apiUrl },
        async (name) => (await this.#db.variables.getByName(name))?.value,
        this.#env,
      );
    } catch (error) {
      const message = `Failed to submit flow run to infrastructure: ${errorName(error)}: ${errorText(error)}`;
      this.#runLog(active, LogLevel.ERROR, `Failed to submit flow run ${pyRepr(run.name)} to infrastructure. ${errorText(error)}`);
      await this.#crash(active, message);
      return;
    }
    const related = flowRunResources(run, flow, deployment, pool);
    const submitted = workerEvent("prefect.worker.submitted-flow-run", this.#resource, related);
    await this.#events.write([submitted]);

    let workingDir = configuration.workingDir;
    const temporary = workingDir === null;
    let proc: FlowRunProcess;
    try {
      workingDir ??= await mkdtemp(join(tmpdir(), "prefect-flow-run-"));
      proc = await FlowRunProcess.start({
        args: splitCommand(configuration.command),
        cwd: workingDir,
        env: configuration.env,
        // Prefect's engine (the default command) sends its own logs through the API: storing its
        // console output as well would store every log twice.
        onLine: configuration.streamOutput
          ? (stream, line) => {
              if (configuration.commandConfigured) this.#output(active, stream, line);
            }
          : null,
        onChunk: configuration.streamOutput ? (stream, chunk) => (stream === "stdout" ? this.#stdout : this.#stderr)?.write(chunk) : undefined,
      });
    } catch (error) {
      this.#runLog(active, LogLevel.ERROR, `Failed to start process for flow run ${pyRepr(run.id)}: ${errorText(error)}`);
      await this.#crash(active, `Flow run could not start: ${errorText(error)}`);
      if (temporary && workingDir) await rm(workingDir, { recursive: true, force: true });
      return;
    }
    active.process = proc;
    const infrastructurePid = `${this.#hostname}:${proc.pid}`;
    try {
      await this.#recordInfrastructure(active, infrastructurePid, pool);
      this.#runLog(active, LogLevel.INFO, `Flow run ${pyRepr(run.name)} submitted to infrastructure`);
      // Cancelled or stopping while the process started: stop it now.
      if ((this.#handingBack || active.cancelRequested) && proc.running) void proc.terminate(this.options.killGraceSeconds, this.#killNow.promise);
      await this.#markRunning(active);

      const exit = await proc.exited;
      const code = statusCode(exit);
      const info = exitInfo(code);
      if (code === 0) {
        this.#runLog(active, LogLevel.INFO, `Process for flow run ${pyRepr(run.name)} exited cleanly.`);
      } else {
        this.#runLog(active, info.level as Level, `Process for flow run ${pyRepr(run.name)} exited with status code: ${code}; ${info.explanation}`);
        if (info.resolution) this.#runLog(active, LogLevel.INFO, info.resolution);
      }
      await this.#logs.flush();
      await this.#settle(active, exit, "Flow run was cancelled successfully.");

      const executedRelated = related.map((r) =>
        r["prefect.resource.role"] === "flow-run"
          ? { ...r, "prefect.infrastructure.identifier": infrastructurePid, "prefect.infrastructure.status-code": String(code) }
          : r,
      );
      await this.#events.write([workerEvent("prefect.worker.executed-flow-run", this.#resource, executedRelated, submitted.id)]);
    } finally {
      if (temporary) await rm(workingDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  #output(active: ActiveRun, stream: OutputStream, line: string): void {
    this.#logs.add(active.id, RUN_OUTPUT_LOGGER, stream === "stdout" ? LogLevel.INFO : LogLevel.ERROR, line);
  }

  /** `infrastructure_pid` and Prefect's worker labels on the run. */
  async #recordInfrastructure(active: ActiveRun, infrastructurePid: string, pool: WorkPool): Promise<void> {
    try {
      const current = await this.#db.flowRuns.get(active.id);
      active.run = await this.#db.flowRuns.update(active.id, {
        infrastructure_pid: infrastructurePid,
        labels: {
          ...(current?.labels ?? active.run.labels ?? {}),
          "prefect.worker.name": this.name,
          "prefect.worker.type": WORKER_TYPE,
          "prefect.work-pool.name": pool.name,
          "prefect.work-pool.id": pool.id,
        },
      });
    } catch (error) {
      this.#runLog(
        active,
        LogLevel.ERROR,
        `An error occurred while setting the \`infrastructure_pid\` on flow run ${pyRepr(active.id)}. The flow run will not be cancellable. ${errorText(error)}`,
      );
    }
  }

  /**
   * PENDING → RUNNING, unless the process (or anyone else) moved the run already. This is done even
   * when the process has already exited (a fast one may end before the proposal is made): the run
   * did run, so it goes through RUNNING, which counts the run (`run_count`) and lets the retry policy
   * apply to a failure. A WAIT is waited out only while the process runs.
   */
  async #markRunning(active: ActiveRun): Promise<void> {
    let failures = 0;
    for (let attempt = 0; attempt < 60; attempt++) {
      let result: OrchestrationResult | null;
      try {
        result = await this.#db.transaction(async (tx) => {
          const current = await tx.flowRuns.getForUpdate(active.id);
          if (current?.state_type !== "PENDING") return null;
          return setFlowRunState(tx, active.id, { type: "RUNNING" });
        });
      } catch (error) {
        failures += 1;
        if (failures >= STATE_ATTEMPTS) {
          this.#log.error({ err: error, flow_run_id: active.id }, "Could not move the flow run to RUNNING");
          return;
        }
        this.#log.warn({ err: error, flow_run_id: active.id }, "Could not move the flow run to RUNNING; trying again");
        await sleep(Math.min(500 * 2 ** (failures - 1), 10_000));
        continue;
      }
      if (!result) return;
      await this.#events.write(result.events);
      if (result.status !== "WAIT" || result.details.type !== "wait_details") return;
      const process = active.process;
      if (!process?.running) return;
      await Promise.race([sleep(Math.max(result.details.delay_seconds, 0.1) * 1000), process.exited]);
    }
  }

  async #crash(active: ActiveRun, message: string): Promise<void> {
    await this.#logs.flush();
    await this.#propose(active, { type: "CRASHED", message });
  }

  /**
   * Sets the state the run ends with, from what it is now: CANCELLING → CANCELLED; RUNNING or
   * PENDING → AwaitingRetry when the worker hands it back, else what the exit means; anything else
   * was set by the process (or a person) and stays.
   */
  async #settle(active: ActiveRun, exit: ExitStatus | null, cancelledMessage: string): Promise<void> {
    for (let attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
      const current = await this.#retrying(() => this.#db.flowRuns.get(active.id), active);
      if (!current?.state) return;
      const type = current.state.type;
      let done: boolean;
      if (type === "CANCELLING") {
        // Prefect's worker forces a copy of the current state, renamed and retyped.
        const cancelled = { type: "CANCELLED", name: "Cancelled", message: cancelledMessage, data: current.state.data, state_details: current.state.state_details };
        done = await this.#propose(active, cancelled, true);
        if (done) this.#runLog(active, LogLevel.INFO, `Cancelled flow run ${pyRepr(current.name)}`);
      } else if (type !== "RUNNING" && type !== "PENDING") {
        return;
      } else if (active.handBack) {
        done = await this.#propose(active, { type: "SCHEDULED", name: "AwaitingRetry" });
        if (done) this.#runLog(active, LogLevel.INFO, "Rescheduled flow run for resubmission");
      } else if (exit === null) {
        return;
      } else if (exit.code === 0) {
        done = await this.#propose(active, { type: "COMPLETED" });
      } else {
        const code = statusCode(exit);
        const message = `Flow run infrastructure exited with non-zero status code ${code}. ${exitInfo(code).explanation}`;
        done = exit.signal ? await this.#propose(active, { type: "CRASHED", message }) : await this.#proposeFailed(active, message);
        if (done && exit.signal) this.#runLog(active, LogLevel.INFO, `Reported flow run ${pyRepr(active.id)} as crashed: ${message}`);
      }
      if (done) return;
    }
    const final = await this.#db.flowRuns.get(active.id).catch(() => null);
    this.#log.error({ flow_run_id: active.id, state: final?.state_type }, "Could not set the flow run's final state");
  }

  /**
   * Proposes `state` through orchestration; true once the run has left the state it was in (ACCEPT,
   * or REJECT into another state), false to look again (WAIT, or a REJECT/ABORT that left it).
   */
  async #propose(active: ActiveRun, state: StateInput, force = false): Promise<boolean> {
    const result = await this.#retrying(() => setFlowRunState(this.#db, active.id, state, { force }), active);
    return this.#afterProposal(active, result);
  }

  /**
   * FAILED for a non-zero exit. When the retry policy turns it into AwaitingRetry, the retry is
   * handed back to the pool in the same transaction: Prefect marks such a retry `in_process` (the
   * engine that failed retries it in its own process, and workers leave it alone), but here the
   * process is gone and the worker took its place, so the run becomes an ordinary scheduled run
   * any worker takes when it is due.
   */
  async #proposeFailed(active: ActiveRun, message: string): Promise<boolean> {
    const result = await this.#retrying(
      () =>
        this.#db.transaction(async (tx) => {
          const outcome = await setFlowRunState(tx, active.id, { type: "FAILED", message });
          if (outcome.state?.type === "SCHEDULED") {
            const run = await tx.flowRuns.getForUpdate(active.id);
            if (run && run.empirical_policy.retry_type === "in_process") {
              await tx.flowRuns.update(active.id, { empirical_policy: { ...run.empirical_policy, retry_type: null } });
            }
          }
          return outcome;
        }),
      active,
    );
    const done = await this.#afterProposal(active, result);
    if (result.state?.type === "SCHEDULED") {
      this.#runLog(active, LogLevel.INFO, `Flow run ${pyRepr(active.run.name)} will be retried at ${result.state.state_details.scheduled_time ?? "once due"}.`);
    }
    return done;
  }

  async #afterProposal(active: ActiveRun, result: OrchestrationResult): Promise<boolean> {
    await this.#events.write(result.events);
    if (result.status === "WAIT" && result.details.type === "wait_details") {
      await sleep(Math.max(result.details.delay_seconds, 0.1) * 1000);
      return false;
    }
    if (result.status === "ACCEPT") return true;
    // Rejected into a state where the run no longer needs this worker (e.g. FAILED → AwaitingRetry).
    if (result.status === "REJECT" && result.state && !["RUNNING", "PENDING", "CANCELLING"].includes(result.state.type)) return true;
    this.#log.info(
      { flow_run_id: active.id, status: result.status, details: result.details, state: result.state?.type },
      "The proposed state was not accepted; looking at the run again",
    );
    return false;
  }

  /** Runs a database call, trying again with backoff when it fails (the run must not be left behind). */
  async #retrying<T>(call: () => Promise<T>, active: ActiveRun): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (attempt >= STATE_ATTEMPTS - 1) throw error;
        this.#log.warn({ err: error, flow_run_id: active.id }, "Database call for a flow run failed; trying again");
        await sleep(Math.min(500 * 2 ** attempt, 10_000));
      }
    }
  }
}

