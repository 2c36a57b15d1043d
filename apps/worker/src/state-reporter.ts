/**
 * Everything the worker tells the database about a run it holds, after claiming it: where it runs
 * (`infrastructure_pid` and Prefect's worker labels), RUNNING, and the state its end means, each
 * proposed through orchestration as Prefect's worker proposes them through the API, so that the
 * same rules (retries, concurrency slots, refusals) apply. Orchestration's events and Prefect's
 * worker events are stored with them.
 *
 * The database may fail a call for a while (a restart, a full pool): a run must not be left
 * RUNNING because one write failed, so each call is tried again with a backoff.
 */
import { BusyError, type Database, type FlowRun, type WorkPool } from "@prefect/db";
import { type OrchestrationResult, type StateInput, setFlowRunState } from "@prefect/orchestration";
import { type EventWriter, type Resource, WORKER_TYPE, type WorkerEvent, workerEvent } from "./events.js";
import { exitInfo } from "./exit-codes.js";
import type { WorkerLogger } from "./logger.js";
import { errorText, pyRepr } from "./messages.js";
import { type ExitStatus, type FlowRunProcess, statusCode } from "./process.js";
import { backoffMs, DATABASE_ATTEMPTS } from "./retry.js";
import { LogLevel, type RunLogWriter } from "./run-logs.js";
import { sleep } from "./sleep.js";

/** How often RUNNING is proposed again while orchestration answers WAIT. */
const RUNNING_PROPOSALS = 60;

/** What the reporter reads of a run it reports on (a run supervisor). */
export interface SupervisedRun {
  readonly id: string;
  /** The run as the worker last read or wrote it. */
  readonly run: FlowRun;
  /** The worker is stopping: the run goes back to the pool instead of getting a final state. */
  readonly handingBack: boolean;
}

/** The worker a reporter speaks for. */
export interface ReportingWorker {
  readonly name: string;
  /** The worker as an event resource. */
  readonly resource: Resource;
  /** Resolves when the worker is being killed (its last signal): a busy database is not waited for any longer. */
  readonly killNow: Promise<void>;
}

/**
 * How long a database that cannot serve a call for a run (BusyError: a restart, lost connections) is
 * waited for, trying again with the backoff, before the run is given up on; other failures are
 * tried DATABASE_ATTEMPTS times.
 */
const BUSY_WAIT_MS = 5 * 60_000;

export class RunStateReporter {
  readonly #db: Database;
  readonly #events: EventWriter;
  readonly #logs: RunLogWriter;
  readonly #log: WorkerLogger;
  readonly #worker: ReportingWorker;
  /** Aborted when the worker is being killed. */
  readonly #killed = new AbortController();

