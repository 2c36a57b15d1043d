/**
 * Deployments (Prefect's "Deployments" routes): create (an upsert on flow and name), read (by id and
 * by flow and deployment name), update, delete and bulk delete, filter/count/paginate, schedules,
 * flow runs created from a deployment (one or many), pause and resume, scheduling runs now, the
 * scheduled runs of deployments for runners (which marks them READY) and the deprecated work queue
 * check. Changes publish Prefect's `prefect.deployment.*` events once committed.
 */
import { createFlowRun, type LeaseStorage, type OrchestrationResult } from "@prefect/orchestration";
import {
  AlreadyExistsError,
  type Deployment,
  type DeploymentCriteria,
  type DeploymentScheduleCreate,
  InvalidError,
  type Labels,
  NormalizedScheduleSchema,
  NotFoundError,
  now,
  type Repositories,
  Uuid,
} from "@prefect/db";
import { z } from "zod";
import type { FastifyBaseLogger } from "fastify";
import type { AppContext } from "../app.js";
import { readBlockDocument } from "../blocks/documents.js";
import { fernetProvider } from "../blocks/encryption.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf, paginated } from "./common.js";
import {
  type BlockDataLookup,
  checkCreateParameters,
  checkUpdatedJobVariables,
  DEFAULT_AGENT_WORK_POOL_NAME,
  type DeploymentEvent,
  deploymentEvent,
  deploymentResponse,
  JINJA_UNSUPPORTED,
  jobVariablesProblem,
  legacyQueueId,
  needsJinja,
  planSchedules,
  poolDefaultQueueId,
  poolOf,
  poolQueueId,
  publishDeploymentEvents,
  type ScheduleChange,
  scheduleResponse,
  scheduleUpdateValues,
  schemaCheck,
  unprocessable,
  updatedEvent,
  workQueueResponse,
} from "./deployment-support.js";
import { deploymentRunScheduler } from "../services/scheduler.js";
import { UUID_ID } from "./fields.js";
import { integrityConflict } from "./flow-runs.js";
import { flowRunResponse } from "./responses.js";
import { checkParameterSize, createdByOf, flowRunPolicy, HydrationError, hydrate, INTEGRITY_CONFLICT, publishEvents, runName } from "./run-support.js";

const NOT_FOUND = "Deployment not found";

/** Prefect's BULK_OPERATION_LIMIT and BULK_CREATE_LIMIT. */
const BULK_DELETE_LIMIT = 50;
const BULK_CREATE_LIMIT = 100;

/** PREFECT_SERVER_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS's default. */
const MAX_SCHEDULED_RUNS = 50;

const MaxScheduledRuns = z
  .number()
  .int()
  .gt(0)
  .nullable()
  .optional()
  .refine((v) => v === null || v === undefined || v <= MAX_SCHEDULED_RUNS, {
    message: `Value error, \`max_scheduled_runs\` must be less than or equal to ${MAX_SCHEDULED_RUNS}.`,
  });

/** A schedule definition, validated (bad cron, rrule or timezone: 422) and normalized as Prefect does. */
const ScheduleCreateBody = api.DeploymentScheduleCreate.extend({ schedule: NormalizedScheduleSchema, max_scheduled_runs: MaxScheduledRuns });
const ScheduleUpdateBody = api.DeploymentScheduleUpdate.extend({ schedule: NormalizedScheduleSchema.nullable().optional(), max_scheduled_runs: MaxScheduledRuns });

/** Fields older clients send, which Prefect drops before validating (`remove_old_deployment_fields`). */
const OLD_FIELDS = ["worker_pool_queue_id", "worker_pool_name", "worker_pool_queue_name", "work_pool_queue_name"];
const withoutOldFields = (body: unknown) =>
  typeof body === "object" && body !== null && !Array.isArray(body) ? Object.fromEntries(Object.entries(body).filter(([k]) => !OLD_FIELDS.includes(k))) : body;

