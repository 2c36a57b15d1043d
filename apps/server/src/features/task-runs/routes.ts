/**
 * Task runs and task run states (Prefect's "Task Runs" and "Task Run States" routes): create (an
 * upsert on flow run, task key and dynamic key, its first state through orchestration), read,
 * rename, delete, filter/count/paginate, history and state changes.
 */
import { now, Uuid } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, limitOf, paginated } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { orchestrationResponse, stateResponse } from "../../prefect/run-responses.js";
import { taskRunResponse } from "./responses.js";
import {
  countTaskRuns,
  createTaskRun,
  deleteTaskRun,
  paginateTaskRuns,
  readTaskRun,
  readTaskRuns,
  readTaskRunState,
  readTaskRunStates,
  setTaskRunState,
  taskRunHistory,
  updateTaskRun,
} from "./service.js";

/** Prefect's TaskRunCreate: a null or empty name draws a generated one. */
const TaskRunCreateBody = api.TaskRunCreate.extend({ name: z.string().nullish() });
/** Prefect's TaskRunUpdate: a missing name changes nothing, a null or empty one draws a new name. */
const TaskRunUpdateBody = api.TaskRunUpdate.extend({ name: z.string().nullish() });
const StatesQuery = z.looseObject({ task_run_id: Uuid });

export function taskRunRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/task_runs/", { schema: { body: TaskRunCreateBody } }, async (request, reply) => {
      const outcome = await createTaskRun(context, request.body);
      return reply.code(outcome.created ? 201 : 200).send(taskRunResponse(outcome.run));
    });

    app.post("/task_runs/:id/set_state", { schema: { params: IdParams, body: api.Body_set_task_run_state_task_runs__id__set_state_post } }, async (request, reply) => {
      const result = await setTaskRunState(context, request.params.id, request.body.state, request.body.force ?? false);
      return reply.code(result.written ? 201 : 200).send(orchestrationResponse(result));
    });

    app.get("/task_runs/:id", { schema: { params: IdParams } }, async (request) => taskRunResponse(await readTaskRun(db, request.params.id)));

    app.patch("/task_runs/:id", { schema: { params: IdParams, body: TaskRunUpdateBody } }, async (request, reply) => {
      await updateTaskRun(db, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete("/task_runs/:id", { schema: { params: IdParams } }, async (request, reply) => {
      await deleteTaskRun(db, request.params.id);
      return reply.code(204).send();
    });

    app.post("/task_runs/filter", { schema: { body: api.Body_read_task_runs_task_runs_filter_post } }, async (request) => {
      const body = request.body;
      const runs = await readTaskRuns(db, body, { sort: body.sort ?? "ID_DESC", limit: limitOf(body.limit), offset: body.offset ?? 0 });
      const at = now();
      return runs.map((run) => taskRunResponse(run, at));
    });

    app.post("/task_runs/count", { schema: { body: api.Body_count_task_runs_task_runs_count_post } }, async (request) => countTaskRuns(db, request.body));

    app.post("/task_runs/paginate", { schema: { body: api.Body_paginate_task_runs_task_runs_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const { runs, count } = await paginateTaskRuns(db, body, { sort: body.sort ?? "ID_DESC", limit, offset: (page - 1) * limit });
      const at = now();
      return paginated(
        runs.map((run) => taskRunResponse(run, at)),
        count,
        limit,
        page,
      );
    });

    app.post("/task_runs/history", { schema: { body: api.Body_task_run_history_task_runs_history_post } }, async (request) => taskRunHistory(db, request.body));

    app.get("/task_run_states/:id", { schema: { params: IdParams } }, async (request) => stateResponse(await readTaskRunState(db, request.params.id)));

    app.get("/task_run_states/", { schema: { querystring: StatesQuery } }, async (request) => (await readTaskRunStates(db, request.query.task_run_id)).map(stateResponse));
  };
}
