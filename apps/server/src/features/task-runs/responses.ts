/** A task run as Prefect's API shows it: defaults filled in, and its timings as of now. */
import { now, type TaskRun } from "@prefect/db";
import { taskRunPolicyWithDefaults } from "@prefect/orchestration";
import { runTimings, stateResponse } from "../../prefect/run-responses.js";

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
    empirical_policy: taskRunPolicyWithDefaults(run.empirical_policy),
    tags: run.tags,
    labels: run.labels ?? {},
    state_id: run.state_id,
    task_inputs: run.task_inputs,
    state_type: run.state_type,
    state_name: run.state_name,
    run_count: run.run_count,
    flow_run_run_count: run.flow_run_run_count,
    ...runTimings(run, at),
    state: run.state ? stateResponse(run.state) : null,
  };
}
