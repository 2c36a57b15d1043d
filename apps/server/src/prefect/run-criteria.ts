/**
 * A read body's filters turned into the repositories' run criteria, and Prefect's run histories
 * (what the flow-run, task-run and flow reads share).
 */
import { InvalidError, type Repositories, type RunCriteria, type Timestamp } from "@prefect/db";
import type { z } from "zod";
import type * as api from "../generated/prefect-api.js";

type WorkPoolFilter = z.output<typeof api.WorkPoolFilter>;
type WorkQueueFilter = z.output<typeof api.WorkQueueFilter>;
type DeploymentFilter = z.output<typeof api.DeploymentFilter>;

/** A read body's filters on the objects around runs (Prefect's `_apply_flow_run_filters`). */
export interface RelatedFilters {
  readonly flows?: z.output<typeof api.FlowFilter> | null | undefined;
  readonly flow_runs?: z.output<typeof api.FlowRunFilter> | null | undefined;
  readonly task_runs?: z.output<typeof api.TaskRunFilter> | null | undefined;
  readonly deployments?: DeploymentFilter | null | undefined;
  readonly work_pools?: WorkPoolFilter | null | undefined;
  /** `work_pool_queues` on reads, `work_queues` on the history. */
  readonly work_queues?: WorkQueueFilter | null | undefined;
}

/**
 * Run criteria for the repositories from a read body. Work pool and work queue filters become the
 * ids of the queues they select (a run matches when its queue is one of them), deployment filters
 * the ids of the deployments they select (a run matches when its deployment is one of them).
 */
export async function runCriteriaOf(db: Repositories, body: RelatedFilters): Promise<RunCriteria> {
  return {
    flows: body.flows ?? null,
    flow_runs: body.flow_runs ?? null,
    task_runs: body.task_runs ?? null,
    ...(body.work_pools || body.work_queues ? { work_queue_ids: await workQueueIds(db, body.work_pools ?? null, body.work_queues ?? null) } : {}),
    ...(body.deployments ? { deployment_ids: await deploymentIds(db, body.deployments) } : {}),
  };
}

async function workQueueIds(db: Repositories, pools: WorkPoolFilter | null, queues: WorkQueueFilter | null): Promise<string[]> {
  const matching = await db.workPools.read(pools ? { work_pools: pools } : {});
  const ids: string[] = [];
  for (const pool of matching) {
    for (const queue of await db.workQueues.read(pool.id, queues ? { work_queues: queues } : {})) ids.push(queue.id);
  }
  return ids;
}

async function deploymentIds(db: Repositories, filter: DeploymentFilter): Promise<string[]> {
  return (await db.deployments.read({ deployments: filter })).map((d) => d.id);
}

/** Prefect's run history bodies: the window, the interval, and the filters. */
export interface HistoryBody extends RelatedFilters {
  readonly history_start: Timestamp;
  readonly history_end: Timestamp;
  readonly history_interval_seconds: number;
}

/** Prefect's `/history` answer: every interval, with its runs counted per state. */
export async function runHistory(db: Repositories, kind: "flowRuns" | "taskRuns", body: HistoryBody) {
  if (!(body.history_interval_seconds >= 1)) {
    const message = "History interval must not be less than 1 second.";
    throw new InvalidError(message, [{ path: ["history_interval_seconds"], message }]);
  }
  const criteria = await runCriteriaOf(db, body);
  const intervals = await db[kind].history(criteria, { start: body.history_start, end: body.history_end, intervalSeconds: body.history_interval_seconds });
  return intervals.map((interval) => ({
    interval_start: interval.interval_start,
    interval_end: interval.interval_end,
    // Runs without a state yet have no place in Prefect's answer (its state type is required).
    states: interval.states.filter((s) => s.state_type !== null && s.state_name !== null),
  }));
}

interface CriteriaBody {
  readonly flows?: unknown;
  readonly flow_runs?: unknown;
  readonly task_runs?: unknown;
}

/** The run criteria of a read body as given, for the repositories (which validate them again). */
export function runCriteria(body: CriteriaBody): RunCriteria {
  return {
    flows: (body.flows ?? null) as RunCriteria["flows"],
    flow_runs: (body.flow_runs ?? null) as RunCriteria["flow_runs"],
    task_runs: (body.task_runs ?? null) as RunCriteria["task_runs"],
  };
}
