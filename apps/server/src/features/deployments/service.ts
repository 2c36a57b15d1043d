/**
 * Deployments: created (an upsert on flow and name), read, updated, deleted one at a time or in bulk,
 * their schedules, paused and resumed, their runs scheduled now, and the scheduled runs of
 * deployments for runners (which marks them READY). Changes publish Prefect's `prefect.deployment.*`
 * events once committed. Runs created from a deployment live in flow-runs.ts.
 */
import {
  AlreadyExistsError,
  type Deployment,
  type DeploymentCriteria,
  type DeploymentReadOptions,
  type DeploymentSchedule,
  type InvalidError,
  NotFoundError,
  type Repositories,
} from "@prefect/db";
import type { PrefectEvent } from "@prefect/orchestration";
import type { AppContext, Logger } from "../../context.js";
import { badRequest, conflict, integrityConflict, isMissingReference, notFound, unprocessable } from "../../prefect/errors.js";
import { HydrationError, hydrate, workspaceVariables } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { schemaCheck } from "../../prefect/json-schema.js";
import { jobVariablesProblem } from "../../prefect/job-variables.js";
import { pythonRepr } from "../../prefect/python.js";
import { checkParameterSize } from "../../prefect/runs.js";
import { blockDataLookup } from "../blocks/service.js";
import { publishEvents } from "../events/bus.js";
import { type ScheduleRunsOptions, scheduleRuns } from "../schedules/service.js";
import { DEFAULT_AGENT_POOL_NAME, legacyQueueId, poolDefaultQueueId, poolQueueId } from "../work-queues/service.js";
import { deploymentEventNow, updatedEvent } from "./events.js";
import type { DeploymentCreateInput, DeploymentUpdateInput } from "./schemas.js";
import { applyScheduleChanges, hasDefinition, planSchedules, type ScheduleChange, scheduleCreateOf, scheduleUpdateValues } from "./schedule-changes.js";

const NOT_FOUND = "Deployment not found";

type Context = Pick<AppContext, "db" | "events" | "settings">;
type Json = Record<string, unknown>;

/** The deployment, or Prefect's 404 (worded `message`). */
export async function readDeployment(db: Repositories, id: string, message = NOT_FOUND): Promise<Deployment> {
  const deployment = await db.deployments.get(id);
  if (!deployment) throw notFound(message);
  return deployment;
}

export async function readDeploymentByName(db: Repositories, flowName: string, deploymentName: string): Promise<Deployment> {
  const deployment = await db.deployments.getByName(flowName, deploymentName);
  if (!deployment) throw notFound(NOT_FOUND);
  return deployment;
}

export const readDeployments = (db: Repositories, options: DeploymentReadOptions) => db.deployments.read(options);
export const countDeployments = (db: Repositories, criteria: DeploymentCriteria) => db.deployments.count(criteria);

/** A page of the deployments, and how many there are in all. */
export async function paginateDeployments(db: Repositories, criteria: DeploymentCriteria, page: Pick<DeploymentReadOptions, "sort" | "limit" | "offset">) {
  const [deployments, count] = await Promise.all([db.deployments.read({ ...criteria, ...page }), db.deployments.count(criteria)]);
  return { deployments, count };
}

// ---- Creating and updating ----------------------------------------------------------------------

/** Prefect's ConcurrencyOptions: the strategy and grace period (other keys dropped). */
function concurrencyOptionsOf<S extends string>(options: { collision_strategy: S; grace_period_seconds?: number | null | undefined }) {
  return { collision_strategy: options.collision_strategy, grace_period_seconds: options.grace_period_seconds ?? null };
}

/** The flow of a new deployment must exist: Prefect's foreign key answers 409. */
function missingFlow(error: unknown): never {
  if (isMissingReference(error) && (error as InvalidError).issues[0]?.path[0] === "flow_id") throw integrityConflict();
  throw error;
}

