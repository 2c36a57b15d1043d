/**
 * What flow runs and task runs show alike in Prefect's API: states with every StateDetails field,
 * the computed run timings (estimated run time, lateness) as of now, and orchestration results.
 */
import { secondsBetween, type State, TERMINAL_STATE_TYPES, type Timestamp } from "@prefect/db";
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

export interface RunTiming {
  next_scheduled_start_time: string | null;
  end_time: string | null;
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

/** A run's times as Prefect shows them, the computed ones as of `at`. */
export function runTimings(run: RunTiming, at: string) {
  return {
    expected_start_time: run.expected_start_time,
    next_scheduled_start_time: run.next_scheduled_start_time,
    start_time: run.start_time,
    end_time: run.end_time,
    total_run_time: run.total_run_time,
    estimated_run_time: estimatedRunTime(run, at),
    estimated_start_time_delta: estimatedStartTimeDelta(run, at),
  };
}

/** The state an orchestration call returns, as its response body shows it. */
interface OrchestratedState {
  id: string;
  type: State["type"];
  name: string;
  timestamp: Timestamp;
  message: string | null;
  data: unknown;
  state_details: object;
}

/** Prefect's OrchestrationResult body: the resulting state, the status and the details. */
export function orchestrationResponse<Status extends string, Details extends { type: string }>(result: {
  readonly state: OrchestratedState | null;
  readonly status: Status;
  readonly details: Details;
}) {
  const state = result.state
    ? stateResponse({ ...result.state, state_details: { ...result.state.state_details } as Record<string, unknown>, result_artifact_id: null })
    : null;
  return { state, status: result.status, details: result.details };
}
