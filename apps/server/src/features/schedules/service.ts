/**
 * The scheduler (Prefect's services/scheduler.py with models/deployments.py `schedule_runs`,
 * `_generate_scheduled_flow_runs` and `_insert_scheduled_flow_runs`): keeps every active schedule of
 * every deployment that is not paused filled ahead with auto-scheduled runs.
 *
 *  - `Scheduler`, every PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: the deployments with an active
 *    schedule short of runs (fewer than MIN_RUNS future ones, or the last due within
 *    MIN_SCHEDULED_TIME), DEPLOYMENT_BATCH_SIZE at a time, until all were visited.
 *  - `RecentDeploymentsScheduler`, every RECENT_DEPLOYMENTS_LOOP_SECONDS: the deployments updated
 *    since its last look, so that new and changed deployments get runs within seconds.
 *
 * For each active schedule the runs are its dates from now until MAX_SCHEDULED_TIME ahead, at most
 * MAX_RUNS of them (and at most the schedule's `max_scheduled_runs`), stopping once MIN_RUNS dates
 * reach at least MIN_SCHEDULED_TIME ahead. Each run is SCHEDULED ("Scheduled", "Flow run scheduled")
 * for its date, `auto_scheduled`, tagged `auto-scheduled` plus the deployment's tags, with the
 * deployment's parameters overridden by the schedule's, the deployment's queue, version and
 * infrastructure document, its labels plus `prefect.flow.id` / `prefect.deployment.id`, created by
 * the schedule (`{id, type: "SCHEDULE", display_value: slug or schedule class}`), and Prefect's
 * idempotency key `scheduled {deployment_id} {schedule_id} {date}`.
 *
 * Runs are inserted INSERT_BATCH_SIZE at a time with `db.scheduledRuns.insert`, which skips runs
 * whose key is taken: rerunning a loop, restarting, or running schedulers on several machines
 * against one database never duplicates a run. A batch of deployments is read and its runs inserted
 * in one transaction that holds the deployments, so a schedule changed or a deployment paused while
 * a pass runs leaves no runs of the old schedule behind. A schedule that cannot produce dates is logged and
 * skipped; a database error ends the loop iteration (logged), and the next one starts over.
 */
import {
  addSeconds,
  type Deployment,
  type DeploymentSchedule,
  now,
  type Repositories,
  type ScheduledRunCreate,
  type Timestamp,
  toMicros,
  toTimestamp,
} from "@prefect/db";
import { newState, normalizeFlowRunPolicy, uuid7 } from "@prefect/orchestration";
import type { AppContext, Logger } from "../../context.js";
import type { SchedulerSettings } from "../../settings.js";
import { scheduleDates, scheduleTypeName } from "./dates.js";

/** Prefect's defaults of the scheduler settings, for callers without settings. */
export const SCHEDULER_DEFAULTS = {
  maxRuns: 100,
  minRuns: 3,
  maxScheduledTimeSeconds: 100 * 86_400,
  minScheduledTimeSeconds: 3600,
  insertBatchSize: 500,
} as const satisfies Partial<SchedulerSettings>;

type SchedulingDefaults = Pick<SchedulerSettings, keyof typeof SCHEDULER_DEFAULTS>;

export interface ScheduleRunsOptions {
  /** The first date to schedule (default: now). */
  readonly startTime?: Timestamp | string | undefined;
  /** No run after this (default: `startTime` + the max scheduled time). */
  readonly endTime?: Timestamp | string | undefined;
  /** Schedule until at least this many seconds after `startTime` (default: the min scheduled time). */
  readonly minTime?: number | undefined;
  /** At least this many runs per schedule (default: the min runs). */
  readonly minRuns?: number | undefined;
  /** At most this many runs per schedule (default: the max runs). */
  readonly maxRuns?: number | undefined;
  /** Whether the runs are auto-scheduled (tagged `auto-scheduled`); true by default, as Prefect's API. */
  readonly autoScheduled?: boolean | undefined;
  /** Where the defaults come from (Prefect's defaults when not given). */
  readonly settings?: SchedulingDefaults | undefined;
  readonly log?: Logger | undefined;
}

interface Window {
  readonly start: Timestamp;
  readonly end: Timestamp;
  readonly minTimeSeconds: number;
  readonly minRuns: number;
  readonly maxRuns: number;
  readonly autoScheduled: boolean;
}

