/**
 * One claimed flow run, from PENDING to the end of its process (Prefect's `_submit_run` and the
 * process worker's `run`): waits until the run is due (it may be taken early, see prefetch), builds
 * its job configuration, starts its command as a process (process.ts), stores the process's output
 * as the run's logs, and once it exits has the state reporter set what the exit means.
 *
 * The worker talks to a supervisor for two things that can come at any time: a cancellation (the
 * run was set CANCELLING) and a hand-back (the worker is stopping). Both stop the process: SIGTERM
 * to its process group, SIGKILL after the kill grace period, or at once on the worker's last signal.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database, Deployment, Flow, FlowRun, WorkPool } from "@prefect/db";
import type { ClaimedRun } from "./claim.js";
import { flowRunResources, type Resource } from "./events.js";
import { exitInfo } from "./exit-codes.js";
import { type ProcessJobConfiguration, resolveJobConfiguration } from "./job-configuration.js";
import type { WorkerLogger } from "./logger.js";
import { errorName, errorText, pyRepr } from "./messages.js";
import { FlowRunProcess, statusCode } from "./process.js";
import { retryWhileBusy } from "./retry.js";
import { LogLevel, type RunLogWriter } from "./run-logs.js";
import { splitCommand } from "./shlex.js";
import type { ShutdownView } from "./shutdown.js";
import { sleep } from "./sleep.js";
import type { RunStateReporter, SupervisedRun } from "./state-reporter.js";

/** What every supervisor of one worker shares. */
export interface Supervision {
  readonly db: Database;
  readonly reporter: RunStateReporter;
  readonly logs: RunLogWriter;
  readonly log: WorkerLogger;
  readonly workerName: string;
  /** The worker's id and pool as of its last heartbeat (both go into the job configuration). */
  readonly workerId: () => string | null;
  readonly pool: () => WorkPool | null;
  /** What flow run processes get as PREFECT_API_URL. */
  readonly apiUrl: string;
  /** How long a process gets between SIGTERM and SIGKILL. */
  readonly killGraceSeconds: number;
  /** The environment flow run processes inherit. */
  readonly env: NodeJS.ProcessEnv;
  /** Where flow run output is passed through to (stream_output). */
  readonly stdout: NodeJS.WritableStream | null;
  readonly stderr: NodeJS.WritableStream | null;
  /** This machine's name in `infrastructure_pid`. */
  readonly hostname: string;
  readonly shutdown: ShutdownView;
}

/** A run ready to start: its configuration and what its worker events relate to. */
interface PreparedRun {
  readonly configuration: ProcessJobConfiguration;
  readonly pool: WorkPool;
  readonly related: Resource[];
}

export class RunSupervisor implements SupervisedRun {
  readonly id: string;
  run: FlowRun;
  /** Resolves once the run is done with (its final state set, or handed back); never rejects. */
  done: Promise<void> = Promise.resolve();

  readonly #claimed: ClaimedRun;
  readonly #shared: Supervision;
  #process: FlowRunProcess | null = null;
  /** The run was seen CANCELLING: its process is being stopped. */
  #cancelRequested = false;
  #handingBack = false;
  /** Ends the wait for the run's due time (cancellation, shutdown). */
  readonly #interrupt = new AbortController();

  constructor(claimed: ClaimedRun, supervision: Supervision) {
    this.id = claimed.flow_run.id;
    this.run = claimed.flow_run;
    this.#claimed = claimed;
    this.#shared = supervision;
  }

  get handingBack(): boolean {
    return this.#handingBack;
  }

  /** Whether the run's process was started (it may have exited since). */
  get started(): boolean {
    return this.#process !== null;
  }

