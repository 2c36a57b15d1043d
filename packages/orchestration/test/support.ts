/** Fixtures for the orchestration suites: runs in given states, on a real database. */
import { addSeconds, type Database, type Deployment, type DeploymentCreate, type FlowRun, type FlowRunCreate, now, type TaskRun, type TaskRunCreate } from "@prefect/db";
import {
  type FlowPolicy,
  type OrchestrationResult,
  type OrchestrationState,
  type SetStateOptions,
  type StateInput,
  type TaskPolicy,
  setFlowRunState,
  setTaskRunState,
  type TaskOrchestrationResult,
} from "../src/index.js";

export type RunKind = "flow" | "task";
export const RUN_KINDS: readonly RunKind[] = ["flow", "task"];

let flowCounter = 0;

export async function makeFlow(db: Database): Promise<string> {
  const { row } = await db.flows.create({ name: `flow-${process.pid}-${++flowCounter}-${Date.now()}` });
  return row.id;
}

let deploymentCounter = 0;

/** A deployment (of a new flow unless `flow_id` is given). */
export async function makeDeployment(db: Database, fields: Partial<DeploymentCreate> = {}): Promise<Deployment> {
  const flowId = fields.flow_id ?? (await makeFlow(db));
  const { row } = await db.deployments.create({ name: `deployment-${++deploymentCounter}`, ...fields, flow_id: flowId });
  return row;
}

export async function makeFlowRun(db: Database, fields: Partial<FlowRunCreate> = {}): Promise<FlowRun> {
  const flowId = fields.flow_id ?? (await makeFlow(db));
  const { row } = await db.flowRuns.create({ ...fields, flow_id: flowId, flow_version: "0.1" });
  return row;
}

export async function makeTaskRun(db: Database, fields: Partial<TaskRunCreate> = {}): Promise<TaskRun> {
  const flowRunId = fields.flow_run_id === undefined ? (await makeFlowRun(db)).id : fields.flow_run_id;
  const { row } = await db.taskRuns.create({ task_key: "my-key", dynamic_key: String(Math.random()), ...fields, flow_run_id: flowRunId });
  return row;
}

export interface InitialState {
  readonly name?: string;
  readonly details?: Record<string, unknown>;
  readonly data?: unknown;
  readonly message?: string;
}

/**
 * Forces a state onto a run, timestamped 5 seconds ago (as Prefect's `initialize_orchestration`
 * does), so that the next transition is the one under test.
 */
export async function commitState(db: Database, kind: RunKind, runId: string, type: StateInput["type"], initial: InitialState = {}): Promise<OrchestrationState> {
  const state: StateInput = {
    type,
    name: initial.name,
    message: initial.message,
    data: initial.data,
    state_details: initial.details,
    timestamp: addSeconds(now(), -5),
  };
  const result = kind === "flow" ? await setFlowRunState(db, runId, state, { force: true }) : await setTaskRunState(db, runId, state, { force: true });
  if (!result.state || !result.written) throw new Error(`could not force ${type} onto ${kind} run ${runId}: ${JSON.stringify(result.details)}`);
  return result.state;
}

/** Options for either kind of run; a policy must suit the run's kind. */
export interface ProposeOptions extends SetStateOptions {
  readonly policy?: FlowPolicy | TaskPolicy | undefined;
}

export interface Orchestrated {
  readonly runId: string;
  readonly flowRunId: string;
  readonly initial: OrchestrationState | null;
  propose(state: StateInput, options?: ProposeOptions): Promise<OrchestrationResult | TaskOrchestrationResult>;
}

export interface OrchestrationSetup {
  readonly initial?: StateInput["type"] | null;
  readonly initialState?: InitialState;
  readonly flowRun?: Partial<FlowRunCreate>;
  readonly taskRun?: Partial<TaskRunCreate>;
  /** The state type of the task run's flow run (task runs only); RUNNING by default. */
  readonly flowRunState?: StateInput["type"] | null;
  readonly flowRunStateDetails?: Record<string, unknown>;
}

/** A run of `kind` in the given initial state, and a way to propose its next state. */
export async function orchestration(db: Database, kind: RunKind, setup: OrchestrationSetup = {}): Promise<Orchestrated> {
  const flowRun = await makeFlowRun(db, setup.flowRun);
  let runId = flowRun.id;
  if (kind === "task") {
    const flowState = setup.flowRunState === undefined ? "RUNNING" : setup.flowRunState;
    if (flowState) await commitState(db, "flow", flowRun.id, flowState, { details: setup.flowRunStateDetails });
    runId = (await makeTaskRun(db, { ...setup.taskRun, flow_run_id: flowRun.id })).id;
  }
  const initial = setup.initial ? await commitState(db, kind, runId, setup.initial, setup.initialState) : null;
  return {
    runId,
    flowRunId: flowRun.id,
    initial,
    propose: (state, options = {}) =>
      kind === "flow"
        ? setFlowRunState(db, runId, state, { ...options, policy: options.policy as FlowPolicy | undefined })
        : setTaskRunState(db, runId, state, { ...options, policy: options.policy as TaskPolicy | undefined }),
  };
}

export async function readRun(db: Database, kind: RunKind, runId: string): Promise<FlowRun | TaskRun> {
  const run = kind === "flow" ? await db.flowRuns.get(runId) : await db.taskRuns.get(runId);
  if (!run) throw new Error(`${kind} run ${runId} is gone`);
  return run;
}

/** A uniform source that always returns `value`. */
export const fixedRandom = (value: number) => () => value;
