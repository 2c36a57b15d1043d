/**
 * MarkLateRuns (Prefect's services/late_runs.py): every PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS,
 * flow runs still SCHEDULED ("Scheduled") whose next scheduled start time is more than
 * PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS ago are proposed a `Late` state (SCHEDULED, named
 * "Late", same scheduled time) through orchestration with MarkLateRunsPolicy, which also applies a
 * deployment's CANCEL_NEW concurrency strategy. The events of each accepted change are published.
 *
 * Each run is locked and checked again before the proposal, in one transaction, so several services
 * (in one process or on several machines) marking the same runs at once mark each run Late once.
 */
import { addSeconds, BusyError, NotFoundError, now, type Timestamp } from "@prefect/db";
import type { AppContext, Logger } from "../context.js";
import { markFlowRunLate, readRunsToMarkLate } from "../features/flow-runs/service.js";
import { LoopService } from "./loop.js";

/** Prefect's batch of late runs per look. */
const BATCH = 400;

/** Marks the runs late now; returns how many became Late. */
export async function markLateRuns(
  context: Pick<AppContext, "db" | "events" | "settings">,
  options: { readonly afterSeconds: number; readonly signal?: AbortSignal | undefined; readonly log?: Logger | undefined },
): Promise<number> {
  const { db } = context;
  const threshold: Timestamp = addSeconds(now(), -options.afterSeconds);
  const candidates = await readRunsToMarkLate(db, threshold, BATCH);
  let marked = 0;
  for (const candidate of candidates) {
    if (options.signal?.aborted) break;
    try {
      const result = await markFlowRunLate(context, candidate.id, threshold);
      if (result?.status === "ACCEPT") marked++;
    } catch (error) {
      if (error instanceof NotFoundError) continue;
      if (error instanceof BusyError) throw error;
      options.log?.warn({ err: error, service: "MarkLateRuns", flow_run_id: candidate.id }, "could not mark a flow run late");
    }
  }
  return marked;
}

export function lateRuns(context: AppContext, log: Logger): LoopService {
  const s = context.settings.services.lateRuns;
  return new LoopService(
    "MarkLateRuns",
    s.loopSeconds,
    async (signal) => {
      const marked = await markLateRuns(context, { afterSeconds: s.afterSeconds, signal, log });
      if (marked > 0) log.info({ service: "MarkLateRuns", marked }, `Marked ${marked} flow runs as Late.`);
    },
    (error) => log.error({ err: error, service: "MarkLateRuns" }, "marking late runs failed; trying again on the next loop"),
  );
}
