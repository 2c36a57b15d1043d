/**
 * Flow runs and flow run states (Prefect's "Flow Runs" and "Flow Run States" routes): create (through
 * orchestration), read, update, labels, delete, filter/count/paginate, history, lateness, graphs,
 * state changes (one run, many runs, resuming a paused run) and the logs download. The run inputs
 * under `/flow_runs/{id}/input` live elsewhere.
 */
import { Readable } from "node:stream";
import { createFlowRun, type LeaseStorage, type OrchestrationResult, setFlowRunState } from "@prefect/orchestration";
import {
  AlreadyExistsError,
  type Artifact,
  type FlowRun,
  type Labels,
  type Log,
  InvalidError,
  NotFoundError,
  now,
  randomRunName,
  type Repositories,
  type State,
  type TaskRun,
  TimestampSchema,
  Uuid,
} from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf, paginated } from "./common.js";
import { flowRunResponse, stateResponse } from "./responses.js";
import {
  apiVersionOf,
  checkParameterSize,
  clientVersionOf,
  createdByOf,
  flowRunPolicy,
  HydrationError,
  hydrate,
  INTEGRITY_CONFLICT,
  isMissingReference,
  OrchestrationHeaders,
  objectNotFound,
  orchestrationResponse,
  publishEvents,
  runCriteriaOf,
  runHistory,
  runName,
} from "./run-support.js";
import { validateJobVariables, validateRunInput } from "./run-input.js";

const NOT_FOUND = "Flow run not found";

/** Prefect's PREFECT_API_MAX_FLOW_RUN_GRAPH_NODES / _ARTIFACTS defaults. */
const MAX_GRAPH_NODES = 10_000;
const MAX_GRAPH_ARTIFACTS = 10_000;

/** Prefect's BULK_OPERATION_LIMIT. */
const BULK_LIMIT = 50;

/** Logs read per page when downloading them (Prefect's FLOW_RUN_LOGS_DOWNLOAD_PAGE_LIMIT). */
const LOG_PAGE = 1000;

/** Prefect's FlowRunCreate: a null or empty name draws a generated one. */
const FlowRunCreateBody = api.FlowRunCreate.extend({ name: z.string().nullish() });
const FlowRunUpdateBody = api.FlowRunUpdate;
const LabelsBody = z.record(z.string(), z.unknown());
const StatesQuery = z.looseObject({ flow_run_id: Uuid });
const GraphQuery = z.looseObject({ since: TimestampSchema.optional() });

