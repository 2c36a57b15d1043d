/** Deployments and their schedules as Prefect's API shows them. */
import type { Deployment, DeploymentSchedule } from "@prefect/db";
import { globalLimitResponse } from "../concurrency-limits/responses.js";

export function scheduleResponse(schedule: DeploymentSchedule) {
  return {
    id: schedule.id,
    created: schedule.created,
    updated: schedule.updated,
    deployment_id: schedule.deployment_id,
    schedule: schedule.schedule,
    active: schedule.active,
    max_scheduled_runs: schedule.max_scheduled_runs,
    parameters: schedule.parameters,
    slug: schedule.slug,
  };
}

/** Prefect's DeploymentResponse (its deprecated `concurrency_limit` is always null). */
export function deploymentResponse(d: Deployment) {
  const limit = d.global_concurrency_limit;
  return {
    id: d.id,
    created: d.created,
    updated: d.updated,
    name: d.name,
    version: d.version,
    description: d.description,
    flow_id: d.flow_id,
    paused: d.paused,
    schedules: d.schedules.map(scheduleResponse),
    concurrency_limit: null,
    global_concurrency_limit: limit ? globalLimitResponse(limit) : null,
    concurrency_options: d.concurrency_options ? { grace_period_seconds: null, ...d.concurrency_options } : null,
    job_variables: d.job_variables ?? {},
    parameters: d.parameters ?? {},
    tags: d.tags,
    labels: d.labels ?? {},
    work_queue_name: d.work_queue_name,
    work_queue_id: d.work_queue_id,
    last_polled: d.last_polled,
    parameter_openapi_schema: d.parameter_openapi_schema,
    path: d.path,
    pull_steps: d.pull_steps,
    entrypoint: d.entrypoint,
    storage_document_id: d.storage_document_id,
    infrastructure_document_id: d.infrastructure_document_id,
    created_by: d.created_by,
    updated_by: d.updated_by,
    work_pool_name: d.work_pool_name,
    status: d.status,
    enforce_parameter_schema: d.enforce_parameter_schema,
  };
}
