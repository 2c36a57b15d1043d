/**
 * The entry points: Prefect's `models.flow_runs.set_flow_run_state` / `models.task_runs.set_task_run_state`
 * and the initial state of `create_flow_run` / `create_task_run`.
 *
 * One call is one database transaction: the run is read with a row lock (concurrent proposals for the
 * same run take turns), the rules govern the proposal, and the state is written with the run's
 * bookkeeping by the repository's `setState`. Nothing else is done besides database work; the
 * events to publish are returned.
 */
import {
  type Database,
  type FlowRun,
  type FlowRunCreate,
  InvalidError,
  NotFoundError,
  type Repositories,
  StateTimestampTakenError,
  type StoredRunRelated,
  type TaskRun,
  type TaskRunCreate,
} from "@prefect/db";
import {
  type ContextEnvironment,
  DEFAULT_SETTINGS,
  FlowOrchestrationContext,
  type KnownRows,
  type OrchestrationContext,
  type OrchestrationEvent,
  type OrchestrationSettings,
  type SetStateStatus,
  type StateResponseDetails,
  TaskOrchestrationContext,
} from "./context.js";
import { BackgroundTaskPolicy, CoreFlowPolicy, CoreTaskPolicy, MinimalFlowPolicy, MinimalTaskPolicy } from "./policies/core.js";
import { GlobalFlowPolicy, GlobalTaskPolicy } from "./policies/global.js";
import { type FlowPolicy, governTransition, type TaskPolicy } from "./rules.js";
import { fromStoredState, type OrchestrationState, parseStateInput, type StateInput } from "./states.js";
import type { RandomSource } from "./util.js";

export interface SetStateOptions {
  /** Skip most rules (Prefect's `force`): MinimalFlowPolicy / MinimalTaskPolicy. */
  readonly force?: boolean | undefined;
  /** The client's Prefect version (`User-Agent: prefect/<version>`), for compatibility rules. */
  readonly clientVersion?: string | null | undefined;
  /** Prefect's orchestration parameters; the API passes `{"api-version": "<X-PREFECT-API-VERSION>"}`. */
  readonly orchestrationParameters?: Record<string, unknown> | undefined;
  readonly settings?: Partial<OrchestrationSettings> | undefined;
  /** Uniform random numbers for retry and wait jitter (Math.random by default). */
  readonly random?: RandomSource | undefined;
  /** Rows the caller has just read for the run, so that its events need not read them again. */
  readonly known?: KnownRows | undefined;
}

export interface SetFlowRunStateOptions extends SetStateOptions {
  /** The policy instead of CoreFlowPolicy (ignored with `force`); e.g. MarkLateRunsPolicy. */
  readonly policy?: FlowPolicy | undefined;
  /**
   * The run as the caller read it in the transaction it passes as `db`, with the run's lock held
   * (`getForUpdate`, a claim's lock, or a write of the run since), so that it need not be read again.
   * Only with `db` that transaction: a run read anywhere else may have changed since. Ignored when it
   * is another run.
   */
  readonly locked?: FlowRun | undefined;
  /**
   * What the run's events name, as `tx.flowRuns.relatedOf(id)` is reading it in the transaction passed
   * as `db`, asked for by the caller right behind its lock of the run (with `locked`), so that it goes
   * out with the lock instead of costing a round trip of its own. Ignored without `locked`.
   */
  readonly related?: Promise<StoredRunRelated | null> | undefined;
  /**
   * The transition is the last thing the transaction passed as `db` does: it takes no savepoint of
   * its own (a failure fails the caller's transaction, which then must not go on), and on PostgreSQL
   * its state goes out with the transaction's COMMIT. In the rare case that the run already has a
   * state at the proposed timestamp, StateTimestampTakenError fails the transaction: run it again.
   */
  readonly endsTransaction?: boolean | undefined;
}

export interface SetTaskRunStateOptions extends SetStateOptions {
  /**
   * The policy instead of CoreTaskPolicy (ignored with `force`, and for deferred proposals, which
   * BackgroundTaskPolicy governs); e.g. ClientSideTaskOrchestrationPolicy.
   */
  readonly policy?: TaskPolicy | undefined;
}

export interface OrchestrationResult {
  /**
   * The run's state after the call: the new state when one was written, else its current state
   * (null for WAIT/ABORT/REJECT of a run without a state, or when the state could not be stored).
   */
  readonly state: OrchestrationState | null;
  readonly status: SetStateStatus;
  readonly details: StateResponseDetails;
  /** A new state row was written: Prefect's API answers 201, else 200. */
  readonly written: boolean;
  /** Events to publish after the transaction committed (flow runs: `prefect.flow-run.<StateName>`). */
  readonly events: readonly OrchestrationEvent[];
}

