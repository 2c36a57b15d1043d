/**
 * Domain rows as Prefect's API shows them: defaults filled in the way Prefect's response models fill
 * them, and the computed fields (estimated run time, lateness) as of now.
 */
import { type FlowRun, type Log, now, secondsBetween, type State, type TaskRun, TERMINAL_STATE_TYPES } from "@prefect/db";
import { emptyStateDetails } from "@prefect/orchestration";

/** Prefect's StateDetails defaults, under what a state stores. */
const STATE_DETAILS_DEFAULTS = emptyStateDetails();

export function stateResponse(state: State) {
  return {
    id: state.id,
    type: state.type,
    name: state.name,
    timestamp: state.timestamp,
    message: state.message,
    data: state.data ?? null,
    state_details: { ...STATE_DETAILS_DEFAULTS, ...state.state_details },
  };
}

const FLOW_RUN_POLICY_DEFAULTS = {
  max_retries: 0,
  retry_delay_seconds: 0,
  retries: null,
  retry_delay: null,
  pause_keys: [],
  resuming: false,
  retry_type: null,
};

const TASK_RUN_POLICY_DEFAULTS = {
  max_retries: 0,
  retry_delay_seconds: 0,
  retries: null,
  retry_delay: null,
  retry_jitter_factor: null,
};

interface RunTiming {
  state_type: State["type"] | null;
  state_timestamp: string | null;
  total_run_time: number;
  start_time: string | null;
  expected_start_time: string | null;
}

/** Run time so far: the stored total plus the current RUNNING stretch. */
function estimatedRunTime(run: RunTiming, at: string): number {
  if (run.state_type === "RUNNING" && run.state_timestamp) return run.total_run_time + Math.max(0, secondsBetween(at, run.state_timestamp));
  return run.total_run_time;
}

/** How late the run started (or, not started yet and overdue, is). */
function estimatedStartTimeDelta(run: RunTiming, at: string): number {
  if (run.start_time && run.expected_start_time && run.start_time > run.expected_start_time) return secondsBetween(run.start_time, run.expected_start_time);
  if (!run.start_time && run.expected_start_time && run.expected_start_time < at && !(run.state_type && TERMINAL_STATE_TYPES.includes(run.state_type))) {
    return secondsBetween(at, run.expected_start_time);
  }
  return 0;
}

export function flowRunResponse(run: FlowRun, at: string = now()) {
  return {
    id: run.id,
    created: run.created,
    updated: run.updated,
    name: run.name,
    flow_id: run.flow_id,
    state_id: run.state_id,
    deployment_id: run.deployment_id,
    deployment_version: run.deployment_version,
    work_queue_id: run.work_queue_id,
    work_queue_name: run.work_queue_name,
    flow_version: run.flow_version,
    parameters: run.parameters,
    idempotency_key: run.idempotency_key,
    context: run.context,
    empirical_policy: { ...FLOW_RUN_POLICY_DEFAULTS, ...run.empirical_policy },
    tags: run.tags,
    labels: run.labels ?? {},
    parent_task_run_id: run.parent_task_run_id,
    state_type: run.state_type,
    state_name: run.state_name,
    run_count: run.run_count,
    expected_start_time: run.expected_start_time,
    next_scheduled_start_time: run.next_scheduled_start_time,
    start_time: run.start_time,
    end_time: run.end_time,
    total_run_time: run.total_run_time,
    estimated_run_time: estimatedRunTime(run, at),
    estimated_start_time_delta: estimatedStartTimeDelta(run, at),
    auto_scheduled: run.auto_scheduled,
    infrastructure_document_id: run.infrastructure_document_id,
    infrastructure_pid: run.infrastructure_pid,
    created_by: run.created_by,
    work_pool_id: run.work_pool_id,
    work_pool_name: run.work_pool_name,
    state: run.state ? stateResponse(run.state) : null,
    job_variables: run.job_variables ?? {},
  };
}

export function taskRunResponse(run: TaskRun, at: string = now()) {
  return {
    id: run.id,
    created: run.created,
    updated: run.updated,
    name: run.name,
    flow_run_id: run.flow_run_id,
    task_key: run.task_key,
    dynamic_key: run.dynamic_key,
    cache_key: run.cache_key,
    cache_expiration: run.cache_expiration,
    task_version: run.task_version,
    empirical_policy: { ...TASK_RUN_POLICY_DEFAULTS, ...run.empirical_policy },
    tags: run.tags,
    labels: run.labels ?? {},
    state_id: run.state_id,
    task_inputs: run.task_inputs,
    state_type: run.state_type,
    state_name: run.state_name,
    run_count: run.run_count,
    flow_run_run_count: run.flow_run_run_count,
    expected_start_time: run.expected_start_time,
    next_scheduled_start_time: run.next_scheduled_start_time,
    start_time: run.start_time,
    end_time: run.end_time,
    total_run_time: run.total_run_time,
    estimated_run_time: estimatedRunTime(run, at),
    estimated_start_time_delta: estimatedStartTimeDelta(run, at),
    state: run.state ? stateResponse(run.state) : null,
  };
}

export function logResponse(log: Log) {
  return log;
}