const bothLimits = (b: { concurrency_limit?: number | null | undefined; global_concurrency_limit_id?: string | null | undefined }) =>
  !(b.concurrency_limit && b.global_concurrency_limit_id);
const BOTH_LIMITS = { message: "Value error, A deployment cannot have both a concurrency limit and a global concurrency limit." };

const DeploymentCreateBody = z.preprocess(
  withoutOldFields,
  api.DeploymentCreate.extend({ schedules: z.array(ScheduleCreateBody).optional() }).refine(bothLimits, BOTH_LIMITS),
);
const DeploymentUpdateBody = z.preprocess(
  withoutOldFields,
  api.DeploymentUpdate.extend({ schedules: z.array(ScheduleUpdateBody).optional() }).refine(bothLimits, BOTH_LIMITS),
);
type DeploymentFlowRunCreate = z.output<typeof api.DeploymentFlowRunCreate>;

const ScheduleParams = z.strictObject({ id: Uuid, schedule_id: Uuid });
const NameParams = z.strictObject({ flow_name: z.string(), deployment_name: z.string() });
const SCHEDULE_ID = ":schedule_id([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

type ReadBody = z.output<typeof api.Body_read_deployments_deployments_filter_post>;

/** The deployment criteria of a read body, for the repository (which validates them again). */
function criteriaOf(body: Omit<ReadBody, "sort" | "limit" | "offset">): DeploymentCriteria {
  return {
    flows: (body.flows ?? null) as DeploymentCriteria["flows"],
    flow_runs: (body.flow_runs ?? null) as DeploymentCriteria["flow_runs"],
    task_runs: (body.task_runs ?? null) as DeploymentCriteria["task_runs"],
    deployments: (body.deployments ?? null) as DeploymentCriteria["deployments"],
    work_pools: (body.work_pools ?? null) as DeploymentCriteria["work_pools"],
    work_pool_queues: (body.work_pool_queues ?? null) as DeploymentCriteria["work_pool_queues"],
  };
}

