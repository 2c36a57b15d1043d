/**
 * Flow runs created from a deployment (Prefect's `create_flow_run_from_deployment`), one at a time or
 * in bulk, through orchestration; their events are published once committed.
 */
import type { Deployment, FlowRun, Labels, Repositories } from "@prefect/db";
import { createFlowRun, normalizeFlowRunPolicy, type PrefectEvent, type StateInput } from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import { asIntegrityConflict, badRequest, conflict, PrefectError } from "../../prefect/errors.js";
import { HydrationError, hydrate, workspaceVariables } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { schemaCheck } from "../../prefect/json-schema.js";
import { checkParameterSize, runName } from "../../prefect/runs.js";
import { publishEvents } from "../events/bus.js";
import { poolQueueId } from "../work-queues/service.js";
import { checkDeploymentJobVariables, readDeployment } from "./service.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** Prefect's BULK_CREATE_LIMIT. */
export const BULK_CREATE_LIMIT = 100;

/** Prefect's DeploymentFlowRunCreate. */
export interface DeploymentFlowRunInput {
  readonly name?: string | null | undefined;
  readonly parameters?: Record<string, unknown> | undefined;
  readonly enforce_parameter_schema?: boolean | null | undefined;
  readonly context?: Record<string, unknown> | undefined;
  readonly empirical_policy?: Record<string, unknown> | null | undefined;
  readonly tags?: string[] | undefined;
  readonly labels?: Labels | null | undefined;
  readonly idempotency_key?: string | null | undefined;
  readonly parent_task_run_id?: string | null | undefined;
  readonly infrastructure_document_id?: string | null | undefined;
  readonly work_queue_name?: string | null | undefined;
  readonly job_variables?: Record<string, unknown> | null | undefined;
  readonly state?: StateInput | null | undefined;
}

/** The pool of a deployment's queue, if it has one. */
async function poolOf(tx: Repositories, deployment: Deployment) {
  if (!deployment.work_queue_id) return null;
  const queue = await tx.workQueues.get(deployment.work_queue_id);
  return queue ? tx.workPools.get(queue.work_pool_id) : null;
}

/**
 * Parameters over the deployment's (hydrated, and checked against its parameter schema when
 * enforced), job variables checked against the pool's template, the deployment's queue or another
 * queue of its pool, tags added to the deployment's, the deployment's labels and infrastructure
 * document, SCHEDULED now unless a state is given.
 */
async function runFromDeployment(context: Context, tx: Repositories, deployment: Deployment, body: DeploymentFlowRunInput, createdBy: FlowRun["created_by"]) {
  const given = { ...deployment.parameters, ...(body.parameters ?? {}) };
  let parameters: Record<string, unknown>;
  try {
    parameters = await hydrate(given, workspaceVariables(tx));
  } catch (error) {
    if (error instanceof HydrationError) throw badRequest(`Error hydrating flow run parameters: ${error.message}`);
    throw error;
  }
  const enforce = body.enforce_parameter_schema ?? deployment.enforce_parameter_schema;
  if (enforce) {
    if (!isRecord(deployment.parameter_openapi_schema)) {
      throw conflict(
        "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.",
      );
    }
    const problem = schemaCheck(parameters, deployment.parameter_openapi_schema, { preprocess: true });
    if (problem) throw conflict(`Error creating flow run: ${problem.message}`);
  }

  const pool = await poolOf(tx, deployment);
  if (pool) await checkDeploymentJobVariables(context, tx, pool.base_job_template, [deployment.job_variables, body.job_variables], "Error creating flow run", false);

  let workQueueName = deployment.work_queue_name;
  let workQueueId = deployment.work_queue_id;
  if (body.work_queue_name) {
    if (!pool) {
      throw badRequest(
        `Cannot create flow run in work queue ${body.work_queue_name} because deployment ${deployment.id} is not associated with a work pool. Please remove work_pool_name and try again.`,
      );
    }
    workQueueId = await poolQueueId(tx, pool.name, body.work_queue_name);
    workQueueName = body.work_queue_name;
  }

  const labels: Labels = { ...(deployment.labels ?? {}), "prefect.flow.id": deployment.flow_id, "prefect.deployment.id": deployment.id, ...(body.labels ?? {}) };
  return createFlowRun(
    tx,
    {
      flow_id: deployment.flow_id,
      deployment_id: deployment.id,
      deployment_version: deployment.version,
      name: runName(body.name),
      parameters,
      context: body.context ?? {},
      empirical_policy: normalizeFlowRunPolicy(body.empirical_policy),
      tags: [...new Set([...deployment.tags, ...(body.tags ?? [])])],
      labels,
      idempotency_key: body.idempotency_key ?? null,
      parent_task_run_id: body.parent_task_run_id ?? null,
      infrastructure_document_id: body.infrastructure_document_id ?? deployment.infrastructure_document_id,
      work_queue_name: workQueueName,
      work_queue_id: workQueueId,
      job_variables: body.job_variables ?? {},
      created_by: createdBy,
      state: body.state ?? { type: "SCHEDULED" },
    },
  );
}

export async function createFlowRunFromDeployment(context: Context, id: string, body: DeploymentFlowRunInput, createdBy: FlowRun["created_by"]) {
  checkParameterSize(body.parameters);
  const outcome = await context.db
    .transaction(async (tx) => runFromDeployment(context, tx, await readDeployment(tx, id), body, createdBy))
    .catch(asIntegrityConflict);
  publishEvents(context.events, outcome.orchestration?.events ?? []);
  return outcome;
}

/** An error of one run of a bulk create, as Prefect reports it (the HTTP detail, or the message). */
function failureMessage(error: unknown): string {
  if (error instanceof PrefectError) return typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
  return error instanceof Error ? error.message : String(error);
}

/** Creates each run in its own savepoint: one that fails leaves nothing behind and the others go on. */
export async function createFlowRunsFromDeployment(context: Context, id: string, bodies: readonly DeploymentFlowRunInput[], createdBy: FlowRun["created_by"]) {
  if (bodies.length > BULK_CREATE_LIMIT) throw badRequest(`Cannot create more than ${BULK_CREATE_LIMIT} flow runs at once.`);
  const { results, events } = await context.db.transaction(async (tx) => {
    const deployment = await readDeployment(tx, id);
    const results: { flow_run_id: string | null; status: "CREATED" | "FAILED"; error: string | null }[] = [];
    const events: PrefectEvent[] = [];
    for (const run of bodies) {
      try {
        checkParameterSize(run.parameters);
        const outcome = await tx.transaction((inner) => runFromDeployment(context, inner, deployment, run, createdBy));
        events.push(...(outcome.orchestration?.events ?? []));
        results.push({ flow_run_id: outcome.run.id, status: "CREATED", error: null });
      } catch (error) {
        results.push({ flow_run_id: null, status: "FAILED", error: failureMessage(error) });
      }
    }
    return { results, events };
  });
  publishEvents(context.events, events);
  return results;
}