/** Prefect's check that a block document a new deployment names exists (409 with its advice). */
async function checkBlockDocument(tx: Repositories, id: string | null | undefined, what: string): Promise<void> {
  if (!id || (await tx.blocks.getDocument(id))) return;
  throw conflict(
    `Error creating deployment. Could not find ${what} with id: ${id}. This usually occurs when applying a deployment specification that was built against a different Prefect database / workspace.`,
  );
}

/**
 * Prefect's DeploymentCreate validators when `enforce_parameter_schema` is given as true: the
 * parameters must fit the parameter schema (`required` ignored, no repairs) and the schema must be
 * valid JSON Schema. 422 as pydantic reports a model validator's error.
 */
function checkCreateParameters(body: { enforce_parameter_schema?: boolean | undefined; parameters?: Json | undefined; parameter_openapi_schema?: Json | null | undefined }): void {
  if (!body.enforce_parameter_schema) return;
  const schema = body.parameter_openapi_schema;
  if (schema === null || schema === undefined) return;
  const problem = schemaCheck(body.parameters ?? {}, schema, { preprocess: false, ignoreRequired: true });
  if (problem) throw unprocessable(`Value error, ${problem.message}`);
}

/**
 * The job variables of a deployment against its pool's template (`required` left unchecked): 422
 * with Prefect's message.
 */
export async function checkDeploymentJobVariables(context: Context, tx: Repositories, template: unknown, jobVariables: readonly (Json | null | undefined)[], what: string, ignoreRequired: boolean) {
  const problem = await jobVariablesProblem(template, jobVariables, { ignoreRequired, ignoreInvalidDefaults: true, blockData: blockDataLookup(context, tx) });
  if (problem?.kind === "invalid_schema") throw unprocessable(`Invalid schema: ${problem.reason}`);
  if (problem) throw unprocessable(`${what}: ${problem.message}`, ["job_variables"]);
}

/**
 * Prefect's `DeploymentUpdate.check_valid_configuration`: the job variables alone against the
 * pool's variables schema (repaired, `required` ignored); 409 with the problem as Python shows it.
 */
function checkUpdatedJobVariables(template: unknown, jobVariables: Json | null | undefined): void {
  const schema = isRecord(template) ? template.variables : undefined;
  if (!isRecord(schema) || !jobVariables) return;
  const problem = schemaCheck(jobVariables, schema, { preprocess: true, ignoreRequired: true });
  if (problem) throw conflict(`Error creating deployment: <ValidationError: ${pythonRepr(problem.reason)}>`);
}

/** Creates the deployment, or updates the one with its flow and name (`created` tells which). */
export async function createDeployment(context: Context, body: DeploymentCreateInput): Promise<{ deployment: Deployment; created: boolean }> {
  checkParameterSize(body.parameters);
  checkCreateParameters(body);
  const { work_pool_name: poolName, global_concurrency_limit_id: limitId, version_info: _versionInfo, schedules, ...fields } = body;
  const { deployment, created, events } = await context.db.transaction(async (tx) => {
    if (poolName && poolName !== DEFAULT_AGENT_POOL_NAME) {
      const pool = await tx.workPools.getByName(poolName);
      if (!pool) throw notFound(`Work pool "${poolName}" not found.`);
      if (body.job_variables && Object.keys(body.job_variables).length > 0) {
        await checkDeploymentJobVariables(context, tx, pool.base_job_template, [body.job_variables], "Error creating deployment", true);
      }
    }
    if (limitId && !(await tx.concurrencyLimits.get(limitId))) throw notFound("Concurrency limit not found");
    let workQueueId: string | null | undefined;
    if (poolName && body.work_queue_name) workQueueId = await poolQueueId(tx, poolName, body.work_queue_name);
    else if (poolName) workQueueId = await poolDefaultQueueId(tx, poolName);
    else if (body.work_queue_name) workQueueId = await legacyQueueId(tx, body.work_queue_name);
    await checkBlockDocument(tx, body.infrastructure_document_id, "infrastructure block");
    await checkBlockDocument(tx, body.storage_document_id, "storage block");

    const [before] = await tx.deployments.read({ deployments: { name: { any_: [body.name] } }, flows: { id: { any_: [body.flow_id] } }, limit: 1 });
    const result = await tx.deployments
      .create({
        ...fields,
        ...(body.concurrency_options ? { concurrency_options: concurrencyOptionsOf(body.concurrency_options) } : {}),
        ...(limitId !== undefined ? { concurrency_limit_id: limitId } : {}),
        ...(workQueueId !== undefined ? { work_queue_id: workQueueId } : {}),
        schedules: (schedules ?? []).map((s) => scheduleCreateOf(s)),
      })
      .catch(missingFlow);
    const events: PrefectEvent[] = result.created
      ? [await deploymentEventNow(tx, "created", result.row)]
      : before
        ? await updatedEvent(tx, before, result.row)
        : [];
    return { deployment: result.row, created: result.created, events };
  });
  publishEvents(context.events, events);
  return { deployment, created };
}