export function flowRunRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/flow_runs/", { schema: { body: FlowRunCreateBody, headers: OrchestrationHeaders } }, async (request, reply) => {
      const body = request.body;
      checkParameterSize(body.parameters);
      const apiVersion = apiVersionOf(request);
      const createdBy = createdByOf(request);
      const { state, work_pool_name: poolName, work_queue_name: queueName, labels, name, empirical_policy: policy, ...fields } = body;
      const outcome = await db
        .transaction(async (tx) => {
          const workQueueId = poolName ? await workQueueIdOf(tx, poolName, queueName ?? null) : null;
          const systemLabels = await flowRunLabels(tx, body.flow_id, body.deployment_id ?? null);
          return createFlowRun(
            tx,
            {
              ...fields,
              name: runName(name),
              empirical_policy: flowRunPolicy(policy),
              labels: { ...systemLabels, ...(labels ?? {}) },
              work_queue_name: queueName ?? null,
              work_queue_id: workQueueId,
              created_by: createdBy,
              state: state ?? undefined,
            },
            { orchestrationParameters: { "api-version": apiVersion }, leases: context.leases },
          );
        })
        .catch(integrityConflict);
      publishEvents(context, outcome.orchestration?.events ?? [], now());
      return reply.code(outcome.created ? 201 : 200).send(flowRunResponse(outcome.run));
    });

    app.post(
      "/flow_runs/:id/set_state",
      { schema: { params: IdParams, body: api.Body_set_flow_run_state_flow_runs__id__set_state_post, headers: OrchestrationHeaders } },
      async (request, reply) => {
        const options = {
          force: request.body.force ?? false,
          clientVersion: clientVersionOf(request),
          orchestrationParameters: { "api-version": apiVersionOf(request) },
          leases: context.leases,
        };
        let result: OrchestrationResult;
        try {
          result = await setFlowRunState(db, request.params.id, request.body.state, options);
        } catch (error) {
          if (error instanceof NotFoundError) return objectNotFound(reply, `Flow run with id ${request.params.id} not found`);
          throw error;
        }
        publishEvents(context, result.events, now());
        return reply.code(result.written ? 201 : 200).send(orchestrationResponse(result));
      },
    );

    app.post(
      "/flow_runs/bulk_set_state",
      { schema: { body: api.Body_bulk_set_flow_run_state_flow_runs_bulk_set_state_post, headers: OrchestrationHeaders } },
      async (request) => {
        const body = request.body;
        const options = {
          force: body.force ?? false,
          clientVersion: clientVersionOf(request),
          orchestrationParameters: { "api-version": apiVersionOf(request) },
          leases: context.leases,
        };
        const runs = await db.flowRuns.read({ flow_runs: body.flow_runs ?? null, limit: body.limit ?? BULK_LIMIT });
        const results = [];
        // One transaction per run, one after the other, as Prefect does: a run that cannot change
        // state is reported (ABORT with the reason) without holding up the others.
        for (const run of runs) {
          try {
            const result = await setFlowRunState(db, run.id, body.state, options);
            publishEvents(context, result.events, now());
            results.push({ flow_run_id: run.id, ...orchestrationResponse(result) });
          } catch (error) {
            results.push({ flow_run_id: run.id, status: "ABORT", state: null, details: { type: "abort_details", reason: (error as Error).message } });
          }
        }
        return { results };
      },
    );

    app.post(
      "/flow_runs/:id/resume",
      { schema: { params: IdParams, body: api.Body_resume_flow_run_flow_runs__id__resume_post, headers: OrchestrationHeaders } },
      async (request, reply) => {
        const options = { clientVersion: clientVersionOf(request), orchestrationParameters: { "api-version": apiVersionOf(request) }, leases: context.leases };
        const outcome = await db.transaction((tx) => resumeFlowRun(tx, request.params.id, request.body.run_input ?? null, options));
        if (outcome === null) throw new HttpError(404, NOT_FOUND);
        publishEvents(context, outcome.events, now());
        return reply.code(outcome.written ? 201 : 200).send({ state: outcome.state, status: outcome.status, details: outcome.details });
      },
    );

    app.get("/flow_runs/:id", { schema: { params: IdParams } }, async (request) => {
      const run = await db.flowRuns.get(request.params.id);
      if (!run) throw new HttpError(404, NOT_FOUND);
      return flowRunResponse(run);
    });

    app.patch("/flow_runs/:id", { schema: { params: IdParams, body: FlowRunUpdateBody } }, async (request, reply) => {
      const body = request.body;
      checkParameterSize(body.parameters);
      await db.transaction(async (tx) => {
        const run = await tx.flowRuns.get(request.params.id);
        if (!run) throw new HttpError(404, NOT_FOUND);
        if (body.job_variables !== undefined && body.job_variables !== null) await checkJobVariablesUpdate(tx, run, body.job_variables);
        await tx.flowRuns.update(run.id, {
          ...("name" in body ? { name: runName(body.name) ?? randomRunName() } : {}),
          ...("flow_version" in body ? { flow_version: body.flow_version ?? null } : {}),
          ...(body.parameters !== undefined ? { parameters: body.parameters } : {}),
          ...(body.empirical_policy !== undefined ? { empirical_policy: flowRunPolicy(body.empirical_policy) } : {}),
          ...(body.tags !== undefined ? { tags: body.tags } : {}),
          ...("infrastructure_pid" in body ? { infrastructure_pid: body.infrastructure_pid ?? null } : {}),
          ...("job_variables" in body ? { job_variables: body.job_variables ?? null } : {}),
        });
      });
      return reply.code(204).send();
    });

    app.patch("/flow_runs/:id/labels", { schema: { params: IdParams, body: LabelsBody } }, async (request, reply) => {
      const labels = labelsOf(request.body);
      const found = await db.transaction(async (tx) => {
        const run = await tx.flowRuns.get(request.params.id);
        if (!run) return false;
        await tx.flowRuns.update(run.id, { labels: { ...(run.labels ?? {}), ...labels } });
        return true;
      });
      if (!found) return objectNotFound(reply, `Flow run with id ${request.params.id} not found`);
      return reply.code(204).send();
    });

    app.delete("/flow_runs/:id", { schema: { params: IdParams } }, async (request, reply) => {
      const deleted = await db.transaction(async (tx) => {
        const run = await tx.flowRuns.get(request.params.id);
        if (!run) return false;
        await deleteFlowRun(tx, run);
        return true;
      });
      if (!deleted) throw new HttpError(404, NOT_FOUND);
      return reply.code(204).send();
    });

    app.post("/flow_runs/filter", { schema: { body: api.Body_read_flow_runs_flow_runs_filter_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const criteria = await runCriteriaOf(db, { ...body, work_queues: body.work_pool_queues });
      const runs = await db.flowRuns.read({ ...criteria, sort: body.sort ?? "ID_DESC", limit, offset: body.offset ?? 0 });
      const at = now();
      return runs.map((run) => flowRunResponse(run, at));
    });

    app.post("/flow_runs/count", { schema: { body: api.Body_count_flow_runs_flow_runs_count_post } }, async (request) => {
      const body = request.body;
      return db.flowRuns.count(await runCriteriaOf(db, { ...body, work_queues: body.work_pool_queues }));
    });

    app.post("/flow_runs/paginate", { schema: { body: api.Body_paginate_flow_runs_flow_runs_paginate_post } }, async (request) => {
      const body = request.body;
      const limit = limitOf(body.limit);
      const page = body.page ?? 1;
      const criteria = await runCriteriaOf(db, { ...body, work_queues: body.work_pool_queues });
      const [runs, count] = await Promise.all([
        db.flowRuns.read({ ...criteria, sort: body.sort ?? "ID_DESC", limit, offset: (page - 1) * limit }),
        db.flowRuns.count(criteria),
      ]);
      const at = now();
      return paginated(
        runs.map((run) => flowRunResponse(run, at)),
        count,
        limit,
        page,
      );
    });

    app.post("/flow_runs/history", { schema: { body: api.Body_flow_run_history_flow_runs_history_post } }, async (request) =>
      runHistory(db, "flowRuns", request.body),
    );

    app.post("/flow_runs/lateness", { schema: { body: api.Body_average_flow_run_lateness_flow_runs_lateness_post } }, async (request) => {
      const body = request.body;
      return db.flowRuns.averageLateness(await runCriteriaOf(db, { ...body, work_queues: body.work_pool_queues }));
    });

    app.post("/flow_runs/bulk_delete", { schema: { body: api.Body_bulk_delete_flow_runs_flow_runs_bulk_delete_post } }, async (request) => {
      const body = request.body;
      const deleted = await db.transaction(async (tx) => {
        const runs = await tx.flowRuns.read({ flow_runs: body.flow_runs ?? null, limit: body.limit ?? BULK_LIMIT });
        for (const run of runs) await deleteFlowRun(tx, run);
        return runs.map((run) => run.id);
      });
      return { deleted };
    });

    app.get("/flow_runs/:id/graph", { schema: { params: IdParams } }, async (request, reply) => {
      const run = await db.flowRuns.get(request.params.id);
      if (!run) return objectNotFound(reply, `Flow run with id ${request.params.id} not found`);
      const tasks = await db.taskRuns.read({ flow_runs: { id: { any_: [run.id] } } });
      const at = now();
      return tasks.map((task) => dependencyResult(task, at));
    });

    app.get("/flow_runs/:id/graph-v2", { schema: { params: IdParams, querystring: GraphQuery } }, async (request, reply) => {
      const run = await db.flowRuns.get(request.params.id);
      if (!run) return objectNotFound(reply, `Flow run ${request.params.id} not found`);
      return flowRunGraph(db, run, request.query.since ?? null);
    });

    app.get("/flow_runs/:id/logs/download", { schema: { params: IdParams } }, async (request, reply) => {
      const run = await db.flowRuns.get(request.params.id);
      if (!run) throw new HttpError(404, NOT_FOUND);
      const filename = pythonQuote(`${run.name}-logs.csv`);
      return reply
        .header("content-type", "text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="flow-run-logs.csv"; filename*=UTF-8''${filename}`)
        .send(Readable.from(logLines(db, run.id)));
    });

    app.get("/flow_run_states/:id", { schema: { params: IdParams } }, async (request) => {
      const state = await db.flowRuns.getState(request.params.id);
      if (!state) throw new HttpError(404, "Flow run state not found");
      return stateResponse(state);
    });

    app.get("/flow_run_states/", { schema: { querystring: StatesQuery } }, async (request) => {
      const states = await db.flowRuns.readStates(request.query.flow_run_id);
      return states.map(stateResponse);
    });
  };
}

