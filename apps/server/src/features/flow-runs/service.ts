/**
 * Flow runs: created through orchestration (with Prefect's system labels and the work queue named by
 * pool and queue), state changes (one run, many runs, resuming a paused run), reads, updates, labels,
 * deletion, histories, lateness, graphs and the logs download. The events orchestration emits are
 * published once their transaction has committed.
 */
import {
  createFlowRun as createRun,
  type KnownRows,
  MarkLateRunsPolicy,
  normalizeFlowRunPolicy,
  type OrchestrationResult,
  type PrefectEvent,
  setFlowRunState as setState,
  type StateInput,
} from "@prefect/orchestration";
import {
  CANCELLABLE_STATE_TYPES,
  type FlowRun,
  type FlowRunCreate,
  type FlowRunReadOptions,
  InvalidError,
  type Labels,
  NotFoundError,
  now,
  randomRunName,
  type Repositories,
  type State,
  type Timestamp,
} from "@prefect/db";
import type { AppContext } from "../../context.js";
import { asIntegrityConflict, badRequest, notFound, ObjectNotFoundError } from "../../prefect/errors.js";
import { HydrationError, hydrate, workspaceVariables } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { schemaProblem } from "../../prefect/json-schema.js";
import { jobVariablesProblem } from "../../prefect/job-variables.js";
import { type HistoryBody, type RelatedFilters, runCriteriaOf, runHistory } from "../../prefect/run-criteria.js";
import { orchestrationResponse, stateResponse } from "../../prefect/run-responses.js";
import { checkParameterSize, labelsOf, runName } from "../../prefect/runs.js";
import { blockDataLookup } from "../blocks/service.js";
import { publishEvents } from "../events/bus.js";

const NOT_FOUND = "Flow run not found";

/** Prefect's BULK_OPERATION_LIMIT. */
export const BULK_LIMIT = 50;

type Context = Pick<AppContext, "db" | "events" | "settings">;

/** What orchestration reads from the request: the client's API and Prefect versions. */
export interface ClientInfo {
  readonly apiVersion: string | null;
  readonly clientVersion: string | null;
}

const missingRun = (id: string) => new ObjectNotFoundError(`Flow run with id ${id} not found`);

// ---- Creating -----------------------------------------------------------------------------------

export type FlowRunCreateInput = Omit<FlowRunCreate, "name" | "empirical_policy" | "labels" | "state" | "work_queue_id" | "work_queue_name" | "created_by"> & {
  readonly name?: string | null | undefined;
  readonly empirical_policy?: Record<string, unknown> | null | undefined;
  readonly labels?: Labels | null | undefined;
  readonly state?: StateInput | null | undefined;
  readonly work_pool_name?: string | null | undefined;
  readonly work_queue_name?: string | null | undefined;
};

/**
 * Creates a run (or returns the one with its idempotency key) with its first state through
 * orchestration. Its labels are Prefect's system labels (its deployment's, or its flow's) under the
 * caller's; its queue is the one named by pool and queue name.
 */
export async function createFlowRun(context: Context, input: FlowRunCreateInput, client: ClientInfo, createdBy: FlowRun["created_by"]) {
  checkParameterSize(input.parameters);
  const { state, work_pool_name: poolName, work_queue_name: queueName, labels, name, empirical_policy: policy, ...fields } = input;
  // Read before the run's transaction: a run copies its labels and queue as they are when it is created.
  const [workQueueId, { labels: systemLabels, known }] = await Promise.all([
    poolName ? workQueueIdOf(context.db, poolName, queueName ?? null) : null,
    flowRunLabels(context.db, input.flow_id, input.deployment_id ?? null),
  ]);
  const outcome = await createRun(
    context.db,
    {
      ...fields,
      name: runName(name),
      empirical_policy: normalizeFlowRunPolicy(policy),
      labels: { ...systemLabels, ...(labels ?? {}) },
      work_queue_name: queueName ?? null,
      work_queue_id: workQueueId,
      created_by: createdBy,
      state: state ?? undefined,
    },
    { orchestrationParameters: { "api-version": client.apiVersion }, known },
  ).catch(asIntegrityConflict);
  publishEvents(context.events, outcome.orchestration?.events ?? []);
  return outcome;
}

/**
 * Prefect's system labels of a new run: those of its deployment with `prefect.flow.id` and
 * `prefect.deployment.id`, or, without a (known) deployment, those of its flow with `prefect.flow.id`;
 * with the row they came from, which the run's events name.
 */
