/**
 * Taking scheduled flow runs for a worker: one transaction locks the runs the pool's, queues' and
 * deployments' limits allow (`workerRuns.lockScheduledFlowRuns`) and proposes PENDING for each
 * through orchestration, as Prefect's worker proposes PENDING through the API. Orchestration's rules
 * decide: the deployment's concurrency slot is taken on PENDING (and released on the run's final
 * state), a full deployment limit reschedules the run (AwaitingConcurrencySlot) or cancels it, and
 * ABORT means the run is not this worker's to take. Only ACCEPTed runs are the worker's.
 *
 * Two workers can never both take a run: the lock hands each run to one transaction at a time
 * (PostgreSQL row locks with SKIP LOCKED, SQLite's write lock), and orchestration refuses a second
 * PENDING anyway (PreventPendingTransitions).
 */
import type { Database, FlowRun, ScheduledFlowRunQuery, WorkerFlowRun } from "@prefect/db";
import { type OrchestrationEvent, type OrchestrationResult, setFlowRunState } from "@prefect/orchestration";

export interface ClaimedRun extends WorkerFlowRun {
  /** The run as it was locked (still SCHEDULED, with its due time). */
  readonly scheduled: FlowRun;
}

export interface NotClaimed {
  readonly run: FlowRun;
  /** Orchestration's answer, or the error the proposal failed with. */
  readonly result: OrchestrationResult | null;
  readonly error: unknown;
}

export interface ClaimOutcome {
  readonly claimed: ClaimedRun[];
  readonly refused: NotClaimed[];
  /** Orchestration's events, to store once the transaction committed. */
  readonly events: OrchestrationEvent[];
}

const DEPLOYMENT_GONE = "Deployment not found.";

export interface ClaimOptions {
  /**
   * Asked before each locked run is proposed PENDING; false leaves it (and the rest) SCHEDULED, e.g.
   * once the worker began to stop while the runs were being locked.
   */
  readonly proceed?: () => boolean;
}

/** Claims up to `query.limit` due runs (all of them without a limit) in one transaction. */
export async function claimScheduledFlowRuns(db: Database, query: ScheduledFlowRunQuery, options: ClaimOptions = {}): Promise<ClaimOutcome> {
  return db.transaction(async (tx) => {
    const accepted: WorkerFlowRun[] = [];
    const refused: NotClaimed[] = [];
    const events: OrchestrationEvent[] = [];
    const lockedRuns = await tx.workerRuns.lockScheduledFlowRuns(query);
    // What each run's PENDING event names, asked for at once: the reads go out together, not one
    // round trip per run.
    const related = new Map(
      lockedRuns.map((locked) => {
        const read = tx.flowRuns.relatedOf(locked.flow_run.id);
        read.catch(() => undefined);
        return [locked.flow_run.id, read] as const;
      }),
    );
    for (const locked of lockedRuns) {
      if (options.proceed && !options.proceed()) break;
      const run = locked.flow_run;
      try {
        const result = await setFlowRunState(tx, run.id, { type: "PENDING" }, { locked: run, related: related.get(run.id) });
        events.push(...result.events);
        if (result.status === "ABORT" && result.details.type === "abort_details" && result.details.reason === DEPLOYMENT_GONE && run.state) {
          // Prefect's worker cancels runs whose deployment no longer exists.
          const cancelled = await setFlowRunState(
            tx,
            run.id,
            {
              type: "CANCELLED",
              name: "Cancelled",
              message: `Deployment ${run.deployment_id} no longer exists, cancelled run.`,
              state_details: run.state.state_details,
            },
            { force: true },
          );
          events.push(...cancelled.events);
        }
        if (result.status === "ACCEPT" && result.state?.type === "PENDING") {
          accepted.push(locked);
        } else {
          refused.push({ run, result, error: null });
        }
      } catch (error) {
        // The proposal's savepoint is rolled back; the run stays SCHEDULED for a later poll.
        refused.push({ run, result: null, error });
      }
    }
    // The runs as PENDING left them, read together in one statement.
    const ids = accepted.map((locked) => locked.flow_run.id);
    const current = ids.length > 0 ? new Map((await tx.flowRuns.read({ flow_runs: { id: { any_: ids } }, limit: ids.length })).map((r) => [r.id, r])) : new Map<string, FlowRun>();
    const claimed: ClaimedRun[] = [];
    for (const locked of accepted) {
      const run = current.get(locked.flow_run.id);
      if (run) claimed.push({ ...locked, flow_run: run, scheduled: locked.flow_run });
    }
    return { claimed, refused, events };
  });
}