export interface TaskOrchestrationResult extends OrchestrationResult {
  /** A deferred task run to push to the task queue of its task key (Prefect's EnqueueScheduledTasks). */
  readonly taskQueue: "enqueue" | "retry" | null;
}

/** The environment of the transitions of one call, on the repositories of its transaction. */
function environmentFor(options: SetStateOptions): (db: Repositories) => ContextEnvironment {
  const base = {
    parameters: { ...(options.orchestrationParameters ?? {}) },
    clientVersion: options.clientVersion ?? null,
    settings: { ...DEFAULT_SETTINGS, ...options.settings },
    random: options.random ?? Math.random,
    known: options.known ?? {},
  };
  const environment = (db: Repositories): ContextEnvironment => ({
    ...base,
    db,
    nested: {
      // Prefect forces the parent task run's state without orchestration parameters.
      setTaskRunState: async (taskRunId, state, nestedOptions) => {
        await orchestrateTaskRun({ ...environment(db), parameters: {}, clientVersion: null }, taskRunId, state, { force: true, ...nestedOptions });
      },
    },
  });
  return environment;
}

/**
 * Runs `work` in one transaction: everything a transition changes (the run, its state, slot counts
 * and concurrency leases) commits or rolls back together.
 */
function inTransaction<T>(db: Database | Repositories, options: SetStateOptions, work: (env: ContextEnvironment, tx: Repositories) => Promise<T>): Promise<T> {
  const environment = environmentFor(options);
  return db.transaction((tx) => work(environment(tx), tx));
}

function result(context: OrchestrationContext) {
  return {
    state: context.validatedState,
    status: context.responseStatus,
    details: context.responseDetails,
    written: context.written,
    events: context.events,
  };
}

async function orchestrateFlowRun(
  env: ContextEnvironment,
  flowRunId: string,
  proposed: OrchestrationState,
  options: {
    force?: boolean | undefined;
    policy?: FlowPolicy | undefined;
    locked?: FlowRun | undefined;
    related?: Promise<StoredRunRelated | null> | undefined;
    finalWrite?: boolean;
  },
): Promise<OrchestrationResult> {
  const locked = options.locked?.id === flowRunId ? options.locked : null;
  const read = locked ? null : env.db.flowRuns.getForUpdate(flowRunId);
  // What the run's events will name is read right behind the run's lock, without waiting for it: on
  // PostgreSQL it goes out with the lock (or with the rules' first read, when the caller holds the
  // lock) and costs no round trip of its own. The rules change none of the ids it follows. A
  // transition without events never looks at it; its failure then is of no interest.
  const related = (locked && options.related) || env.db.flowRuns.relatedOf(flowRunId);
  related.catch(() => undefined);
  const run = locked ?? (await read);
  if (!run) throw new NotFoundError(`Flow run with id ${flowRunId} not found`);
  const context = new FlowOrchestrationContext(env, run, run.state ? fromStoredState(run.state) : null, proposed);
  context.prefetchedRelated = related;
  context.finalWrite = options.finalWrite === true;
  const policy = options.force ? MinimalFlowPolicy : (options.policy ?? CoreFlowPolicy);
  await governTransition(context, policy, GlobalFlowPolicy);
  await context.persist();
  return result(context);
}

async function orchestrateTaskRun(
  env: ContextEnvironment,
  taskRunId: string,
  proposed: OrchestrationState,
  options: { force?: boolean | undefined; policy?: TaskPolicy | undefined; resetRunCount?: boolean | undefined },
): Promise<TaskOrchestrationResult> {
  const run = await env.db.taskRuns.getForUpdate(taskRunId);
  if (!run) throw new NotFoundError(`Task run with id ${taskRunId} not found`);
  const context = new TaskOrchestrationContext(env, run, run.state ? fromStoredState(run.state) : null, proposed);
  const policy = proposed.state_details.deferred ? BackgroundTaskPolicy : options.force ? MinimalTaskPolicy : (options.policy ?? CoreTaskPolicy);
  await governTransition(context, policy, GlobalTaskPolicy);
  if (options.resetRunCount) context.run.run_count = 0;
  await context.persist();
  return { ...result(context), taskQueue: context.taskQueue };
}

/**
 * Proposes a state for a flow run (`POST /flow_runs/{id}/set_state`). Throws NotFoundError for an
 * unknown run, InvalidError for a malformed state, BusyError when the database is busy (503).
 */