/**
 * Updates the fields given: parameters hydrated (and checked against the parameter schema when it is
 * enforced), job variables checked against the pool named, the queue named by pool and queue name,
 * schedules applied as Prefect does (see schedule-changes.ts).
 */
export async function updateDeployment(context: Context, id: string, body: DeploymentUpdateInput): Promise<void> {
  checkParameterSize(body.parameters ?? undefined);
  const events = await context.db.transaction(async (tx) => {
    const existing = await readDeployment(tx, id, "Deployment not found.");
    const plan = planSchedules(existing.schedules, "schedules" in body ? body.schedules : undefined);

    if (body.work_pool_name) {
      const pool = await tx.workPools.getByName(body.work_pool_name);
      if (!pool) throw notFound(`Work pool "${body.work_pool_name}" not found.`);
      checkUpdatedJobVariables(pool.base_job_template, body.job_variables);
    }

    let parameters = existing.parameters;
    if (body.parameters !== null && body.parameters !== undefined) {
      try {
        parameters = await hydrate(body.parameters, workspaceVariables(tx));
      } catch (error) {
        if (error instanceof HydrationError) throw badRequest(`Error hydrating deployment parameters: ${error.message}`);
        throw error;
      }
    }
    const enforce = body.enforce_parameter_schema ?? existing.enforce_parameter_schema;
    if (enforce) {
      const schema = body.parameter_openapi_schema && Object.keys(body.parameter_openapi_schema).length > 0 ? body.parameter_openapi_schema : existing.parameter_openapi_schema;
      if (!isRecord(schema)) {
        throw conflict(
          "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.",
        );
      }
      const problem = schemaCheck(parameters, schema, { preprocess: true, ignoreRequired: true });
      if (problem) throw conflict(`Error updating deployment: ${problem.message}`);
    }
    if (body.global_concurrency_limit_id && !(await tx.concurrencyLimits.get(body.global_concurrency_limit_id))) throw notFound("Concurrency limit not found");
    for (const documentId of [body.storage_document_id, body.infrastructure_document_id]) {
      if (documentId && !(await tx.blocks.getDocument(documentId))) throw integrityConflict();
    }

    let workQueueId: string | null | undefined;
    if (body.work_pool_name && body.work_queue_name) workQueueId = await poolQueueId(tx, body.work_pool_name, body.work_queue_name);
    else if (body.work_pool_name) workQueueId = await poolDefaultQueueId(tx, body.work_pool_name);
    else if ("work_pool_name" in body && body.work_pool_name === null) workQueueId = null;
    else if (body.work_queue_name) workQueueId = await legacyQueueId(tx, body.work_queue_name);

    const {
      work_pool_name: _pool,
      global_concurrency_limit_id: limitId,
      version_info: _versionInfo,
      schedules: _schedules,
      parameters: _parameters,
      enforce_parameter_schema: enforceGiven,
      job_variables: jobVariables,
      ...fields
    } = body;
    const updated = await tx.deployments.update(id, {
      ...fields,
      ...(body.parameters !== null && body.parameters !== undefined ? { parameters } : {}),
      ...(enforceGiven !== null && enforceGiven !== undefined ? { enforce_parameter_schema: enforceGiven } : {}),
      ...(jobVariables ? { job_variables: jobVariables } : {}),
      ...(body.concurrency_options ? { concurrency_options: concurrencyOptionsOf(body.concurrency_options) } : {}),
      ...(limitId !== undefined ? { concurrency_limit_id: limitId } : {}),
      ...(workQueueId !== undefined ? { work_queue_id: workQueueId } : {}),
      ...(plan.replaceAll !== undefined ? { schedules: plan.replaceAll.filter(hasDefinition).map(scheduleCreateOf) } : {}),
    });
    if (plan.patches.length > 0 || plan.creates.length > 0) await applyScheduleChanges(tx, id, plan.patches, plan.creates);
    const after = plan.patches.length > 0 || plan.creates.length > 0 ? await readDeployment(tx, id) : updated;
    return updatedEvent(tx, existing, after);
  });
  publishEvents(context.events, events);
}