  constructor(db: Database, events: EventWriter, logs: RunLogWriter, log: WorkerLogger, worker: ReportingWorker) {
    this.#db = db;
    this.#events = events;
    this.#logs = logs;
    this.#log = log;
    this.#worker = worker;
    void worker.killNow.then(() => this.#killed.abort());
  }

  /** `prefect.worker.submitted-flow-run`, related to the run's deployment, flow, tags and pool. */
  async submitted(related: Resource[]): Promise<WorkerEvent> {
    const event = workerEvent("prefect.worker.submitted-flow-run", this.#worker.resource, related);
    this.#events.enqueue([event]);
    return event;
  }

  /** `prefect.worker.executed-flow-run`, following `submitted`, with where the run ran and its exit code. */
  async executed(submitted: WorkerEvent, infrastructurePid: string, code: number): Promise<void> {
    const related = submitted.related.map((r) =>
      r["prefect.resource.role"] === "flow-run"
        ? { ...r, "prefect.infrastructure.identifier": infrastructurePid, "prefect.infrastructure.status-code": String(code) }
        : r,
    );
    this.#events.enqueue([workerEvent("prefect.worker.executed-flow-run", this.#worker.resource, related, submitted.id)]);
  }

  /**
   * Where the run runs (`infrastructure_pid` and Prefect's worker labels) and PENDING → RUNNING, in
   * one transaction, unless the process (or anyone else) moved the run already; where it runs is
   * recorded either way. RUNNING is proposed even when the process has already exited (a fast one may
   * end before the proposal is made): the run did run, so it goes through RUNNING, which counts the
   * run (`run_count`) and lets the retry policy apply to a failure. A WAIT is waited out only while the
   * process runs. Returns the run as written (as it was, when where it runs could not be recorded: the
   * run then goes on, but cannot be found by its process).
   */
  async start(active: SupervisedRun, infrastructurePid: string, pool: WorkPool, process: FlowRunProcess): Promise<FlowRun> {
    const id = active.id;
    let recorded: FlowRun | null = null;
    let failures = 0;
    for (let attempt = 0; attempt < RUNNING_PROPOSALS; attempt++) {
      let outcome: { run: FlowRun | null; result: OrchestrationResult | null };
      try {
        outcome = await this.#db.transaction(async (tx) => {
          const current = await tx.flowRuns.getForUpdate(id);
          const written = recorded || !current ? null : await tx.flowRuns.update(id, { infrastructure_pid: infrastructurePid, labels: this.#labels(current, pool) });
          const run = recorded ?? written;
          if (current?.state_type !== "PENDING") return { run, result: null };
          // The run as it is now, locked: orchestration need not read it again.
          return { run, result: await setFlowRunState(tx, id, { type: "RUNNING" }, { locked: written ?? current }) };
        });
      } catch (error) {
        failures += 1;
        if (failures >= DATABASE_ATTEMPTS) {
          if (!recorded) {
            this.#logs.note(
              id,
              LogLevel.ERROR,
              `An error occurred while setting the \`infrastructure_pid\` on flow run ${pyRepr(id)}. The flow run will not be cancellable. ${errorText(error)}`,
            );
          }
          this.#log.error({ err: error, flow_run_id: id }, "Could not move the flow run to RUNNING");
          return recorded ?? active.run;
        }
        this.#log.warn({ err: error, flow_run_id: id }, "Could not move the flow run to RUNNING; trying again");
        await sleep(backoffMs(failures));
        continue;
      }
      recorded ??= outcome.run;
      const result = outcome.result;
      if (!result) break;
      this.#events.enqueue(result.events);
      if (result.status !== "WAIT" || result.details.type !== "wait_details") break;
      if (!process.running) break;
      await Promise.race([sleep(Math.max(result.details.delay_seconds, 0.1) * 1000), process.exited]);
    }
    return recorded ?? active.run;
  }

  /** The run's labels with Prefect's worker labels. */
  #labels(run: FlowRun, pool: WorkPool): NonNullable<FlowRun["labels"]> {
    return {
      ...(run.labels ?? {}),
      "prefect.worker.name": this.#worker.name,
      "prefect.worker.type": WORKER_TYPE,
      "prefect.work-pool.name": pool.name,
      "prefect.work-pool.id": pool.id,
    };
  }

  /** CRASHED: the run could not be started (its logs so far are written first, so they come before the state). */
  async crash(id: string, message: string): Promise<void> {
    await this.#logs.flush();
    await this.#propose(id, { type: "CRASHED", message });
  }

