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
import { BusyError, NotFoundError, now, type Timestamp, addSeconds } from "@prefect/db";
import { MarkLateRunsPolicy, setFlowRunState } from "@prefect/orchestration";
import type { AppContext, Logger } from "../context.js";
import { publishEvents } from "../features/events/bus.js";
import { LoopService } from "./loop.js";

/** Prefect's batch of late runs per look. */
const BATCH = 400;

/** Marks the runs late now; returns how many became Late. */
export async function markLateRuns(
  context: Pick<AppContext, "db" | "events" | "leases">,
  options: { readonly afterSeconds: number; readonly signal?: AbortSignal | undefined; readonly log?: Logger | undefined },
): Promise<number> {
  const { db } = context;
  const threshold: Timestamp = addSeconds(now(), -options.afterSeconds);
  const candidates = await db.flowRuns.read({
    flow_runs: { state: { type: { any_: ["SCHEDULED"] }, name: { any_: ["Scheduled"] } }, next_scheduled_start_time: { before_: threshold } },
    sort: "NEXT_SCHEDULED_START_TIME_ASC",
    limit: BATCH,
  });
  let marked = 0;
  for (const candidate of candidates) {
    if (options.signal?.aborted) break;
    try {
      const result = await db.transaction(async (tx) => {
        const run = await tx.flowRuns.getForUpdate(candidate.id);
        const due = run?.next_scheduled_start_time;
        if (!run || run.state_type !== "SCHEDULED" || run.state_name !== "Scheduled" || !due || due > threshold) return null;
        return setFlowRunState(tx, run.id, { type: "SCHEDULED", name: "Late", state_details: { scheduled_time: due } }, { policy: MarkLateRunsPolicy, leases: context.leases });
      });
      if (!result) continue;
      publishEvents(context.events, result.events);
      if (result.status === "ACCEPT") marked++;
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