  /** Starts supervising; `whenDone` is called once the run is done with. */
  start(whenDone: () => void): void {
    this.done = this.#supervise()
      .catch((error: unknown) => this.#shared.log.error({ err: error, flow_run_id: this.id }, "Unexpected error while running a flow run"))
      .finally(whenDone);
  }

  /** Ends the wait for the run's due time, so that it goes back to the pool (the worker is stopping). */
  interruptWait(): void {
    this.#interrupt.abort();
  }

  /** The run was seen CANCELLING (as `seen`): stop its process, or do not start it. */
  cancel(seen: FlowRun): void {
    if (this.#cancelRequested) return;
    this.#cancelRequested = true;
    this.#shared.logs.note(this.id, LogLevel.INFO, `Cancelling flow run ${pyRepr(seen.name)}: stopping its process.`);
    if (this.#process?.running) void this.#process.terminate(this.#shared.killGraceSeconds, this.#shared.shutdown.killNow);
    else this.#interrupt.abort();
  }

  /** The worker is stopping: stop the process and give the run back to the pool. */
  handBack(): void {
    this.#handingBack = true;
    if (this.#process?.running) {
      this.#shared.logs.note(this.id, LogLevel.INFO, "Rescheduling flow run for resubmission: the worker is shutting down.");
      void this.#process.terminate(this.#shared.killGraceSeconds, this.#shared.shutdown.killNow);
    } else {
      this.#interrupt.abort();
    }
  }

  async #supervise(): Promise<void> {
    const run = this.#claimed.flow_run;
    this.#shared.logs.note(this.id, LogLevel.INFO, `Worker ${pyRepr(this.#shared.workerName)} submitting flow run ${pyRepr(run.id)}`);

    // A run taken ahead of time (prefetch) starts when it is due.
    const due = this.#claimed.scheduled.next_scheduled_start_time;
    if (due) await sleep(Date.parse(due) - Date.now(), this.#interrupt.signal);
    if (this.#cancelRequested || this.#shared.shutdown.requested) {
      if (!this.#cancelRequested) this.#handingBack = true;
      await this.#shared.reporter.settle(this, null, "Flow run was cancelled before execution started.");
      return;
    }

    const prepared = await this.#prepare();
    if (!prepared) return;
    const submitted = await this.#shared.reporter.submitted(prepared.related);
    const { configuration } = prepared;

    let workingDir = configuration.workingDir;
    const temporary = workingDir === null;
    let proc: FlowRunProcess;
    try {
      workingDir ??= await mkdtemp(join(tmpdir(), "prefect-flow-run-"));
      proc = await this.#startProcess(configuration, workingDir);
    } catch (error) {
      this.#shared.logs.note(this.id, LogLevel.ERROR, `Failed to start process for flow run ${pyRepr(run.id)}: ${errorText(error)}`);
      await this.#shared.reporter.crash(this.id, `Flow run could not start: ${errorText(error)}`);
      if (temporary && workingDir) await rm(workingDir, { recursive: true, force: true });
      return;
    }
    this.#process = proc;
    const infrastructurePid = `${this.#shared.hostname}:${proc.pid}`;
    try {
      this.#shared.logs.note(this.id, LogLevel.INFO, `Flow run ${pyRepr(run.name)} submitted to infrastructure`);
      // Cancelled, or handed back, while the process started: cancel() and handBack() found nothing to stop.
      if ((this.#shared.shutdown.handingBack || this.#cancelRequested) && proc.running) {
        void proc.terminate(this.#shared.killGraceSeconds, this.#shared.shutdown.killNow);
      }
      this.run = await this.#shared.reporter.start(this, infrastructurePid, prepared.pool, proc);

      const exit = await proc.exited;
      const code = statusCode(exit);
      this.#noteExit(code);
      await this.#shared.logs.flush();
      await this.#shared.reporter.settle(this, exit, "Flow run was cancelled successfully.");
      await this.#shared.reporter.executed(submitted, infrastructurePid, code);
    } finally {
      if (temporary) await rm(workingDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** The run's job configuration from its pool, deployment and own job variables; null (and CRASHED) when it cannot be built. */
  async #prepare(): Promise<PreparedRun | null> {
    const { db, log } = this.#shared;
    const run = this.#claimed.flow_run;
    const read = async (): Promise<PreparedRun> => {
      const pool = this.#shared.pool() ?? (await db.workPools.get(this.#claimed.work_pool_id));
      if (!pool) throw new Error(`Work pool ${this.#claimed.work_pool_id} not found.`);
      // Read side by side: neither depends on the other.
      const [flow, deployment]: [Flow | null, Deployment | null] = await Promise.all([
        db.flows.get(run.flow_id),
        run.deployment_id ? db.deployments.get(run.deployment_id) : null,
      ]);
      const configuration = await resolveJobConfiguration(
        { flowRun: run, flow, deployment, workPool: pool, workerName: this.#shared.workerName, workerId: this.#shared.workerId(), apiUrl: this.#shared.apiUrl },
        async (name) => (await db.variables.getByName(name))?.value,
        this.#shared.env,
      );
      return { configuration, pool, related: flowRunResources(run, flow, deployment, pool) };
    };
    try {
      // A database that is away for a moment does not make the run fail.
      return await retryWhileBusy(read, (error) => log.warn({ err: error, flow_run_id: this.id }, "Could not read the flow run's configuration; trying again"));
    } catch (error) {
      this.#shared.logs.note(this.id, LogLevel.ERROR, `Failed to submit flow run ${pyRepr(run.name)} to infrastructure. ${errorText(error)}`);
      await this.#shared.reporter.crash(this.id, `Failed to submit flow run to infrastructure: ${errorName(error)}: ${errorText(error)}`);
      return null;
    }
  }

  #startProcess(configuration: ProcessJobConfiguration, cwd: string): Promise<FlowRunProcess> {
    const { stdout, stderr } = this.#shared;
    return FlowRunProcess.start({
      args: splitCommand(configuration.command),
      cwd,
      env: configuration.env,
      // Prefect's engine (the default command) sends its own logs through the API: storing its
      // console output as well would store every log twice.
      onLine: configuration.streamOutput
        ? (stream, line) => {
            if (configuration.commandConfigured) this.#shared.logs.output(this.id, stream, line);
          }
        : null,
      onChunk: configuration.streamOutput ? (stream, chunk) => (stream === "stdout" ? stdout : stderr)?.write(chunk) : undefined,
    });
  }

  /** Prefect's messages for the process's exit, with what a non-zero code means and what to do. */
  #noteExit(code: number): void {
    const name = pyRepr(this.#claimed.flow_run.name);
    if (code === 0) {
      this.#shared.logs.note(this.id, LogLevel.INFO, `Process for flow run ${name} exited cleanly.`);
      return;
    }
    const info = exitInfo(code);
    this.#shared.logs.note(this.id, info.level, `Process for flow run ${name} exited with status code: ${code}; ${info.explanation}`);
    if (info.resolution) this.#shared.logs.note(this.id, LogLevel.INFO, info.resolution);
  }
}