async function flowRunLabels(db: Repositories, flowId: string, deploymentId: string | null): Promise<{ labels: Labels; known: KnownRows }> {
  const deployment = deploymentId ? await db.deployments.get(deploymentId) : null;
  if (deployment) {
    return { labels: { ...(deployment.labels ?? {}), "prefect.flow.id": deployment.flow_id, "prefect.deployment.id": deployment.id }, known: { deployment } };
  }
  const flow = await db.flows.get(flowId);
  return { labels: { ...(flow?.labels ?? {}), "prefect.flow.id": flowId }, known: { flow } };
}

/** Prefect's WorkerLookups: the named queue of the named pool, or the pool's default queue (404s as Prefect words them). */
async function workQueueIdOf(tx: Repositories, poolName: string, queueName: string | null): Promise<string | null> {
  if (queueName) {
    const queue = await tx.workQueues.getByName(poolName, queueName);
    if (!queue) throw notFound(`Work pool queue '${poolName}/${queueName}' not found.`);
    return queue.id;
  }
  const pool = await tx.workPools.getByName(poolName);
  if (!pool) throw notFound(`Work pool "${poolName}" not found.`);
  return pool.default_queue_id;
}

// ---- State changes ------------------------------------------------------------------------------

function stateOptions(client: ClientInfo, force = false) {
  return { force, clientVersion: client.clientVersion, orchestrationParameters: { "api-version": client.apiVersion } };
}

/** Proposes a state through orchestration (forced past the policy when `force`). */
export async function setFlowRunState(context: Context, id: string, state: StateInput, client: ClientInfo, force = false): Promise<OrchestrationResult> {
  let result: OrchestrationResult;
  try {
    result = await setState(context.db, id, state, stateOptions(client, force));
  } catch (error) {
    if (error instanceof NotFoundError) throw missingRun(id);
    throw error;
  }
  publishEvents(context.events, result.events);
  return result;
}

/**
 * Proposes a state to each run the filter selects (at most `limit`), one transaction per run, one
 * after the other, as Prefect does: a run that cannot change state is reported (ABORT with the
 * reason) without holding up the others.
 */
export async function bulkSetFlowRunState(
  context: Context,
  filter: FlowRunReadOptions["flow_runs"],
  limit: number,
  state: StateInput,
  client: ClientInfo,
  force: boolean,
) {
  const runs = await context.db.flowRuns.read({ flow_runs: filter, limit });
  const results = [];
  for (const run of runs) {
    try {
      const result = await setState(context.db, run.id, state, stateOptions(client, force));
      publishEvents(context.events, result.events);
      results.push({ flow_run_id: run.id, ...orchestrationResponse(result) });
    } catch (error) {
      results.push({ flow_run_id: run.id, status: "ABORT", state: null, details: { type: "abort_details", reason: (error as Error).message } });
    }
  }
  return results;
}

export interface ResumeOutcome {
  readonly state: ReturnType<typeof orchestrationResponse>["state"];
  readonly status: OrchestrationResult["status"];
  readonly details: OrchestrationResult["details"];
  readonly written: boolean;
}

/**
 * Prefect's resume: only a PAUSED run resumes; when its pause asked for input, the input (hydrated)
 * must fit the schema the run stored, and is stored under the response key once the run resumed. A
 * suspended run (`pause_reschedule`) is rescheduled ("Resuming"), another one proposed RUNNING,
 * through the flow policy.
 */
export async function resumeFlowRun(context: Context, id: string, runInput: Record<string, unknown> | null, client: ClientInfo): Promise<ResumeOutcome> {
  const options = { clientVersion: client.clientVersion, orchestrationParameters: { "api-version": client.apiVersion } };
  const outcome = await context.db.transaction((tx) => resume(tx, id, runInput, options));
  if (outcome === null) throw notFound(NOT_FOUND);
  publishEvents(context.events, outcome.events);
  const { events: _events, ...answer } = outcome;
  return answer;
}

