/**
 * Prefect's `/ui/*` routes (not in its OpenAPI document; `prefect/server/api/ui/`), with its request
 * validation: list bodies of at most 200 ids, the history's `limit` of at most 1000, the dashboard's
 * required start of window.
 */
import { Uuid } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { unprocessableDetail } from "../../prefect/errors.js";
import type { Routes } from "../../http/zod.js";
import {
  countDeploymentsByFlow,
  countTaskRunsByFlowRun,
  countTaskRunsByState,
  dashboardTaskRunCounts,
  flowRunHistory,
  nextRunsByFlow,
  validateSchemaValues,
} from "./service.js";

const MAX_IDS = 200;
const MAX_HISTORY = 1000;

const body = <T extends z.ZodRawShape>(shape: T) => z.preprocess((value) => value ?? {}, z.looseObject(shape));
const ids = z.array(Uuid).max(MAX_IDS, { message: `List should have at most ${MAX_IDS} items after validation` });
const dictionary = z.record(z.string(), z.unknown(), { message: "Input should be a valid dictionary" });

const HistoryBody = body({
  sort: api.FlowRunSort.optional(),
  limit: z.number().int().min(0).max(MAX_HISTORY, { message: `Input should be less than or equal to ${MAX_HISTORY}` }).optional(),
  offset: z.number().int().min(0, { message: "Input should be greater than or equal to 0" }).optional(),
  flows: api.FlowFilter.nullish(),
  flow_runs: api.FlowRunFilter.nullish(),
  task_runs: api.TaskRunFilter.nullish(),
  deployments: api.DeploymentFilter.nullish(),
  work_pools: api.WorkPoolFilter.nullish(),
});
const FlowRunIdsBody = body({ flow_run_ids: ids });
const FlowIdsBody = body({ flow_ids: ids });
const TaskRunCountBody = body({
  flows: api.FlowFilter.nullish(),
  flow_runs: api.FlowRunFilter.nullish(),
  task_runs: api.TaskRunFilter.nullish(),
  deployments: api.DeploymentFilter.nullish(),
});
const DashboardBody = body({
  task_runs: api.TaskRunFilter,
  flows: api.FlowFilter.nullish(),
  flow_runs: api.FlowRunFilter.nullish(),
  deployments: api.DeploymentFilter.nullish(),
  work_pools: api.WorkPoolFilter.nullish(),
  work_queues: api.WorkQueueFilter.nullish(),
});
const ValidateBody = body({ schema: dictionary, values: dictionary });

export function uiRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/ui/flow_runs/history", { schema: { body: HistoryBody } }, async (request) => {
      const { sort, limit, offset, ...filters } = request.body;
      return flowRunHistory(db, { ...filters, sort: sort ?? "EXPECTED_START_TIME_DESC", limit: limit ?? MAX_HISTORY, offset: offset ?? 0 });
    });

    app.post("/ui/flow_runs/count-task-runs", { schema: { body: FlowRunIdsBody } }, async (request) => countTaskRunsByFlowRun(db, request.body.flow_run_ids));

    app.post("/ui/task_runs/count", { schema: { body: TaskRunCountBody } }, async (request) => countTaskRunsByState(db, request.body));

    app.post("/ui/task_runs/dashboard/counts", { schema: { body: DashboardBody } }, async (request) => {
      const after = request.body.task_runs.start_time?.after_;
      if (!after) throw unprocessableDetail("task_runs.start_time.after_ is required");
      return dashboardTaskRunCounts(db, { ...request.body, task_runs: request.body.task_runs, after });
    });

    app.post("/ui/flows/count-deployments", { schema: { body: FlowIdsBody } }, async (request) => countDeploymentsByFlow(db, request.body.flow_ids));

    app.post("/ui/flows/next-runs", { schema: { body: FlowIdsBody } }, async (request) => nextRunsByFlow(db, request.body.flow_ids));

    app.post("/ui/schemas/validate", { schema: { body: ValidateBody } }, async (request) =>
      validateSchemaValues(db, request.body.schema, request.body.values),
    );
  };
}