/**
 * Prefect allows new job variables only on a SCHEDULED run of a deployment, and checks them (over the
 * deployment's) against the variables schema of the deployment's work pool.
 */
async function checkJobVariablesUpdate(tx: Repositories, run: FlowRun, jobVariables: Record<string, unknown>): Promise<void> {
  if (!run.state) throw new HttpError(400, "Flow run state is required to update job variables but none exists");
  if (run.state.type !== "SCHEDULED") throw new HttpError(400, `Job variables for a flow run in state ${run.state.type} cannot be updated`);
  const deployment = run.deployment_id ? await tx.deployments.get(run.deployment_id) : null;
  if (!deployment) throw new HttpError(400, "A deployment for the flow run could not be found");
  const queue = deployment.work_queue_id ? await tx.workPools.getQueue(deployment.work_queue_id) : null;
  const pool = queue ? await tx.workPools.get(queue.work_pool_id) : null;
  if (!pool) return;
  const problem = validateJobVariables(pool.base_job_template, deployment.job_variables, jobVariables);
  if (problem) {
    const message = `Error updating flow run: ${problem}`;
    throw new InvalidError(message, [{ path: ["job_variables"], message }]);
  }
}

/** Label values Prefect keeps (KeyValueLabels: strings, numbers, booleans); 422 naming each other one. */
function labelsOf(body: Record<string, unknown>): Labels {
  const problems = Object.entries(body).filter(([, value]) => !["string", "number", "boolean"].includes(typeof value));
  if (problems.length > 0) {
    const message = "Input should be a valid string, number or boolean";
    throw new InvalidError(message, problems.map(([key]) => ({ path: [key], message })));
  }
  return body as Labels;
}

