/**
 * What the worker asks the database on each poll (Prefect's `get_and_submit_flow_runs` and
 * `check_for_cancelled_flow_runs`): which due runs it may take, and which of the runs it holds were
 * set CANCELLING. Taking runs goes through `claimScheduledFlowRuns` (claim.ts), in batches, so that
 * no transaction holds many row locks for long; each batch's runs are handed on as soon as they are
 * claimed, so they start while the next batch is being claimed.
 */
import { addSeconds, type Database, type FlowRun, now, type WorkPool } from "@prefect/db";
import { type ClaimedRun, claimScheduledFlowRuns, type NotClaimed } from "./claim.js";
import type { EventWriter } from "./events.js";
import type { WorkerLogger } from "./logger.js";
import { pyRepr } from "./messages.js";
import type { WorkerOptions } from "./options.js";

/** Most runs claimed in one transaction. */
const CLAIM_BATCH = 10;

export interface ClaimTarget {
  /** Asked before each run is claimed: false stops claiming (the worker began to stop). */
  readonly proceed: () => boolean;
  /** Called with each claimed run (now PENDING and this worker's) as soon as its batch committed. */
  readonly launch: (run: ClaimedRun) => void;
}

export class RunPoller {
  readonly #db: Database;
  readonly #options: Pick<WorkerOptions, "queues" | "prefetchSeconds">;
  readonly #events: EventWriter;
  readonly #log: WorkerLogger;

  constructor(db: Database, options: Pick<WorkerOptions, "queues" | "prefetchSeconds">, events: EventWriter, log: WorkerLogger) {
    this.#db = db;
    this.#options = options;
    this.#events = events;
    this.#log = log;
  }

  /** Claims up to `free` (may be Infinity) of the pool's runs due within the prefetch window. */
  async claimDueRuns(pool: WorkPool, free: number, target: ClaimTarget): Promise<void> {
    while (free > 0 && target.proceed()) {
      const batch = Math.min(free, CLAIM_BATCH);
      // A stop that comes while runs are being locked leaves them SCHEDULED for other workers.
      const outcome = await claimScheduledFlowRuns(
        this.#db,
        {
          workPoolNames: [pool.name],
          workQueueNames: this.#options.queues.length > 0 ? [...this.#options.queues] : null,
          scheduledBefore: addSeconds(now(), Math.trunc(this.#options.prefetchSeconds)),
          limit: batch,
        },
        { proceed: target.proceed },
      );
      this.#events.enqueue(outcome.events);
      for (const refused of outcome.refused) this.#logRefused(refused);
      for (const claimed of outcome.claimed) target.launch(claimed);
      free -= outcome.claimed.length;
      // A short batch means the pool had no more due runs (or the limits allow no more).
      if (outcome.claimed.length === 0 || outcome.claimed.length + outcome.refused.length < batch) break;
    }
  }

  /** Marks the queues (and their deployments) polled: what makes them READY for the server. */
  async markPolled(queueIds: readonly string[]): Promise<void> {
    if (queueIds.length === 0) return;
    await this.#db.workQueues.markPolled(queueIds);
    await this.#db.workQueues.markDeploymentsPolled(queueIds);
  }

  /** The runs among `ids` that are CANCELLING now. */
  cancelling(ids: readonly string[]): Promise<FlowRun[]> {
    return this.#db.flowRuns.read({ flow_runs: { id: { any_: [...ids] }, state: { type: { any_: ["CANCELLING"] } } } });
  }

  /** Prefect's worker's messages for a run it did not get to take. */
  #logRefused(refused: NotClaimed): void {
    if (refused.error) {
      this.#log.error({ err: refused.error, flow_run_id: refused.run.id }, `Failed to update state of flow run ${pyRepr(refused.run.id)}`);
    } else if (refused.result?.details.type === "abort_details") {
      this.#log.info(`Aborted submission of flow run ${pyRepr(refused.run.id)}. Server sent an abort signal: ${refused.result.details.reason ?? ""}`);
    } else {
      this.#log.info(`Aborted submission of flow run ${pyRepr(refused.run.id)}: Server returned a non-pending state ${pyRepr(refused.result?.state?.type ?? "None")}`);
    }
  }
}
