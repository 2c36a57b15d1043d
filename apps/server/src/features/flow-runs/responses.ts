/** A flow run as Prefect's API shows it: defaults filled in, and its timings as of now. */
import { type FlowRun, now } from "@prefect/db";
import { flowRunPolicyWithDefaults } from "@prefect/orchestration";
import { runTimings, stateResponse } from "../../prefect/run-responses.js";

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
    empirical_policy: flowRunPolicyWithDefaults(run.empirical_policy),
    tags: run.tags,
    labels: run.labels ?? {},
    parent_task_run_id: run.parent_task_run_id,
    state_type: run.state_type,
    state_name: run.state_name,
    run_count: run.run_count,
    ...runTimings(run, at),
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
