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
import { BusyError, type Database, type FlowRun, type Repositories, type StoredRunRelated, type WorkPool } from "@prefect/db";
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

/** The state a run ends with: `failed` runs may be retried (see `#fail`); `note` is logged once it is set. */
interface Settlement {
  readonly kind: "failed" | "other";
  readonly state: StateInput;
  readonly force: boolean;
  readonly note: string | null;
}

/**
 * The run, locked, and what its next state's event names (for `setFlowRunState`'s `related`), read
 * right behind the lock: on PostgreSQL both go out together, in one round trip.
 */
async function lockWithRelated(tx: Repositories, id: string): Promise<{ current: FlowRun | null; related: Promise<StoredRunRelated | null> }> {
  const locking = tx.flowRuns.getForUpdate(id);
  const related = tx.flowRuns.relatedOf(id);
  related.catch(() => undefined);
  return { current: await locking, related };
}

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
          const { current, related } = await lockWithRelated(tx, id);
          if (!current) return { run: recorded, result: null };
          let run = recorded ?? current;
          // Where the run runs is written without being waited for: it goes out ahead of the state
          // (PostgreSQL runs a transaction's statements in order), so the two cost one round trip.
          let written: Promise<void> | null = null;
          if (!recorded) {
            const where = { infrastructure_pid: infrastructurePid, labels: this.#labels(current, pool) };
            written = tx.flowRuns.patch(id, where);
            written.catch(() => undefined);
            run = { ...current, ...where };
          }
          if (current.state_type !== "PENDING") {
            await written;
            return { run, result: null };
          }
          // The run as it is now, locked: orchestration need not read it again, and its state is the
          // transaction's last write.
          let result: OrchestrationResult;
          try {
            result = await setFlowRunState(tx, id, { type: "RUNNING" }, { locked: run, related, endsTransaction: true });
          } catch (error) {
            // A failed write of where the run runs failed what followed it: its error is the one to tell.
            await written;
            throw error;
          }
          await written;
          return { run, result };
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
   * the process never started); anything else was set by the process (or a person) and stays. The
   * run is read with its lock and the state proposed in the same transaction, whose last write the
   * state is.
   */
  async settle(active: SupervisedRun, exit: ExitStatus | null, cancelledMessage: string): Promise<void> {
    const id = active.id;
    for (let attempt = 0; attempt < DATABASE_ATTEMPTS; attempt++) {
      const outcome = await this.#retrying(
        () =>
          this.#db.transaction(async (tx) => {
            const { current, related } = await lockWithRelated(tx, id);
            const settlement = current ? this.#settlement(current, active, exit, cancelledMessage) : null;
            if (!current || !settlement) return null;
            if (settlement.kind !== "failed") {
              const { state, force } = settlement;
              return { settlement, result: await setFlowRunState(tx, id, state, { force, locked: current, related, endsTransaction: true }) };
            }
            return { settlement, result: await this.#fail(tx, current, settlement.state, related) };
          }),
        id,
      );
      if (!outcome) return;
      const { settlement, result } = outcome;
      const done = await this.#afterProposal(id, result);
      if (settlement.kind === "failed" && result.state?.type === "SCHEDULED") {
        this.#logs.note(id, LogLevel.INFO, `Flow run ${pyRepr(active.run.name)} will be retried at ${result.state.state_details.scheduled_time ?? "once due"}.`);
      }
      if (done && settlement.note) this.#logs.note(id, LogLevel.INFO, settlement.note);
      if (done) return;
    }
    const final = await this.#db.flowRuns.get(id).catch(() => null);
    this.#log.error({ flow_run_id: id, state: final?.state_type }, "Could not set the flow run's final state");
  }

  /** The state a run that is `current` now ends with (see `settle`); null when it keeps its state. */
  #settlement(current: FlowRun, active: SupervisedRun, exit: ExitStatus | null, cancelledMessage: string): Settlement | null {
    if (!current.state) return null;
    const type = current.state.type;
    if (type === "CANCELLING") {
      // Prefect's worker forces a copy of the current state, renamed and retyped.
      const state = { type: "CANCELLED", name: "Cancelled", message: cancelledMessage, data: current.state.data, state_details: current.state.state_details };
      return { kind: "other", state, force: true, note: `Cancelled flow run ${pyRepr(current.name)}` };
    }
    if (type !== "RUNNING" && type !== "PENDING") return null;
    if (active.handingBack) return { kind: "other", state: { type: "SCHEDULED", name: "AwaitingRetry" }, force: false, note: "Rescheduled flow run for resubmission" };
    if (exit === null) return null;
    if (exit.code === 0) return { kind: "other", state: { type: "COMPLETED" }, force: false, note: null };
    const code = statusCode(exit);
    const message = `Flow run infrastructure exited with non-zero status code ${code}. ${exitInfo(code).explanation}`;
    if (exit.signal) return { kind: "other", state: { type: "CRASHED", message }, force: false, note: `Reported flow run ${pyRepr(active.id)} as crashed: ${message}` };
    return { kind: "failed", state: { type: "FAILED", message }, force: false, note: null };
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
   * FAILED for a non-zero exit, in the transaction `tx` holding the run's lock. When the retry policy
   * turns it into AwaitingRetry, the retry is handed back to the pool in the same transaction: Prefect
   * marks such a retry `in_process` (the engine that failed retries it in its own process, and
   * workers leave it alone), but here the process is gone and the worker took its place, so the run
   * becomes an ordinary scheduled run any worker takes when it is due.
   */
  async #fail(tx: Repositories, current: FlowRun, state: StateInput, related: Promise<StoredRunRelated | null>): Promise<OrchestrationResult> {
    const outcome = await setFlowRunState(tx, current.id, state, { locked: current, related });
    if (outcome.state?.type === "SCHEDULED") {
      const run = await tx.flowRuns.getForUpdate(current.id);
      if (run && run.empirical_policy.retry_type === "in_process") {
        await tx.flowRuns.patch(current.id, { empirical_policy: { ...run.empirical_policy, retry_type: null } });
      }
    }
    return outcome;
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