/**
 * Deletes a run (its states and task runs go with it) and its logs, as Prefect's delete does; an
 * active run of a deployment with a concurrency limit gives its slot back.
 */
async function deleteFlowRun(tx: Repositories, run: FlowRun): Promise<void> {
  if (run.deployment_id && run.state_type && ["PENDING", "RUNNING", "CANCELLING"].includes(run.state_type)) {
    const deployment = await tx.deployments.get(run.deployment_id);
    if (deployment?.concurrency_limit_id) await tx.concurrencyLimits.decrementActiveSlots({ ids: [deployment.concurrency_limit_id] }, 1);
  }
  await tx.flowRuns.delete(run.id);
  await tx.logs.delete({ flow_run_id: { any_: [run.id] } });
}

/** Prefect's DependencyResult for one task run of the graph (v1). */
function dependencyResult(task: TaskRun, at: string) {
  const upstream = new Map<string, { input_type: "task_run"; id: string }>();
  for (const inputs of Object.values(task.task_inputs)) {
    if (!Array.isArray(inputs)) continue;
    for (const input of inputs) {
      if (isRecord(input) && input.input_type === "task_run" && typeof input.id === "string") upstream.set(input.id, { input_type: "task_run", id: input.id });
    }
  }
  const running = task.state_type === "RUNNING" && task.state_timestamp ? Math.max(0, (Date.parse(at) - Date.parse(task.state_timestamp)) / 1000) : 0;
  return {
    id: task.id,
    name: task.name,
    upstream_dependencies: [...upstream.values()],
    state: task.state ? stateResponse(task.state) : null,
    expected_start_time: task.expected_start_time,
    start_time: task.start_time,
    end_time: task.end_time,
    total_run_time: task.total_run_time,
    estimated_run_time: task.total_run_time + running,
    untrackable_result: task.state?.state_details.untrackable_result === true,
  };
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

interface GraphNode {
  kind: "flow-run" | "task-run";
  id: string;
  label: string;
  state_type: State["type"] | null;
  start_time: string;
  end_time: string | null;
  /** Upstream ids this node's inputs refer to, and the ids of the tasks it runs inside (`__parents__`). */
  upstream: string[];
  encapsulating: string[];
}

/**
 * Prefect's graph (v2) of a flow run: its task runs, a subflow run in place of the task run that
 * tracks it, edges from task inputs, artifacts and the run's states. Only nodes that have started
 * (or are expected to) are shown, and of those the ones still running or ended since `since`.
 */
async function flowRunGraph(db: Repositories, run: FlowRun, since: string | null) {
  const tasks = await db.taskRuns.read({ task_runs: { flow_run_id: { any_: [run.id] } } });
  const subflows = tasks.length > 0 ? await db.flowRuns.read({ flow_runs: { parent_flow_run_id: { any_: [run.id] } } }) : [];
  const flowIds = [...new Set(subflows.map((s) => s.flow_id))];
  const flows = flowIds.length > 0 ? await db.flows.read({ flows: { id: { any_: flowIds } } }) : [];
  const flowNames = new Map(flows.map((f) => [f.id, f.name]));
  const subflowsByTask = new Map<string, FlowRun[]>();
  for (const subflow of subflows) {
    if (!subflow.parent_task_run_id) continue;
    subflowsByTask.set(subflow.parent_task_run_id, [...(subflowsByTask.get(subflow.parent_task_run_id) ?? []), subflow]);
  }

  const nodes: GraphNode[] = [];
  for (const task of tasks) {
    const upstream: string[] = [];
    const encapsulating: string[] = [];
    for (const [key, inputs] of Object.entries(task.task_inputs)) {
      if (!Array.isArray(inputs)) continue;
      for (const input of inputs) {
        if (isRecord(input) && typeof input.id === "string") (key === "__parents__" ? encapsulating : upstream).push(input.id.toLowerCase());
      }
    }
    const runs: (FlowRun | null)[] = subflowsByTask.get(task.id) ?? [null];
    for (const subflow of runs) {
      const start = subflow?.start_time ?? subflow?.expected_start_time ?? task.start_time ?? task.expected_start_time;
      if (!start) continue;
      const flowName = subflow ? flowNames.get(subflow.flow_id) : undefined;
      nodes.push({
        kind: subflow ? "flow-run" : "task-run",
        id: subflow?.id ?? task.id,
        label: subflow && flowName !== undefined ? `${flowName} / ${subflow.name}` : task.name,
        state_type: subflow?.state_type ?? task.state_type,
        start_time: start,
        end_time: subflow?.end_time ?? task.end_time ?? (task.state_type === "COMPLETED" ? task.expected_start_time : null),
        upstream,
        encapsulating,
      });
    }
  }

  const byId = new Map(nodes.map((n) => [n.id, n]));
  const byStart = (a: GraphNode, b: GraphNode) => (a.start_time < b.start_time ? -1 : a.start_time > b.start_time ? 1 : 0);
  const edges = (ids: Iterable<string>) =>
    [...new Set(ids)]
      .map((id) => byId.get(id))
      .filter((n): n is GraphNode => n !== undefined)
      .sort(byStart)
      .map((n) => ({ id: n.id }));
  const children = new Map<string, string[]>();
  for (const node of nodes) {
    for (const parent of new Set(node.upstream)) {
      if (byId.has(parent)) children.set(parent, [...(children.get(parent) ?? []), node.id]);
    }
  }

  const shown = nodes
    .filter((n) => n.state_type !== null && (since === null || n.end_time === null || n.end_time >= since))
    .sort((a, b) => byStart(a, b) || (a.end_time === b.end_time ? 0 : a.end_time === null ? 1 : b.end_time === null ? -1 : a.end_time < b.end_time ? -1 : 1));
  if (shown.length > MAX_GRAPH_NODES) throw new HttpError(400, `The graph of flow run ${run.id} has more than ${MAX_GRAPH_NODES} nodes.`);

  const artifacts = await graphArtifacts(db, run.id);
  const graphNodes = shown.map((node) => {
    const parents = edges(node.upstream);
    return [
      node.id,
      {
        kind: node.kind,
        id: node.id,
        label: node.label,
        state_type: node.state_type,
        start_time: node.start_time,
        end_time: node.end_time,
        parents,
        children: edges(children.get(node.id) ?? []),
        encapsulating: edges(node.encapsulating),
        artifacts: artifacts.get(node.id) ?? [],
      },
    ] as const;
  });
  const states = await db.flowRuns.readStates(run.id);
  return {
    start_time: run.start_time ?? run.expected_start_time,
    end_time: run.end_time,
    root_node_ids: graphNodes.filter(([, node]) => node.parents.length === 0).map(([id]) => id),
    nodes: graphNodes,
    artifacts: artifacts.get(null) ?? [],
    states: states.map((s) => ({ id: s.id, timestamp: s.timestamp, type: s.type, name: s.name })),
  };
}

/** The run's artifacts (results excluded) for the graph, oldest first, by task run (null: the flow run's own). */
async function graphArtifacts(db: Repositories, flowRunId: string) {
  const all = await db.artifacts.read({ artifacts: { flow_run_id: { any_: [flowRunId] } } });
  const kept = all
    .filter((a) => a.type !== null && a.type !== "result")
    .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1))
    .slice(0, MAX_GRAPH_ARTIFACTS);
  const latest = new Map<string, string | null>();
  for (const key of new Set(kept.map((a) => a.key).filter((k): k is string => k !== null))) {
    latest.set(key, (await db.artifacts.getLatest(key))?.latest_id ?? null);
  }
  const byTask = new Map<string | null, ReturnType<typeof graphArtifact>[]>();
  for (const artifact of kept) {
    const entry = graphArtifact(artifact, artifact.key === null || latest.get(artifact.key) === artifact.id);
    byTask.set(artifact.task_run_id, [...(byTask.get(artifact.task_run_id) ?? []), entry]);
  }
  return byTask;
}