  /**
   * Sets the state the run ends with, from what it is now: CANCELLING → CANCELLED; RUNNING or
   * PENDING → AwaitingRetry when the worker hands it back, else what the exit means (nothing when
   * the process never started); anything else was set by the process (or a person) and stays.
   */
  async settle(active: SupervisedRun, exit: ExitStatus | null, cancelledMessage: string): Promise<void> {
    for (let attempt = 0; attempt < DATABASE_ATTEMPTS; attempt++) {
      const current = await this.#retrying(() => this.#db.flowRuns.get(active.id), active.id);
      if (!current?.state) return;
      const type = current.state.type;
      let done: boolean;
      if (type === "CANCELLING") {
        // Prefect's worker forces a copy of the current state, renamed and retyped.
        const cancelled = { type: "CANCELLED", name: "Cancelled", message: cancelledMessage, data: current.state.data, state_details: current.state.state_details };
        done = await this.#propose(active.id, cancelled, true);
        if (done) this.#logs.note(active.id, LogLevel.INFO, `Cancelled flow run ${pyRepr(current.name)}`);
      } else if (type !== "RUNNING" && type !== "PENDING") {
        return;
      } else if (active.handingBack) {
        done = await this.#propose(active.id, { type: "SCHEDULED", name: "AwaitingRetry" });
        if (done) this.#logs.note(active.id, LogLevel.INFO, "Rescheduled flow run for resubmission");
      } else if (exit === null) {
        return;
      } else if (exit.code === 0) {
        done = await this.#propose(active.id, { type: "COMPLETED" });
      } else {
        const code = statusCode(exit);
        const message = `Flow run infrastructure exited with non-zero status code ${code}. ${exitInfo(code).explanation}`;
        done = exit.signal ? await this.#propose(active.id, { type: "CRASHED", message }) : await this.#proposeFailed(active, message);
        if (done && exit.signal) this.#logs.note(active.id, LogLevel.INFO, `Reported flow run ${pyRepr(active.id)} as crashed: ${message}`);
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
  async #propose(id: string, state: StateInput, force = false): Promise<boolean> {
    const result = await this.#retrying(() => setFlowRunState(this.#db, id, state, { force }), id);
    return this.#afterProposal(id, result);
  }

  /**
   * FAILED for a non-zero exit. When the retry policy turns it into AwaitingRetry, the retry is
   * handed back to the pool in the same transaction: Prefect marks such a retry `in_process` (the
   * engine that failed retries it in its own process, and workers leave it alone), but here the
   * process is gone and the worker took its place, so the run becomes an ordinary scheduled run
   * any worker takes when it is due.
   */
  async #proposeFailed(active: SupervisedRun, message: string): Promise<boolean> {
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
      active.id,
    );
    const done = await this.#afterProposal(active.id, result);
    if (result.state?.type === "SCHEDULED") {
      this.#logs.note(active.id, LogLevel.INFO, `Flow run ${pyRepr(active.run.name)} will be retried at ${result.state.state_details.scheduled_time ?? "once due"}.`);
    }
    return done;
  }

  async #afterProposal(id: string, result: OrchestrationResult): Promise<boolean> {
    this.#events.enqueue(result.events);
    if (result.status === "WAIT" && result.details.type === "wait_details") {
      await sleep(Math.max(result.details.delay_seconds, 0.1) * 1000);
      return false;
    }
    if (result.status === "ACCEPT") return true;
    // Rejected into a state where the run no longer needs this worker (e.g. FAILED → AwaitingRetry).
    if (result.status === "REJECT" && result.state && !["RUNNING", "PENDING", "CANCELLING"].includes(result.state.type)) return true;
    this.#log.info(
      { flow_run_id: id, status: result.status, details: result.details, state: result.state?.type },
      "The proposed state was not accepted; looking at the run again",
    );
    return false;
  }

  /** Runs a database call for run `id`, trying again with backoff when it fails (see BUSY_WAIT_MS). */
  async #retrying<T>(call: () => Promise<T>, id: string): Promise<T> {
    const since = Date.now();
    for (let failures = 1; ; failures++) {
      try {
        return await call();
      } catch (error) {
        const waitingOut = error instanceof BusyError && Date.now() - since < BUSY_WAIT_MS && !this.#killed.signal.aborted;
        if (!waitingOut && failures >= DATABASE_ATTEMPTS) throw error;
        this.#log.warn({ err: error, flow_run_id: id }, "Database call for a flow run failed; trying again");
        await sleep(backoffMs(failures), this.#killed.signal);
      }
    }
  }
}