/**
 * The dates of one schedule for a window, as Prefect picks them: up to `maxRuns` dates (and the
 * schedule's `max_scheduled_runs`) from the start until the end, stopping once there are `minRuns`
 * and the last is at least `minTimeSeconds` after the start.
 */
function datesFor(schedule: DeploymentSchedule, window: Window) {
  const cap = schedule.max_scheduled_runs ?? Number.POSITIVE_INFINITY;
  const maxRuns = Math.min(window.maxRuns, cap);
  const minRuns = Math.min(window.minRuns, cap);
  if (maxRuns <= 0) return [];
  const enough = toMicros(window.start) + window.minTimeSeconds * 1_000_000;
  const picked = [];
  for (const date of scheduleDates(schedule.schedule, { n: maxRuns, start: window.start, end: window.end })) {
    picked.push(date);
    if (picked.length >= minRuns && date.micros >= enough) break;
  }
  return picked;
}

/** Prefect's `_generate_scheduled_flow_runs` for one deployment (its active schedules). */
export function scheduledRunsFor(deployment: Deployment, window: Window): ScheduledRunCreate[] {
  const runs: ScheduledRunCreate[] = [];
  const labels = { ...(deployment.labels ?? {}), "prefect.flow.id": deployment.flow_id, "prefect.deployment.id": deployment.id };
  const tags = window.autoScheduled ? ["auto-scheduled", ...deployment.tags] : [...deployment.tags];
  for (const schedule of deployment.schedules.filter((s) => s.active)) {
    const parameters = { ...deployment.parameters, ...schedule.parameters };
    const createdBy = { id: schedule.id, type: "SCHEDULE", display_value: schedule.slug || scheduleTypeName(schedule.schedule) };
    for (const date of datesFor(schedule, window)) {
      const state = newState("SCHEDULED", { message: "Flow run scheduled", details: { scheduled_time: date.timestamp } });
      runs.push({
        id: uuid7(),
        flow_id: deployment.flow_id,
        deployment_id: deployment.id,
        deployment_version: deployment.version,
        work_queue_name: deployment.work_queue_name,
        work_queue_id: deployment.work_queue_id,
        infrastructure_document_id: deployment.infrastructure_document_id,
        parameters,
        empirical_policy: normalizeFlowRunPolicy(undefined),
        idempotency_key: `scheduled ${deployment.id} ${schedule.id} ${date.text}`,
        tags,
        labels,
        auto_scheduled: window.autoScheduled,
        created_by: createdBy,
        scheduled_time: date.timestamp,
        state: { id: state.id, type: "SCHEDULED", name: state.name, timestamp: state.timestamp, message: state.message, state_details: { ...state.state_details } },
      });
    }
  }
  return runs;
}

interface BatchOptions {
  readonly insertBatchSize: number;
  /** Skip paused deployments (the loops do; Prefect's route schedules paused ones too). */
  readonly skipPaused: boolean;
  readonly log?: Logger | undefined;
}

/**
 * Generates and inserts the runs of the given deployments in one transaction, the deployments held
 * (`lockDeployments`) from before they are read until their runs are in: a change to one of them or
 * its schedules, which deletes its future auto-scheduled runs, is either seen here or waits and then
 * deletes these runs too, so no run of an old schedule or of a paused deployment stays behind. A
 * deployment whose schedules fail is logged and skipped. Returns how many runs were inserted.
 */
async function scheduleBatch(db: Repositories, deploymentIds: readonly string[], window: (at: Timestamp) => Window, options: BatchOptions): Promise<number> {
  if (deploymentIds.length === 0) return 0;
  return db.transaction(async (tx) => {
    await tx.scheduledRuns.lockDeployments(deploymentIds);
    const deployments = await tx.deployments.read({ deployments: { id: { any_: [...deploymentIds] } } });
    const runs: ScheduledRunCreate[] = [];
    for (const deployment of deployments) {
      if (options.skipPaused && deployment.paused) continue;
      try {
        runs.push(...scheduledRunsFor(deployment, window(now())));
      } catch (error) {
        options.log?.error({ err: error, service: "Scheduler", deployment_id: deployment.id }, `Error scheduling deployment ${deployment.id}.`);
      }
    }
    let inserted = 0;
    for (let i = 0; i < runs.length; i += options.insertBatchSize) inserted += (await tx.scheduledRuns.insert(runs.slice(i, i + options.insertBatchSize))).length;
    return inserted;
  });
}