function graphArtifact(artifact: Artifact, isLatest: boolean) {
  return {
    id: artifact.id,
    created: artifact.created,
    key: artifact.key,
    type: artifact.type,
    is_latest: isLatest,
    // Only progress artifacts carry their data in the graph.
    data: artifact.type === "progress" ? artifact.data : null,
  };
}

/** The CSV Prefect's download streams: a header, then one row per log of the run, oldest first. */
async function* logLines(db: Repositories, flowRunId: string): AsyncGenerator<string> {
  yield csvRow(["timestamp", "level", "flow_run_id", "task_run_id", "message"]);
  for (let offset = 0; ; offset += LOG_PAGE) {
    const logs = await db.logs.read({ filter: { flow_run_id: { any_: [flowRunId] } }, sort: "TIMESTAMP_ASC", limit: LOG_PAGE, offset });
    if (logs.length === 0) return;
    yield logs.map(logRow).join("");
  }
}

function logRow(log: Log): string {
  return csvRow([pythonTimestamp(log.timestamp), String(log.level), log.flow_run_id ?? "", log.task_run_id ?? "", log.message]);
}

/** A row as Python's csv.writer writes it (minimal quoting, CRLF). */
function csvRow(fields: string[]): string {
  return `${fields.map((f) => (/[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f)).join(",")}\r\n`;
}