// ---- Deleting -----------------------------------------------------------------------------------

export async function deleteDeployment(context: Context, id: string): Promise<void> {
  const event = await context.db.transaction(async (tx) => {
    const deployment = await readDeployment(tx, id);
    const deleted = await deploymentEventNow(tx, "deleted", deployment);
    await tx.deployments.delete(deployment.id);
    return deleted;
  });
  publishEvents(context.events, [event]);
}

/** Deletes the deployments the filter selects (at most `limit`); returns their ids. */
export async function bulkDeleteDeployments(context: Context, filter: DeploymentCriteria["deployments"], limit: number): Promise<string[]> {
  const { deleted, events } = await context.db.transaction(async (tx) => {
    const deployments = await tx.deployments.read({ deployments: filter, limit });
    const events: PrefectEvent[] = [];
    for (const deployment of deployments) {
      events.push(await deploymentEventNow(tx, "deleted", deployment));
      await tx.deployments.delete(deployment.id);
    }
    return { deleted: deployments.map((d) => d.id), events };
  });
  publishEvents(context.events, events);
  return deleted;
}

// ---- Pausing, scheduling, polling ---------------------------------------------------------------

export async function resumeDeployment(db: Repositories, id: string): Promise<void> {
  try {
    await db.deployments.resume(id);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    throw error;
  }
}

/**
 * Pauses the deployment, committed first so that the scheduler stops adding runs; then its
 * auto-scheduled runs not yet started go, as Prefect does.
 */
export async function pauseDeployment(db: Repositories, id: string): Promise<void> {
  try {
    await db.deployments.pause(id);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    throw error;
  }
  await db.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: false });
}

/**
 * Schedules the deployment's runs now (Prefect's `schedule_runs`), with the server's scheduler
 * settings for what the options leave out. An unknown deployment gets none.
 */
export async function scheduleDeploymentRuns(context: Context, id: string, options: ScheduleRunsOptions): Promise<number> {
  return scheduleRuns(context.db, [id], { settings: context.settings.services.scheduler, ...options });
}

/**
 * The SCHEDULED runs of the deployments (due before `scheduledBefore`), for runners. The deployments
 * are then marked READY (Prefect's `mark_deployments_ready`), with a `prefect.deployment.ready`
 * event for each that was not; a failure there does not fail the poll.
 */
export async function pollDeployments(context: Context, log: Logger, deploymentIds: readonly string[], options: { scheduledBefore: string | null; limit: number }) {
  const ids = [...new Set(deploymentIds.map((id) => id.toLowerCase()))];
  const runs = await context.db.flowRuns.read({
    deployment_ids: ids,
    flow_runs: {
      state: { type: { any_: ["SCHEDULED"] } },
      ...(options.scheduledBefore ? { next_scheduled_start_time: { before_: options.scheduledBefore } } : {}),
    },
    sort: "NEXT_SCHEDULED_START_TIME_ASC",
    limit: options.limit,
  });
  await markReady(context, ids, log);
  return runs;
}