export function deploymentRoutes(context: AppContext): Routes {
  const { db } = context;
  const fernet = fernetProvider(db, context.settings.encryptionKey);
  const blockData: BlockDataLookup = async (tx, id) => (await readBlockDocument(tx, await fernet(), id, false))?.data;
  // The scheduler's own scheduling, with the server's scheduler settings for what the body leaves out.
  const scheduleRuns = deploymentRunScheduler(context);
  const runSupport: RunSupport = { blockData, leases: context.leases };

  const requireDeployment = async (tx: Repositories, id: string, message = NOT_FOUND): Promise<Deployment> => {
    const deployment = await tx.deployments.get(id);
    if (!deployment) throw new HttpError(404, message);
    return deployment;
  };

  return async (app) => {
    app.post("/deployments/", { schema: { body: DeploymentCreateBody } }, async (request, reply) => {
      const body = request.body;
      checkParameterSize(body.parameters);
      checkCreateParameters(body);
      const { work_pool_name: poolName, global_concurrency_limit_id: limitId, version_info: _versionInfo, schedules, ...fields } = body;
      const { deployment, created, events } = await db.transaction(async (tx) => {
        if (poolName && poolName !== DEFAULT_AGENT_WORK_POOL_NAME) {
          const pool = await tx.workPools.getByName(poolName);
          if (!pool) throw new HttpError(404, `Work pool "${poolName}" not found.`);
          if (body.job_variables && Object.keys(body.job_variables).length > 0) {
            const problem = await jobVariablesProblem(tx, blockData, pool, [body.job_variables], { ignoreRequired: true });
            if (problem) throw unprocessable(`Error creating deployment: ${problem}`, ["job_variables"]);
          }
        }
        if (limitId && !(await tx.concurrencyLimits.get(limitId))) throw new HttpError(404, "Concurrency limit not found");
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
        const events: DeploymentEvent[] = result.created
          ? [await deploymentEvent(tx, "created", result.row)]
          : before
            ? await updatedEvent(tx, before, result.row)
            : [];
        return { deployment: result.row, created: result.created, events };
      });
      publishDeploymentEvents(context, events);
      return reply.code(created ? 201 : 200).send(deploymentResponse(deployment));
    });

    app.patch(`/deployments/${UUID_ID}`, { schema: { params: IdParams, body: DeploymentUpdateBody } }, async (request, reply) => {
      const body = request.body;
      checkParameterSize(body.parameters ?? undefined);
      const id = request.params.id;
      const events = await db.transaction(async (tx) => {
        const existing = await requireDeployment(tx, id, "Deployment not found.");
        const plan = planSchedules(existing.schedules, "schedules" in body ? body.schedules : undefined);

        let pool = null;
        if (body.work_pool_name) {
          pool = await tx.workPools.getByName(body.work_pool_name);
          if (!pool) throw new HttpError(404, `Work pool "${body.work_pool_name}" not found.`);
          checkUpdatedJobVariables(pool, body.job_variables);
        }

        let parameters = existing.parameters;
        if (body.parameters !== null && body.parameters !== undefined) {
          if (needsJinja(body.parameters)) throw unprocessable(JINJA_UNSUPPORTED, ["parameters"]);
          try {
            parameters = await hydrate(body.parameters, async (name) => (await tx.variables.getByName(name))?.value);
          } catch (error) {
            if (error instanceof HydrationError) throw new HttpError(400, `Error hydrating deployment parameters: ${error.message}`);
            throw error;
          }
        }
        const enforce = body.enforce_parameter_schema ?? existing.enforce_parameter_schema;
        if (enforce) {
          const schema = body.parameter_openapi_schema && Object.keys(body.parameter_openapi_schema).length > 0 ? body.parameter_openapi_schema : existing.parameter_openapi_schema;
          if (!isRecord(schema)) {
            throw new HttpError(
              409,
              "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.",
            );
          }
          const problem = schemaCheck(parameters, schema, { preprocess: true, ignoreRequired: true });
          if (problem) throw new HttpError(409, `Error updating deployment: ${problem.message}`);
        }
        if (body.global_concurrency_limit_id && !(await tx.concurrencyLimits.get(body.global_concurrency_limit_id))) {
          throw new HttpError(404, "Concurrency limit not found");
        }
        for (const documentId of [body.storage_document_id, body.infrastructure_document_id]) {
          if (documentId && !(await tx.blocks.getDocument(documentId))) throw INTEGRITY_CONFLICT;
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
        const after = plan.patches.length > 0 || plan.creates.length > 0 ? await requireDeployment(tx, id) : updated;
        return updatedEvent(tx, existing, after);
      });
      publishDeploymentEvents(context, events);
      return reply.code(204).send();
    });

    app.get("/deployments/name/:flow_name/:deployment_name", { schema: { params: NameParams } }, async (request) => {
      const deployment = await db.deployments.getByName(request.params.flow_name, request.params.deployment_name);
      if (!deployment) throw new HttpError(404, NOT_FOUND);
      return deploymentResponse(deployment);
    });

    app.get(`/deployments/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => deploymentResponse(await requireDeployment(db, request.params.id)));

    app.post("/deployments/filter", { schema: { body: api.Body_read_deployments_deployments_filter_post } }, async (request) => {
      const body = request.body;
      const deployments = await db.deployments.read({ ...criteriaOf(body), sort: body.sort ?? "NAME_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return deployments.map(deploymentResponse);
    });

    app.post("/deployments/paginate", { schema: { body: api.Body_paginate_deployments_deployments_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const criteria = criteriaOf(body);
      const [deployments, count] = await Promise.all([
        db.deployments.read({ ...criteria, sort: body.sort ?? "NAME_ASC", limit, offset: (page - 1) * limit }),
        db.deployments.count(criteria),
      ]);
      return paginated(deployments.map(deploymentResponse), count, limit, page);
    });

    app.post("/deployments/count", { schema: { body: api.Body_count_deployments_deployments_count_post } }, async (request) =>
      db.deployments.count(criteriaOf(request.body)),
    );

    app.post(
      "/deployments/get_scheduled_flow_runs",
      { schema: { body: api.Body_get_scheduled_flow_runs_for_deployments_deployments_get_scheduled_flow_runs_post } },
      async (request) => {
        const body = request.body;
        const ids = [...new Set(body.deployment_ids.map((id) => id.toLowerCase()))];
        const runs = await db.flowRuns.read({
          deployment_ids: ids,
          flow_runs: {
            state: { type: { any_: ["SCHEDULED"] } },
            ...(body.scheduled_before ? { next_scheduled_start_time: { before_: body.scheduled_before } } : {}),
          },
          sort: "NEXT_SCHEDULED_START_TIME_ASC",
          limit: limitOf(body.limit),
        });
        await markReady(ids, request.log);
        const at = now();
        return runs.map((run) => flowRunResponse(run, at));
      },
    );

    app.delete(`/deployments/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const event = await db.transaction(async (tx) => {
        const deployment = await requireDeployment(tx, request.params.id);
        const deleted = await deploymentEvent(tx, "deleted", deployment);
        await tx.deployments.delete(deployment.id);
        return deleted;
      });
      publishDeploymentEvents(context, [event]);
      return reply.code(204).send();
    });

    app.post("/deployments/bulk_delete", { schema: { body: api.Body_bulk_delete_deployments_deployments_bulk_delete_post } }, async (request) => {
      const body = request.body;
      const { deleted, events } = await db.transaction(async (tx) => {
        const deployments = await tx.deployments.read({ deployments: (body.deployments ?? null) as DeploymentCriteria["deployments"], limit: body.limit ?? BULK_DELETE_LIMIT });
        const events: DeploymentEvent[] = [];
        for (const deployment of deployments) {
          events.push(await deploymentEvent(tx, "deleted", deployment));
          await tx.deployments.delete(deployment.id);
        }
        return { deleted: deployments.map((d) => d.id), events };
      });
      publishDeploymentEvents(context, events);
      return { deleted };
    });

    app.post(
      `/deployments/${UUID_ID}/schedule`,
      { schema: { params: IdParams, body: api.Body_schedule_deployment_deployments__id__schedule_post } },
      async (request, reply) => {
        // Runs of an unknown deployment: none, and 200, as Prefect answers.
        const body = request.body;
        await scheduleRuns([request.params.id], {
          startTime: body.start_time ?? undefined,
          endTime: body.end_time ?? undefined,
          minTime: body.min_time ?? undefined,
          minRuns: body.min_runs ?? undefined,
          maxRuns: body.max_runs ?? undefined,
          log: request.log,
        });
        return reply.code(200).send(null);
      },
    );

    app.post(`/deployments/${UUID_ID}/resume_deployment`, { schema: { params: IdParams } }, async (request, reply) => {
      try {
        await db.deployments.resume(request.params.id);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        throw error;
      }
      return reply.code(200).send(null);
    });

    app.post(`/deployments/${UUID_ID}/pause_deployment`, { schema: { params: IdParams } }, async (request, reply) => {
      const id = request.params.id;
      // Paused first and committed, so that the scheduler stops adding runs; then its auto-scheduled
      // runs not yet started go, as Prefect does.
      try {
        await db.deployments.pause(id);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        throw error;
      }
      await db.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: false });
      return reply.code(200).send(null);
    });

    app.post(
      `/deployments/${UUID_ID}/create_flow_run`,
      { schema: { params: IdParams, body: api.DeploymentFlowRunCreate } },
      async (request, reply) => {
        const body = request.body;
        checkParameterSize(body.parameters);
        const createdBy = createdByOf(request);
        const outcome = await db
          .transaction(async (tx) => runFromDeployment(tx, await requireDeployment(tx, request.params.id), body, createdBy, runSupport))
          .catch(integrityConflict);
        publishEvents(context, outcome.orchestration?.events ?? [], now());
        return reply.code(outcome.created ? 201 : 200).send(flowRunResponse(outcome.run));
      },
    );

    app.post(
      `/deployments/${UUID_ID}/create_flow_run/bulk`,
      { schema: { params: IdParams, body: z.array(api.DeploymentFlowRunCreate) } },
      async (request) => {
        const body = request.body;
        if (body.length > BULK_CREATE_LIMIT) throw new HttpError(400, `Cannot create more than ${BULK_CREATE_LIMIT} flow runs at once.`);
        const createdBy = createdByOf(request);
        const { results, events } = await db.transaction(async (tx) => {
          const deployment = await requireDeployment(tx, request.params.id);
          const results: { flow_run_id: string | null; status: "CREATED" | "FAILED"; error: string | null }[] = [];
          const events: OrchestrationResult["events"][number][] = [];
          for (const run of body) {
            try {
              checkParameterSize(run.parameters);
              // Each run in its own savepoint: one that fails leaves nothing behind and the others go on.
              const outcome = await tx.transaction((inner) => runFromDeployment(inner, deployment, run, createdBy, runSupport));
              events.push(...(outcome.orchestration?.events ?? []));
              results.push({ flow_run_id: outcome.run.id, status: "CREATED", error: null });
            } catch (error) {
              results.push({ flow_run_id: null, status: "FAILED", error: failureMessage(error) });
            }
          }
          return { results, events };
        });
        publishEvents(context, events, now());
        return { results };
      },
    );

    app.get(`/deployments/${UUID_ID}/work_queue_check`, { schema: { params: IdParams } }, async (request) => {
      const deployment = await requireDeployment(db, request.params.id);
      const queues = [];
      for (const pool of await db.workPools.read()) {
        for (const queue of await db.workPools.readQueues(pool.id)) if (queuePicksUp(queue.filter, deployment)) queues.push(workQueueResponse(queue));
      }
      return queues;
    });

    app.get(`/deployments/${UUID_ID}/schedules`, { schema: { params: IdParams } }, async (request) => {
      const deployment = await requireDeployment(db, request.params.id, "Deployment not found.");
      return (await db.deployments.readSchedules(deployment.id)).map(scheduleResponse);
    });

    app.post(
      `/deployments/${UUID_ID}/schedules`,
      { schema: { params: IdParams, body: z.array(ScheduleCreateBody) } },
      async (request, reply) => {
        const created = await db.transaction(async (tx) => {
          await requireDeployment(tx, request.params.id, "Deployment not found.");
          return tx.deployments.createSchedules(
            request.params.id,
            request.body.map(({ replaces: _replaces, ...s }) => s),
          );
        }).catch((error: unknown) => {
          if (isAlreadyExists(error)) throw new HttpError(409, "Schedule slugs must be unique within a deployment.");
          throw error;
        });
        return reply.code(201).send(created.map(scheduleResponse));
      },
    );

    app.patch(
      `/deployments/${UUID_ID}/schedules/${SCHEDULE_ID}`,
      { schema: { params: ScheduleParams, body: ScheduleUpdateBody } },
      async (request, reply) => {
        const { id, schedule_id: scheduleId } = request.params;
        await db
          .transaction(async (tx) => {
            await requireDeployment(tx, id, "Deployment not found.");
            try {
              await tx.deployments.updateSchedule(id, scheduleId, scheduleUpdateValues(request.body));
            } catch (error) {
              if (error instanceof NotFoundError) throw new HttpError(404, "Schedule not found.");
              throw error;
            }
            await tx.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: true });
          })
          .catch((error: unknown) => {
            if (isAlreadyExists(error)) throw new HttpError(409, "Schedule slugs must be unique within a deployment.");
            throw error;
          });
        return reply.code(204).send();
      },
    );

    app.delete(`/deployments/${UUID_ID}/schedules/${SCHEDULE_ID}`, { schema: { params: ScheduleParams } }, async (request, reply) => {
      const { id, schedule_id: scheduleId } = request.params;
      await db.transaction(async (tx) => {
        await requireDeployment(tx, id, "Deployment not found.");
        try {
          await tx.deployments.deleteSchedule(id, scheduleId);
        } catch (error) {
          if (error instanceof NotFoundError) throw new HttpError(404, "Schedule not found.");
          throw error;
        }
        await tx.deployments.deleteFutureAutoScheduledRuns(id, { futureOnly: false });
      });
      return reply.code(204).send();
    });
  };

  /**
   * Prefect's `mark_deployments_ready` after a poll: READY with `last_polled` now, and a
   * `prefect.deployment.ready` event for each that was not ready. A failure here does not fail the
   * poll (Prefect runs it in the background).
   */
  async function markReady(ids: readonly string[], log: FastifyBaseLogger): Promise<void> {
    if (ids.length === 0) return;
    try {
      const changed = await db.deployments.markReady({ deploymentIds: ids });
      const events: DeploymentEvent[] = [];
      for (const id of changed) {
        const deployment = await db.deployments.get(id);
        if (deployment) events.push(await deploymentEvent(db, "ready", deployment));
      }
      publishDeploymentEvents(context, events);
    } catch (error) {
      log.warn({ err: error }, "could not mark the polled deployments ready");
    }
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

const isAlreadyExists = (error: unknown) => error instanceof AlreadyExistsError;

/** Prefect skips schedules without a definition when an update replaces all of them. */
const hasDefinition = (change: ScheduleChange) => Boolean(change.schedule);

/** Prefect's ConcurrencyOptions: the strategy and grace period (other keys dropped). */
function concurrencyOptionsOf(options: z.output<typeof api.ConcurrencyOptions>) {
  return { collision_strategy: options.collision_strategy, grace_period_seconds: options.grace_period_seconds ?? null };
}

/** A schedule change that carries a definition (Prefect skips the others when replacing all). */
function scheduleCreateOf(change: ScheduleChange): DeploymentScheduleCreate {
  if (!change.schedule) throw new Error("a schedule without a definition cannot be created");
  return {
    schedule: change.schedule,
    active: change.active ?? true,
    max_scheduled_runs: change.max_scheduled_runs ?? null,
    parameters: change.parameters ?? {},
    slug: change.slug ?? null,
  };
}

/** The flow of a new deployment must exist: Prefect's foreign key answers 409. */
function missingFlow(error: unknown): never {
  if (error instanceof InvalidError && error.issues[0]?.path[0] === "flow_id") throw INTEGRITY_CONFLICT;
  throw error;
}

/** Prefect's check that a block document a new deployment names exists (409 with its advice). */
async function checkBlockDocument(tx: Repositories, id: string | null | undefined, what: string): Promise<void> {
  if (!id || (await tx.blocks.getDocument(id))) return;
  throw new HttpError(
    409,
    `Error creating deployment. Could not find ${what} with id: ${id}. This usually occurs when applying a deployment specification that was built against a different Prefect database / workspace.`,
  );
}

/**
 * Applies the targeted schedule changes of an update: renames first (slugs being replaced are
 * cleared so the renamed schedules cannot collide), then updates by id or slug, then additions.
 */
async function applyScheduleChanges(tx: Repositories, deploymentId: string, patches: readonly ScheduleChange[], creates: readonly ScheduleChange[]): Promise<void> {
  const current = await tx.deployments.readSchedules(deploymentId);
  const idBySlug = new Map(current.filter((s) => s.slug !== null).map((s) => [s.slug as string, s.id]));
  const renamed = new Map<string, string>();
  for (const patch of patches) {
    if (!patch.replaces) continue;
    const id = idBySlug.get(patch.replaces);
    if (!id) throw new HttpError(404, `Schedule with slug '${patch.replaces}' no longer exists.`);
    renamed.set(patch.replaces, id);
  }
  for (const id of renamed.values()) await tx.deployments.updateSchedule(deploymentId, id, { slug: null });
  for (const patch of patches) {
    const id = patch.replaces ? renamed.get(patch.replaces) : patch.slug ? idBySlug.get(patch.slug) : undefined;
    if (id) await tx.deployments.updateSchedule(deploymentId, id, scheduleUpdateValues(patch));
  }
  if (creates.length > 0) await tx.deployments.createSchedules(deploymentId, creates.map(scheduleCreateOf));
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

/** An error of one run of a bulk create, as Prefect reports it (the HTTP detail, or the message). */
function failureMessage(error: unknown): string {
  if (error instanceof HttpError) return typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
  return error instanceof Error ? error.message : String(error);
}

interface RunSupport {
  readonly blockData: BlockDataLookup;
  /** Where orchestration keeps concurrency leases. */
  readonly leases: LeaseStorage;
}

/**
 * Prefect's `create_flow_run_from_deployment`: parameters over the deployment's (hydrated, and checked
 * against its parameter schema when enforced), job variables checked against the pool's template,
 * the deployment's queue or another queue of its pool, tags added to the deployment's, the
 * deployment's labels and infrastructure document, SCHEDULED now unless a state is given.
 */
async function runFromDeployment(
  tx: Repositories,
  deployment: Deployment,
  body: DeploymentFlowRunCreate,
  createdBy: ReturnType<typeof createdByOf>,
  { blockData, leases }: RunSupport,
) {
  const given = { ...deployment.parameters, ...(body.parameters ?? {}) };
  if (needsJinja(given)) throw unprocessable(JINJA_UNSUPPORTED, ["parameters"]);
  let parameters: Record<string, unknown>;
  try {
    parameters = await hydrate(given, async (name) => (await tx.variables.getByName(name))?.value);
  } catch (error) {
    if (error instanceof HydrationError) throw new HttpError(400, `Error hydrating flow run parameters: ${error.message}`);
    throw error;
  }
  const enforce = body.enforce_parameter_schema ?? deployment.enforce_parameter_schema;
  if (enforce) {
    if (!isRecord(deployment.parameter_openapi_schema)) {
      throw new HttpError(
        409,
        "Error updating deployment: Cannot update parameters because parameter schema enforcement is enabled and the deployment does not have a valid parameter schema.",
      );
    }
    const problem = schemaCheck(parameters, deployment.parameter_openapi_schema, { preprocess: true });
    if (problem) throw new HttpError(409, `Error creating flow run: ${problem.message}`);
  }

  const pool = await poolOf(tx, deployment);
  if (pool) {
    const problem = await jobVariablesProblem(tx, blockData, pool, [deployment.job_variables, body.job_variables], { ignoreRequired: false });
    if (problem) throw unprocessable(`Error creating flow run: ${problem}`, ["job_variables"]);
  }

  let workQueueName = deployment.work_queue_name;
  let workQueueId = deployment.work_queue_id;
  if (body.work_queue_name) {
    if (!pool) {
      throw new HttpError(
        400,
        `Cannot create flow run in work queue ${body.work_queue_name} because deployment ${deployment.id} is not associated with a work pool. Please remove work_pool_name and try again.`,
      );
    }
    workQueueId = await poolQueueId(tx, pool.name, body.work_queue_name);
    workQueueName = body.work_queue_name;
  }

  const labels: Labels = { ...(deployment.labels ?? {}), "prefect.flow.id": deployment.flow_id, "prefect.deployment.id": deployment.id, ...(body.labels ?? {}) };
  return createFlowRun(tx, {
    flow_id: deployment.flow_id,
    deployment_id: deployment.id,
    deployment_version: deployment.version,
    name: runName(body.name),
    parameters,
    context: body.context ?? {},
    empirical_policy: flowRunPolicy(body.empirical_policy),
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
  }, { leases });
}