/** A timestamp as Python prints a UTC datetime: `2024-01-02 03:04:05.123456+00:00` (no fraction when zero). */
function pythonTimestamp(ts: string): string {
  const [date, time] = ts.replace(/Z$/, "").split("T");
  return `${date} ${time?.replace(/\.0{6}$/, "")}+00:00`;
}

/** Python's urllib.parse.quote with no safe characters. */
function pythonQuote(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A taken unique key or a reference to a missing row, as Prefect answers both (409). */
export function integrityConflict(error: unknown): never {
  if (error instanceof AlreadyExistsError || isMissingReference(error)) throw INTEGRITY_CONFLICT;
  throw error;
}

/**
 * Prefect's system labels of a new run: those of its deployment with `prefect.flow.id` and
 * `prefect.deployment.id`, or, without a (known) deployment, those of its flow with `prefect.flow.id`.
 * The caller's labels go over them.
 */
async function flowRunLabels(tx: Repositories, flowId: string, deploymentId: string | null): Promise<Labels> {
  const deployment = deploymentId ? await tx.deployments.get(deploymentId) : null;
  if (deployment) return { ...(deployment.labels ?? {}), "prefect.flow.id": deployment.flow_id, "prefect.deployment.id": deployment.id };
  const flow = await tx.flows.get(flowId);
  return { ...(flow?.labels ?? {}), "prefect.flow.id": flowId };
}

/** Prefect's WorkerLookups: the named queue of the named pool, or the pool's default queue (404s as Prefect words them). */
async function workQueueIdOf(tx: Repositories, poolName: string, queueName: string | null): Promise<string | null> {
  if (queueName) {
    const queue = await tx.workPools.getQueueByName(poolName, queueName);
    if (!queue) throw new HttpError(404, `Work pool queue '${poolName}/${queueName}' not found.`);
    return queue.id;
  }
  const pool = await tx.workPools.getByName(poolName);
  if (!pool) throw new HttpError(404, `Work pool "${poolName}" not found.`);
  return pool.default_queue_id;
}

interface ResumeOutcome {
  readonly state: ReturnType<typeof orchestrationResponse>["state"];
  readonly status: OrchestrationResult["status"];
  readonly details: OrchestrationResult["details"];
  readonly written: boolean;
  readonly events: OrchestrationResult["events"];
}

/**
 * Prefect's resume: only a PAUSED run resumes; when its pause asked for input, the input (hydrated)
 * must fit the schema the run stored, and is stored under the response key once the run resumed. A
 * suspended run (`pause_reschedule`) is rescheduled ("Resuming"), another one proposed RUNNING,
 * through the flow policy. Null for an unknown run.
 */
async function resumeFlowRun(
  tx: Repositories,
  id: string,
  runInput: Record<string, unknown> | null,
  options: { clientVersion: string | null; orchestrationParameters: Record<string, unknown>; leases: LeaseStorage },
): Promise<ResumeOutcome | null> {
  const run = await tx.flowRuns.get(id);
  if (!run) return null;
  const state = run.state;
  if (state?.type !== "PAUSED") {
    return { state: null, status: "ABORT", details: { type: "abort_details", reason: "Cannot resume a flow run that is not paused." }, written: false, events: [] };
  }
  const current = stateResponse(state);
  // Prefect answers these refusals with REJECT and abort details.
  const refuse = (reason: string): ResumeOutcome => ({ state: current, status: "REJECT", details: { type: "abort_details", reason }, written: false, events: [] });
  const keyset = state.state_details.run_input_keyset;
  const keys = isRecord(keyset) && Object.keys(keyset).length > 0 ? (keyset as Record<string, unknown>) : null;
  let input = runInput;
  if (keys) {
    try {
      input = await hydrate(runInput ?? {}, async (name) => (await tx.variables.getByName(name))?.value);
    } catch (error) {
      if (error instanceof HydrationError) return refuse(`Error hydrating run input: ${error.message}`);
      throw error;
    }
    const stored = await tx.flowRunInputs.get(run.id, String(keys.schema));
    if (!stored) return refuse("Run input schema not found.");
    let schema: unknown;
    try {
      schema = JSON.parse(stored.value);
    } catch {
      return refuse("Run input schema is not valid JSON.");
    }
    const problem = validateRunInput(input, schema);
    if (problem) return refuse(problem);
  }
  const proposed = state.state_details.pause_reschedule
    ? { type: "SCHEDULED", name: "Resuming", state_details: { scheduled_time: now() } }
    : { type: "RUNNING" };
  const result = await setFlowRunState(tx, run.id, proposed, options);
  if (keys && input && Object.keys(input).length > 0 && result.status === "ACCEPT") {
    await tx.flowRunInputs.create({ flow_run_id: run.id, key: String(keys.response), value: JSON.stringify(input) });
  }
  return { ...orchestrationResponse(result), written: result.written, events: result.events };
}