/**
 * Schedules runs of the given deployments now (Prefect's `schedule_runs`, used by
 * `POST /deployments/{id}/schedule`): each active schedule's dates from `startTime` on, as the
 * options and the settings say (see ScheduleRunsOptions). Unknown deployments are skipped; paused
 * ones are scheduled too, as Prefect does. Returns how many runs were inserted (runs that exist
 * already are not counted).
 */
export async function scheduleRuns(db: Repositories, deploymentIds: readonly string[], options: ScheduleRunsOptions = {}): Promise<number> {
  const defaults = options.settings ?? SCHEDULER_DEFAULTS;
  const start = options.startTime === undefined ? null : toTimestamp(options.startTime);
  const window = (at: Timestamp): Window => {
    const from = start ?? at;
    return {
      start: from,
      end: options.endTime === undefined ? addSeconds(from, defaults.maxScheduledTimeSeconds) : toTimestamp(options.endTime),
      minTimeSeconds: options.minTime ?? defaults.minScheduledTimeSeconds,
      minRuns: options.minRuns ?? defaults.minRuns,
      maxRuns: options.maxRuns ?? defaults.maxRuns,
      autoScheduled: options.autoScheduled ?? true,
    };
  };
  return scheduleBatch(db, deploymentIds, window, { insertBatchSize: defaults.insertBatchSize, skipPaused: false, log: options.log });
}

/**
 * One pass of a scheduler loop: the deployments `select` picks, a batch at a time (by id), their runs
 * generated and inserted. Stops early when `signal` is aborted. Returns how many runs were inserted.
 */
export async function scheduleDeployments(
  db: Repositories,
  settings: SchedulerSettings,
  select: (afterId: string | null) => Promise<string[]>,
  options: { readonly signal?: AbortSignal | undefined; readonly log?: Logger | undefined } = {},
): Promise<number> {
  const window = (at: Timestamp): Window => ({
    start: at,
    end: addSeconds(at, settings.maxScheduledTimeSeconds),
    minTimeSeconds: settings.minScheduledTimeSeconds,
    minRuns: settings.minRuns,
    maxRuns: settings.maxRuns,
    autoScheduled: true,
  });
  let total = 0;
  let afterId: string | null = null;
  while (!options.signal?.aborted) {
    const ids = await select(afterId);
    total += await scheduleBatch(db, ids, window, { insertBatchSize: settings.insertBatchSize, skipPaused: true, log: options.log });
    if (ids.length < settings.deploymentBatchSize) break;
    afterId = ids[ids.length - 1] ?? null;
  }
  return total;
}

export type SchedulerContext = Pick<AppContext, "db" | "settings">;
export type PassOptions = { readonly signal?: AbortSignal | undefined; readonly log?: Logger | undefined };

/**
 * One pass of the `Scheduler` loop: the deployments with an active schedule short of runs (Prefect's
 * `schedule_deployments`). Returns how many runs were inserted.
 */
export function scheduleDeploymentsShortOfRuns({ db, settings }: SchedulerContext, options: PassOptions = {}): Promise<number> {
  const s = settings.services.scheduler;
  return scheduleDeployments(
    db,
    s,
    (afterId) => db.scheduledRuns.deploymentsToSchedule({ limit: s.deploymentBatchSize, minRuns: s.minRuns, minScheduledTimeSeconds: s.minScheduledTimeSeconds, afterId }),
    options,
  );
}

/**
 * One pass of the `RecentDeploymentsScheduler` loop: the deployments with an active schedule updated
 * since a little more than one loop ago (Prefect's `schedule_recent_deployments`; the window is a
 * second longer than the loop, to catch deployments changed while the last pass ran). Returns how
 * many runs were inserted.
 */
export function scheduleRecentDeployments({ db, settings }: SchedulerContext, options: PassOptions = {}): Promise<number> {
  const s = settings.services.scheduler;
  return scheduleDeployments(
    db,
    s,
    (afterId) => db.scheduledRuns.recentlyUpdatedDeployments({ limit: s.deploymentBatchSize, withinSeconds: s.recentDeploymentsLoopSeconds + 1, afterId }),
    options,
  );
}