async function markReady(context: Context, ids: readonly string[], log: Logger): Promise<void> {
  if (ids.length === 0) return;
  const { db } = context;
  try {
    const changed = await db.deployments.markReady({ deploymentIds: ids });
    const events: PrefectEvent[] = [];
    for (const id of changed) {
      const deployment = await db.deployments.get(id);
      if (deployment) events.push(await deploymentEventNow(db, "ready", deployment));
    }
    publishEvents(context.events, events);
  } catch (error) {
    log.warn({ err: error }, "could not mark the polled deployments ready");
  }
}

/**
 * Whether a legacy queue's filter picks up the deployment: its tags (if any) are all the
 * deployment's, and its deployment ids (if any) include it. Queues without a filter pick up nothing.
 */
function queuePicksUp(filter: Record<string, unknown> | null, deployment: Deployment): boolean {
  if (!filter) return false;
  const tags = filter.tags;
  const ids = filter.deployment_ids;
  const tagsOk = !Array.isArray(tags) || tags.every((t) => deployment.tags.includes(String(t)));
  const idsOk = !Array.isArray(ids) || ids.length === 0 || ids.some((id) => String(id).toLowerCase() === deployment.id);
  return tagsOk && idsOk;
}

/** The (deprecated) work queue check: the queues whose filter picks the deployment up. */
export async function queuesPickingUp(db: Repositories, id: string) {
  const deployment = await readDeployment(db, id);
  const queues = [];
  for (const pool of await db.workPools.read()) {
    for (const queue of await db.workQueues.read(pool.id)) if (queuePicksUp(queue.filter, deployment)) queues.push(queue);
  }
  return queues;
}

// ---- Schedules ----------------------------------------------------------------------------------

const SCHEDULE_SLUGS_TAKEN = "Schedule slugs must be unique within a deployment.";

function slugsTaken(error: unknown): never {
  if (error instanceof AlreadyExistsError) throw conflict(SCHEDULE_SLUGS_TAKEN);
  throw error;
}

export async function readDeploymentSchedules(db: Repositories, id: string): Promise<DeploymentSchedule[]> {
  const deployment = await readDeployment(db, id, "Deployment not found.");
  return db.deployments.readSchedules(deployment.id);
}

export function createDeploymentSchedules(db: AppContext["db"], id: string, schedules: readonly ScheduleChange[]): Promise<DeploymentSchedule[]> {
  return db
    .transaction(async (tx) => {
      await readDeployment(tx, id, "Deployment not found.");
      return tx.deployments.createSchedules(
        id,
        schedules.map(({ replaces: _replaces, ...s }) => s as Parameters<Repositories["deployments"]["createSchedules"]>[1][number]),
      );
    })
    .catch(slugsTaken);
}

/** Updates a schedule; the deployment's future auto-scheduled runs go (the scheduler makes new ones). */
export async function updateDeploymentSchedule(db: AppContext["db"], id: string, scheduleId: string, change: ScheduleChange): Promise<void> {
  await db
    .transaction(async (tx) => {
      await readDeployment(tx, id, "Deployment not found.");
      try {
        await tx.deployments.updateSchedule(id, scheduleId, scheduleUpdateValues(change));
      } catch (error) {
        if (error instanceof NotFoundError) throw notFound("Schedule not found.");
        throw error;
      }
      await tx.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: true });
    })
    .catch(slugsTaken);
}

/** Deletes a schedule with the deployment's auto-scheduled runs not yet started. */
export async function deleteDeploymentSchedule(db: AppContext["db"], id: string, scheduleId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await readDeployment(tx, id, "Deployment not found.");
    try {
      await tx.deployments.deleteSchedule(id, scheduleId);
    } catch (error) {
      if (error instanceof NotFoundError) throw notFound("Schedule not found.");
      throw error;
    }
    await tx.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: false });
  });
}