export async function setFlowRunState(
  db: Database | Repositories,
  flowRunId: string,
  state: StateInput,
  options: SetFlowRunStateOptions = {},
): Promise<OrchestrationResult> {
  const { force, policy, locked, related } = options;
  if (options.endsTransaction) {
    if (!db.inTransaction) throw new Error("endsTransaction: the transition must be given the transaction it ends.");
    const proposed = parseStateInput(state);
    return orchestrateFlowRun(environmentFor(options)(db), flowRunId, proposed, { force, policy, locked, related, finalWrite: true });
  }
  const attempt = (finalWrite: boolean) => {
    const proposed = parseStateInput(state);
    return inTransaction(db, options, (env) => orchestrateFlowRun(env, flowRunId, proposed, { force, policy, locked, related, finalWrite }));
  };
  // The state is the transaction's last write: on PostgreSQL it commits with it. In the rare case
  // that the run already has a state at the proposed timestamp, that rolls the transaction back, and
  // the transition runs again with the state written on its own (its timestamp moved on).
  try {
    return await attempt(true);
  } catch (error) {
    if (!(error instanceof StateTimestampTakenError)) throw error;
    return attempt(false);
  }
}

/** Proposes a state for a task run (`POST /task_runs/{id}/set_state`); as `setFlowRunState`. */
export async function setTaskRunState(
  db: Database | Repositories,
  taskRunId: string,
  state: StateInput,
  options: SetTaskRunStateOptions = {},
): Promise<TaskOrchestrationResult> {
  const proposed = parseStateInput(state);
  return inTransaction(db, options, (env) => orchestrateTaskRun(env, taskRunId, proposed, { force: options.force, policy: options.policy }));
}

export interface CreatedRun<Run, Result> {
  /** The run as stored after its first state (the existing run when the upsert key was taken). */
  readonly run: Run;
  /** False when a run with the same upsert key existed: nothing was written. */
  readonly created: boolean;
  /** The orchestration of the initial state, when the run was created. */
  readonly orchestration: Result | null;
}

type WithState<T> = Omit<T, "state"> & { readonly state?: StateInput | null | undefined };

/**
 * Prefect's `POST /flow_runs/`: inserts the run (or finds the one with the same flow and
 * idempotency key) and, for a new run, forces its initial state (PENDING when none is given)
 * through orchestration, so that the bookkeeping is done and the event produced.
 */
export async function createFlowRun(
  db: Database | Repositories,
  input: WithState<FlowRunCreate>,
  options: Omit<SetStateOptions, "force"> = {},
): Promise<CreatedRun<FlowRun, OrchestrationResult>> {
  const { state, ...fields } = input;
  const proposed = parseStateInput(state ?? { type: "PENDING" });
  try {
    // The rules govern the run before it is stored, so that it is inserted with its first state in
    // one statement; when its idempotency key turns out to be taken, whatever the rules wrote is
    // rolled back and the run holding the key is answered. Nothing is written after the insert, and
    // a taken key writes nothing: when the rules wrote nothing either, the insert is the transaction.
    return await inTransaction(db, options, async (env, tx) => {
      let context: FlowOrchestrationContext | null = null;
      const created = await tx.flowRuns.createWithFirstState(fields, async (draft) => {
        // The rules set a subflow's parent task run: a missing one is a missing reference, as the insert would find.
        if (draft.parent_task_run_id && !(await tx.taskRuns.get(draft.parent_task_run_id))) {
          throw new InvalidError(`Flow run ${draft.id} refers to task run ${draft.parent_task_run_id}, which does not exist.`, [], { reason: "missing_reference" });
        }
        context = new FlowOrchestrationContext(env, draft, null, proposed);
        await governTransition(context, MinimalFlowPolicy, GlobalFlowPolicy);
        return context.firstState();
      }, { lastWrite: true });
      if (!created.created) throw new RunExists(created.row);
      return { run: created.row, created: true, orchestration: result(context!) };
    });
  } catch (error) {
    if (error instanceof RunExists) return { run: error.run, created: false, orchestration: null };
    throw error;
  }
}

/** Thrown inside a create's transaction to roll it back when the run's upsert key is taken. */
class RunExists extends Error {
  constructor(readonly run: FlowRun) {
    super("the run's upsert key is taken");
  }
}

/** Prefect's `POST /task_runs/`: as `createFlowRun`, upserting on (flow_run_id, task_key, dynamic_key). */
export async function createTaskRun(
  db: Database | Repositories,
  input: WithState<TaskRunCreate>,
  options: Omit<SetStateOptions, "force"> = {},
): Promise<CreatedRun<TaskRun, TaskOrchestrationResult>> {
  const { state, ...fields } = input;
  const proposed = parseStateInput(state ?? { type: "PENDING" });
  return inTransaction(db, options, async (env, tx) => {
    const created = await tx.taskRuns.create(fields);
    if (!created.created) return { run: created.row, created: false, orchestration: null };
    const orchestration = await orchestrateTaskRun(env, created.row.id, proposed, { force: true });
    const stored = await tx.taskRuns.get(created.row.id);
    return { run: stored ?? created.row, created: true, orchestration };
  });
}
