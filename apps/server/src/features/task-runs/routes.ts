/**
 * Task runs and task run states (Prefect's "Task Runs" and "Task Run States" routes): create (an
 * upsert on flow run, task key and dynamic key, its first state through orchestration), read,
 * rename, delete, filter/count/paginate, history and state changes.
 */
import { InvalidError, NotFoundError, now, randomRunName, Uuid } from "@prefect/db";
import { createTaskRun, setTaskRunState, type TaskOrchestrationResult } from "@prefect/orchestration";
import { z } from "zod";
import type { AppContext } from "../app.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf, paginated } from "./common.js";
import { stateResponse, taskRunResponse } from "./responses.js";
import { integrityConflict } from "./flow-runs.js";
import {
  MAX_CACHE_KEY_LENGTH,
  objectNotFound,
  orchestrationResponse,
  publishEvents,
  runCriteriaOf,
  runHistory,
  runName,
  taskRunPolicy,
} from "./run-support.js";

const NOT_FOUND = "Task not found";

/** Prefect's TaskRunCreate: a null or empty name draws a generated one. */
const TaskRunCreateBody = api.TaskRunCreate.extend({ name: z.string().nullish() });
/** Prefect's TaskRunUpdate: a missing name changes nothing, a null or empty one draws a new name. */
const TaskRunUpdateBody = api.TaskRunUpdate.extend({ name: z.string().nullish() });
const StatesQuery = z.looseObject({ task_run_id: Uuid });

export function taskRunRoutes(context: AppContext): Routes {
  const { db } = context;
  // The server's lease storage (shared with the concurrency routes) and its tag slot wait bound.
  const orchestration = { leases: context.leases, settings: { taskTagConcurrencySlotWaitSeconds: context.settings.concurrency.tagSlotWaitSeconds } };
  return async (app) => {
    app.post("/task_runs/", { schema: { body: TaskRunCreateBody } }, async (request, reply) => {
      const body = request.body;
      if (body.cache_key && body.cache_key.length > MAX_CACHE_KEY_LENGTH) {
        const message = `Cache key exceeded maximum allowed length of ${MAX_CACHE_KEY_LENGTH} characters.`;
        throw new InvalidError(message, [{ path: ["cache_key"], message: `Value error, ${message}` }]);
      }
      const { state, name, labels, empirical_policy: policy, id, ...fields } = body;
      const outcome = await db
        .transaction(async (tx) => {
          // Without a flow run no unique key applies: Prefect looks for the run with these keys first.
          if (!body.flow_run_id) {
            const existing = await tx.taskRuns.getByKey(null, body.task_key, body.dynamic_key);
            if (existing) return { run: existing, created: false, orchestration: null };
          }
          // Prefect's system labels: the flow run's labels, then `prefect.flow-run.id`, then the caller's.
          const flowRun = body.flow_run_id ? await tx.flowRuns.get(body.flow_run_id) : null;
          const system = body.flow_run_id ? { ...(flowRun?.labels ?? {}), "prefect.flow-run.id": body.flow_run_id } : {};
          return createTaskRun(tx, {
            ...fields,
            ...(id ? { id } : {}),
            name: runName(name),
            empirical_policy: taskRunPolicy(policy),
            labels: { ...system, ...(labels ?? {}) },
            state: state ?? undefined,
          }, orchestration);
        })
        .catch(integrityConflict);
      publishEvents(context, outcome.orchestration?.events ?? [], now());
      return reply.code(outcome.created ? 201 : 200).send(taskRunResponse(outcome.run));
    });

    app.post("/task_runs/:id/set_state", { schema: { params: IdParams, body: api.Body_set_task_run_state_task_runs__id__set_state_post } }, async (request, reply) => {
      let result: TaskOrchestrationResult;
      try {
        result = await setTaskRunState(db, request.params.id, request.body.state, { ...orchestration, force: request.body.force ?? false });
      } catch (error) {
        if (error instanceof NotFoundError) return objectNotFound(reply, `Task run with id ${request.params.id} not found`);
        throw error;
      }
      publishEvents(context, result.events, now());
      return reply.code(result.written ? 201 : 200).send(orchestrationResponse(result));
    });

    app.get("/task_runs/:id", { schema: { params: IdParams } }, async (request) => {
      const run = await db.taskRuns.get(request.params.id);
      if (!run) throw new HttpError(404, NOT_FOUND);
      return taskRunResponse(run);
    });

    app.patch("/task_runs/:id", { schema: { params: IdParams, body: TaskRunUpdateBody } }, async (request, reply) => {
      const body = request.body;
      await db.transaction(async (tx) => {
        const run = await tx.taskRuns.get(request.params.id);
        if (!run) throw new HttpError(404, NOT_FOUND);
        if ("name" in body) await tx.taskRuns.update(run.id, { name: runName(body.name) ?? randomRunName() });
      });
      return reply.code(204).send();
    });

    app.delete("/task_runs/:id", { schema: { params: IdParams } }, async (request, reply) => {
      const deleted = await db.transaction(async (tx) => {
        const run = await tx.taskRuns.get(request.params.id);
        if (!run) return false;
        await tx.taskRuns.delete(run.id);
        await tx.logs.delete({ task_run_id: { any_: [run.id] } });
        return true;
      });
      if (!deleted) throw new HttpError(404, NOT_FOUND);
      return reply.code(204).send();
    });

    app.post("/task_runs/filter", { schema: { body: api.Body_read_task_runs_task_runs_filter_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const runs = await db.taskRuns.read({ ...(await runCriteriaOf(db, body)), sort: body.sort ?? "ID_DESC", limit, offset: body.offset ?? 0 });
      const at = now();
      return runs.map((run) => taskRunResponse(run, at));
    });

    app.post("/task_runs/count", { schema: { body: api.Body_count_task_runs_task_runs_count_post } }, async (request) =>
      db.taskRuns.count(await runCriteriaOf(db, request.body)),
    );

    app.post("/task_runs/paginate", { schema: { body: api.Body_paginate_task_runs_task_runs_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const criteria = await runCriteriaOf(db, body);
      const [runs, count] = await Promise.all([
        db.taskRuns.read({ ...criteria, sort: body.sort ?? "ID_DESC", limit, offset: (page - 1) * limit }),
        db.taskRuns.count(criteria),
      ]);
      const at = now();
      return paginated(
        runs.map((run) => taskRunResponse(run, at)),
        count,
        limit,
        page,
      );
    });

    app.post("/task_runs/history", { schema: { body: api.Body_task_run_history_task_runs_history_post } }, async (request) =>
      runHistory(db, "taskRuns", request.body),
    );

    app.get("/task_run_states/:id", { schema: { params: IdParams } }, async (request) => {
      const state = await db.taskRuns.getState(request.params.id);
      // Prefect's text, "flow" included.
      if (!state) throw new HttpError(404, "Flow run state not found");
      return stateResponse(state);
    });

    app.get("/task_run_states/", { schema: { querystring: StatesQuery } }, async (request) => {
      const states = await db.taskRuns.readStates(request.query.task_run_id);
      return states.map(stateResponse);
    });
  };
}