async function resume(
  tx: Repositories,
  id: string,
  runInput: Record<string, unknown> | null,
  options: { clientVersion: string | null; orchestrationParameters: Record<string, unknown> },
): Promise<(ResumeOutcome & { events: readonly PrefectEvent[] }) | null> {
  const run = await tx.flowRuns.get(id);
  if (!run) return null;
  const state = run.state;
  if (state?.type !== "PAUSED") {
    return { state: null, status: "ABORT", details: { type: "abort_details", reason: "Cannot resume a flow run that is not paused." }, written: false, events: [] };
  }
  const current = stateResponse(state);
  // Prefect answers these refusals with REJECT and abort details.
  const refuse = (reason: string) => ({ state: current, status: "REJECT" as const, details: { type: "abort_details" as const, reason }, written: false, events: [] });
  const keyset = state.state_details.run_input_keyset;
  const keys = isRecord(keyset) && Object.keys(keyset).length > 0 ? keyset : null;
  let input = runInput;
  if (keys) {
    try {
      input = await hydrate(runInput ?? {}, workspaceVariables(tx));
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
    const problem = schemaProblem(input, schema, { preprocess: false });
    if (problem) return refuse(`Reason: ${problem.message}`);
  }
  const proposed = state.state_details.pause_reschedule ? { type: "SCHEDULED", name: "Resuming", state_details: { scheduled_time: now() } } : { type: "RUNNING" };
  const result = await setState(tx, run.id, proposed, options);
  if (keys && input && Object.keys(input).length > 0 && result.status === "ACCEPT") {
    await tx.flowRunInputs.create({ flow_run_id: run.id, key: String(keys.response), value: JSON.stringify(input) });
  }
  return { ...orchestrationResponse(result), written: result.written, events: result.events };
}

// ---- Reading ------------------------------------------------------------------------------------

export async function readFlowRun(db: Repositories, id: string): Promise<FlowRun> {
  const run = await db.flowRuns.get(id);
  if (!run) throw notFound(NOT_FOUND);
  return run;
}

/** The runs a read body selects (its related filters resolved), a page of them. */
export async function readFlowRuns(db: Repositories, filters: RelatedFilters, page: Pick<FlowRunReadOptions, "sort" | "limit" | "offset">): Promise<FlowRun[]> {
  return db.flowRuns.read({ ...(await runCriteriaOf(db, filters)), ...page });
}

export async function countFlowRuns(db: Repositories, filters: RelatedFilters): Promise<number> {
  return db.flowRuns.count(await runCriteriaOf(db, filters));
}

/** A page of the runs a read body selects, and how many it selects in all. */
export async function paginateFlowRuns(db: Repositories, filters: RelatedFilters, page: Pick<FlowRunReadOptions, "sort" | "limit" | "offset">) {
  const criteria = await runCriteriaOf(db, filters);
  const [runs, count] = await Promise.all([db.flowRuns.read({ ...criteria, ...page }), db.flowRuns.count(criteria)]);
  return { runs, count };
}

export const flowRunHistory = (db: Repositories, body: HistoryBody) => runHistory(db, "flowRuns", body);

export async function averageFlowRunLateness(db: Repositories, filters: RelatedFilters): Promise<number | null> {
  return db.flowRuns.averageLateness(await runCriteriaOf(db, filters));
}

export async function readFlowRunState(db: Repositories, id: string): Promise<State> {
  const state = await db.flowRuns.getState(id);
  if (!state) throw notFound("Flow run state not found");
  return state;
}

export const readFlowRunStates = (db: Repositories, flowRunId: string) => db.flowRuns.readStates(flowRunId);

/** The run, for its graphs (Prefect's ObjectNotFoundError for an unknown one, worded as `message`). */
export async function readRunForGraph(db: Repositories, id: string, message: string): Promise<FlowRun> {
  const run = await db.flowRuns.get(id);
  if (!run) throw new ObjectNotFoundError(message);
  return run;
}

export const readTaskRunsOf = (db: Repositories, flowRunId: string) => db.taskRuns.read({ flow_runs: { id: { any_: [flowRunId] } } });

// ---- Changing -----------------------------------------------------------------------------------

export interface FlowRunUpdateInput {
  readonly name?: string | null | undefined;
  readonly flow_version?: string | null | undefined;
  readonly parameters?: Record<string, unknown> | undefined;
  readonly empirical_policy?: Record<string, unknown> | undefined;
  readonly tags?: string[] | undefined;
  readonly infrastructure_pid?: string | null | undefined;
  readonly job_variables?: Record<string, unknown> | null | undefined;
}

/** Updates the fields given (`name` null or empty draws a new name); new job variables are checked. */
export async function updateFlowRun(context: Context, id: string, body: FlowRunUpdateInput): Promise<void> {
  checkParameterSize(body.parameters);
  await context.db.transaction(async (tx) => {
    const run = await tx.flowRuns.get(id);
    if (!run) throw notFound(NOT_FOUND);
    if (body.job_variables !== undefined && body.job_variables !== null) await checkJobVariablesUpdate(context, tx, run, body.job_variables);
    await tx.flowRuns.update(run.id, {
      ...("name" in body ? { name: runName(body.name) ?? randomRunName() } : {}),
      ...("flow_version" in body ? { flow_version: body.flow_version ?? null } : {}),
      ...(body.parameters !== undefined ? { parameters: body.parameters } : {}),
      ...(body.empirical_policy !== undefined ? { empirical_policy: normalizeFlowRunPolicy(body.empirical_policy) } : {}),
      ...(body.tags !== undefined ? { tags: body.tags } : {}),
      ...("infrastructure_pid" in body ? { infrastructure_pid: body.infrastructure_pid ?? null } : {}),
      ...("job_variables" in body ? { job_variables: body.job_variables ?? null } : {}),
    });
  });
}

/**
 * Prefect allows new job variables only on a SCHEDULED run of a deployment, and checks them (over the
 * deployment's) against the variables schema of the deployment's work pool.
 */
async function checkJobVariablesUpdate(context: Context, tx: Repositories, run: FlowRun, jobVariables: Record<string, unknown>): Promise<void> {
  if (!run.state) throw badRequest("Flow run state is required to update job variables but none exists");
  if (run.state.type !== "SCHEDULED") throw badRequest(`Job variables for a flow run in state ${run.state.type} cannot be updated`);
  const deployment = run.deployment_id ? await tx.deployments.get(run.deployment_id) : null;
  if (!deployment) throw badRequest("A deployment for the flow run could not be found");
  const queue = deployment.work_queue_id ? await tx.workQueues.get(deployment.work_queue_id) : null;
  const pool = queue ? await tx.workPools.get(queue.work_pool_id) : null;
  if (!pool) return;
  const problem = await jobVariablesProblem(pool.base_job_template, [deployment.job_variables, jobVariables], {
    ignoreRequired: false,
    ignoreInvalidDefaults: true,
    blockData: blockDataLookup(context, tx),
  });
  if (!problem) return;
  const message = problem.kind === "invalid_schema" ? `Invalid schema: ${problem.reason}` : `Error updating flow run: ${problem.message}`;
  throw new InvalidError(message, [{ path: problem.kind === "invalid_schema" ? [] : ["job_variables"], message }]);
}

/** Adds labels to the run's (a label given again takes the new value). */
export async function updateFlowRunLabels(db: AppContext["db"], id: string, body: Record<string, unknown>): Promise<void> {
  const labels = labelsOf(body);
  const found = await db.transaction(async (tx) => {
    const run = await tx.flowRuns.get(id);
    if (!run) return false;
    await tx.flowRuns.update(run.id, { labels: { ...(run.labels ?? {}), ...labels } });
    return true;
  });
  if (!found) throw missingRun(id);
}

/**
 * Deletes a run (its states and task runs go with it) and its logs, as Prefect's delete does; an
 * active run of a deployment with a concurrency limit gives its slot back.
 */
async function deleteRun(tx: Repositories, run: FlowRun): Promise<void> {
  if (run.deployment_id && run.state_type && ["PENDING", "RUNNING", "CANCELLING"].includes(run.state_type)) {
    const deployment = await tx.deployments.get(run.deployment_id);
    if (deployment?.concurrency_limit_id) await tx.concurrencyLimits.decrementActiveSlots({ ids: [deployment.concurrency_limit_id] }, 1);
  }
  await tx.flowRuns.delete(run.id);
  await tx.logs.delete({ flow_run_id: { any_: [run.id] } });
}

export async function deleteFlowRun(db: AppContext["db"], id: string): Promise<void> {
  const deleted = await db.transaction(async (tx) => {
    const run = await tx.flowRuns.get(id);
    if (!run) return false;
    await deleteRun(tx, run);
    return true;
  });
  if (!deleted) throw notFound(NOT_FOUND);
}

/** Deletes the runs the filter selects (at most `limit`); returns their ids. */
export function bulkDeleteFlowRuns(db: AppContext["db"], filter: FlowRunReadOptions["flow_runs"], limit: number): Promise<string[]> {
  return db.transaction(async (tx) => {
    const runs = await tx.flowRuns.read({ flow_runs: filter, limit });
    for (const run of runs) await deleteRun(tx, run);
    return runs.map((run) => run.id);
  });
}

// ---- What the loops do to runs ------------------------------------------------------------------

/** Why the cancellation clean-up cancels a run. */
export const PARENT_CANCELLED_MESSAGE = "The parent flow run was cancelled.";
export const CANCELLING_TIMEOUT_CANCELLED_MESSAGE = "Flow run cancellation timed out; marked this flow run as Cancelled.";

/** Whether a run in this state can still be cancelled (it has not finished). */
export const isCancellable = (stateType: string | null | undefined) =>
  stateType !== null && stateType !== undefined && (CANCELLABLE_STATE_TYPES as readonly string[]).includes(stateType);

/** Runs `change` in a transaction and publishes its events once committed; null when it changed nothing. */
async function changeRun(context: Context, change: (tx: Repositories) => Promise<OrchestrationResult | null>): Promise<OrchestrationResult | null> {
  const result = await context.db.transaction(change);
  if (result) publishEvents(context.events, result.events);
  return result;
}

/** The flow runs still SCHEDULED ("Scheduled") whose start is due before `threshold`, the earliest first. */
export const readRunsToMarkLate = (db: Repositories, threshold: Timestamp, limit: number) =>
  db.flowRuns.read({
    flow_runs: { state: { type: { any_: ["SCHEDULED"] }, name: { any_: ["Scheduled"] } }, next_scheduled_start_time: { before_: threshold } },
    sort: "NEXT_SCHEDULED_START_TIME_ASC",
    limit,
  });

/**
 * Proposes Prefect's `Late` state (SCHEDULED, same scheduled time) through MarkLateRunsPolicy, once
 * the run is locked and found still Scheduled and due before `threshold`; null when it no longer is.
 */
export function markFlowRunLate(context: Context, id: string, threshold: Timestamp): Promise<OrchestrationResult | null> {
  return changeRun(context, async (tx) => {
    const run = await tx.flowRuns.getForUpdate(id);
    const due = run?.next_scheduled_start_time;
    if (run?.state_type !== "SCHEDULED" || run.state_name !== "Scheduled" || !due || due > threshold) return null;
    return setState(tx, run.id, { type: "SCHEDULED", name: "Late", state_details: { scheduled_time: due } }, { policy: MarkLateRunsPolicy });
  });
}

/**
 * A subflow run left unfinished under a cancelled flow run: proposed CANCELLING when it belongs to a
 * deployment (its worker stops its infrastructure), else CANCELLED; one already CANCELLING is left
 * to its worker. Null when the run (locked, checked again) no longer qualifies.
 */
export function cancelSubflowOfCancelledRun(context: Context, id: string): Promise<OrchestrationResult | null> {
  return changeRun(context, async (tx) => {
    const run = await tx.flowRuns.getForUpdate(id);
    if (!run?.parent_task_run_id || !isCancellable(run.state_type)) return null;
    const parentTask = await tx.taskRuns.get(run.parent_task_run_id);
    if (!parentTask?.flow_run_id) return null;
    const containing = await tx.flowRuns.get(parentTask.flow_run_id);
    if (containing?.state_type && containing.state_type !== "CANCELLED") return null;
    if (run.deployment_id && run.state_type === "CANCELLING") return null;
    const state = { type: run.deployment_id ? ("CANCELLING" as const) : ("CANCELLED" as const), message: PARENT_CANCELLED_MESSAGE };
    return setState(tx, id, state);
  });
}

/**
 * A flow run CANCELLING since before `before` (its infrastructure never confirmed), proposed
 * CANCELLED, when it is still in the CANCELLING state `stateId` found; null otherwise.
 */
export function cancelTimedOutCancellingRun(context: Context, id: string, stateId: string | undefined, before: Timestamp): Promise<OrchestrationResult | null> {
  return changeRun(context, async (tx) => {
    const run = await tx.flowRuns.getForUpdate(id);
    if (run?.state_type !== "CANCELLING" || run.state_id !== stateId || !run.state_timestamp || run.state_timestamp > before) return null;
    return setState(tx, id, { type: "CANCELLED", message: CANCELLING_TIMEOUT_CANCELLED_MESSAGE });
  });
}
