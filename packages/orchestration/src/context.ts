/**
 * The orchestration context: one proposed transition of one run, as the rules see and change it
 * (Prefect's `OrchestrationContext` in `orchestration/rules.py`).
 *
 * `run` is a working copy of the run row, read with a row lock; rules and the global transforms
 * change its bookkeeping fields (run count, start/end time, run time, empirical policy...), and the
 * engine writes them when the transition ends: with the new state through `setState` (one atomic
 * insert-and-move-the-pointer), or alone when no state was written.
 */
import {
  BusyError,
  DatabaseError,
  type Deployment,
  type Flow,
  type FlowRun,
  type Repositories,
  type RunBookkeeping,
  type StateCreate,
  type StoredRunRelated,
  type TaskRun,
  type Timestamp,
} from "@prefect/db";
import type { PrefectEvent } from "./prefect-event.js";
import { copyState, type OrchestrationState } from "./states.js";
import { isoformat, isPlainObject, type RandomSource } from "./util.js";

export type SetStateStatus = "ACCEPT" | "REJECT" | "WAIT" | "ABORT";

export type StateResponseDetails =
  | { type: "accept_details" }
  | { type: "reject_details"; reason: string | null }
  | { type: "wait_details"; delay_seconds: number; reason: string | null }
  | { type: "abort_details"; reason: string | null };

/** The events a transition emits (Prefect's `prefect.flow-run.<State>`), published once it commits. */
export type OrchestrationEvent = PrefectEvent;

/** The server settings orchestration reads (Prefect's names in the comments; Prefect's defaults). */
export interface OrchestrationSettings {
  /** `server.deployments.concurrency_slot_wait_seconds`: how far AwaitingConcurrencySlot reschedules. */
  readonly deploymentConcurrencySlotWaitSeconds: number;
  /** `server.tasks.tag_concurrency_slot_wait_seconds`: the longest a task waits for a tag slot. */
  readonly taskTagConcurrencySlotWaitSeconds: number;
  /** `server.tasks.max_cache_key_length`. */
  readonly maxCacheKeyLength: number;
}

export const DEFAULT_SETTINGS: OrchestrationSettings = {
  deploymentConcurrencySlotWaitSeconds: 30,
  taskTagConcurrencySlotWaitSeconds: 10,
  maxCacheKeyLength: 2000,
};

/** Orchestration of other runs inside the same transaction (a subflow updating its parent task run). */
export interface NestedOrchestration {
  /**
   * Forces `state` onto the task run (Prefect's `set_task_run_state(..., force=True)`);
   * `resetRunCount` then sets its run count to 0 (flow retries of API < 0.8.3 clients).
   */
  setTaskRunState(taskRunId: string, state: OrchestrationState, options?: { resetRunCount?: boolean }): Promise<void>;
}

/** What a context is built from, besides the run and its states. */
/** Rows the caller has just read for the run (its flow, its deployment): events use them instead of reading them again. */
export interface KnownRows {
  readonly flow?: Flow | null | undefined;
  readonly deployment?: Deployment | null | undefined;
}

export interface ContextEnvironment {
  /** The repositories of the transaction the transition runs in. */
  readonly db: Repositories;
  readonly parameters: Record<string, unknown>;
  readonly clientVersion: string | null;
  readonly settings: OrchestrationSettings;
  readonly random: RandomSource;
  readonly nested: NestedOrchestration;
  readonly known: KnownRows;
}

/** The run columns the engine writes (Prefect's global bookkeeping). */
const BOOKKEEPING = ["run_count", "start_time", "end_time", "total_run_time", "expected_start_time", "next_scheduled_start_time", "empirical_policy"] as const;

abstract class BaseContext<Run extends FlowRun | TaskRun> {
  abstract readonly kind: "flow" | "task";
  readonly db: Repositories;
  /** The run, locked; rules change its bookkeeping fields. */
  run: Run;
  /** The run as read, to tell what changed. */
  readonly original: Run;
  readonly initialState: OrchestrationState | null;
  proposedState: OrchestrationState | null;
  validatedState: OrchestrationState | null = null;
  responseStatus: SetStateStatus = "ACCEPT";
  responseDetails: StateResponseDetails = { type: "accept_details" };
  parameters: Record<string, unknown>;
  readonly clientVersion: string | null;
  readonly settings: OrchestrationSettings;
  readonly random: RandomSource;
  readonly nested: NestedOrchestration;
  readonly known: KnownRows;
  /** Events for the server to publish once the transition has committed. */
  readonly events: OrchestrationEvent[] = [];
  /** Set once the proposed state has been written as the run's new state. */
  written = false;
  /** The state row to write when the transition ends (set by validation). */
  #pending: (StateCreate & { id: string }) | null = null;

  constructor(env: ContextEnvironment, run: Run, initialState: OrchestrationState | null, proposedState: OrchestrationState | null) {
    this.db = env.db;
    this.original = run;
    // Rules replace the run's fields (withPolicy builds a new empirical policy) and never change a
    // value inside one, so a shallow copy keeps `original` as read.
    this.run = { ...run };
    this.initialState = initialState;
    this.proposedState = proposedState;
    this.parameters = { ...env.parameters };
    this.clientVersion = env.clientVersion;
    this.settings = env.settings;
    this.random = env.random;
    this.nested = env.nested;
    this.known = env.known;
  }

  get initialStateType() {
    return this.initialState?.type ?? null;
  }
  get proposedStateType() {
    return this.proposedState?.type ?? null;
  }
  get validatedStateType() {
    return this.validatedState?.type ?? null;
  }

  /** The flow run of this transition: the run itself, or a task run's parent (null for none). */
  abstract flowRun(): Promise<FlowRun | null>;

  /** The artifact ownership of a result artifact created for this run's state. */
  protected abstract artifactOwner(): { flow_run_id: string | null; task_run_id: string | null };

  protected abstract repository(): Repositories["flowRuns"] | Repositories["taskRuns"];

  /**
   * Prefect's `validate_proposed_state`: with no proposed state the run keeps its current state;
   * otherwise persisted result data becomes a result artifact and the state is fixed as the one to
   * write. A state that cannot be stored aborts the transition ("Error validating state"), except
   * when the database is busy (the caller retries).
   */
  async validateProposedState(): Promise<void> {
    const proposed = this.proposedState;
    if (!proposed) {
      this.validatedState = this.initialState ? copyState(this.initialState) : null;
      return;
    }
    let data = proposed.data;
    let resultArtifactId: string | null = null;
    const unpersisted = isPlainObject(data) && data.type === "unpersisted";
    if (data !== null && data !== undefined && !unpersisted) {
      try {
        const { artifact, remaining } = resultArtifact(data);
        data = remaining;
        const created = await this.db.transaction((tx) => tx.artifacts.create({ ...artifact, data: remaining, ...this.artifactOwner() }));
        resultArtifactId = created.id;
      } catch (error) {
        if (error instanceof BusyError || !(error instanceof DatabaseError)) throw error;
        this.proposedState = null;
        this.validatedState = null;
        this.responseStatus = "ABORT";
        this.responseDetails = { type: "abort_details", reason: `Error validating state: ${error.name}(${JSON.stringify(error.message)})` };
        return;
      }
    }
    this.validatedState = { ...copyState(proposed), data };
    this.#pending = {
      id: proposed.id,
      type: proposed.type,
      name: proposed.name,
      timestamp: proposed.timestamp,
      message: proposed.message,
      data: unpersisted ? null : data,
      state_details: { ...proposed.state_details },
      result_artifact_id: resultArtifactId,
    };
  }

  /**
   * Writes what the transition decided: the validated state with the run's bookkeeping, atomically,
   * or only the run fields rules changed when no state was written.
   */
  /**
   * The state is the last write of the transaction, which the caller opened for this transition
   * alone: it may commit with it (see the repositories' `setState`).
   */
  finalWrite = false;

  async persist(): Promise<void> {
    const pending = this.#pending;
    if (pending && this.validatedState) {
      const state = { ...pending, state_details: { ...this.validatedState.state_details } };
      const stored = await this.repository().setState(this.run.id, state, this.#changedBookkeeping(), { final: this.finalWrite && !this.hasExtra() });
      if (stored.timestamp !== this.validatedState.timestamp) this.#moveTimestamp(stored.timestamp);
      this.written = true;
    } else if (changed(this.original.empirical_policy, this.run.empirical_policy)) {
      await this.updateRun({ empirical_policy: this.run.empirical_policy });
    }
    await this.persistExtra();
  }

  /**
   * What the transition of a run not yet stored decided, to be inserted with the run: the validated
   * state with the run's bookkeeping (null when no state is written).
   */
  firstState(): { state: StateCreate; bookkeeping: RunBookkeeping } | null {
    const pending = this.#pending;
    if (!pending || !this.validatedState) return null;
    this.written = true;
    return { state: { ...pending, state_details: { ...this.validatedState.state_details } }, bookkeeping: this.#bookkeeping() };
  }

  #bookkeeping(): RunBookkeeping {
    const bookkeeping: Record<string, unknown> = {};
    for (const column of BOOKKEEPING) bookkeeping[column] = this.run[column];
    return bookkeeping as RunBookkeeping;
  }

  /**
   * The bookkeeping columns the rules changed from the run as read (locked, so still as stored): a
   * column left out of the write keeps its value. The others are not written at all, which spares
   * SQLite the upkeep of their indexes (it rewrites an index entry for every column assigned, even
   * to the value it had: most transitions change two or three of these seven columns).
   */
  #changedBookkeeping(): RunBookkeeping {
    const bookkeeping: Record<string, unknown> = {};
    for (const column of BOOKKEEPING) {
      const value = this.run[column];
      const before = this.original[column];
      if (column === "empirical_policy" ? changed(before, value) : value !== before) bookkeeping[column] = value;
    }
    return bookkeeping as RunBookkeeping;
  }

  /** Kind-specific run fields written outside `setState`. */
  protected async persistExtra(): Promise<void> {}

  /** Whether `persistExtra` has something to write. */
  protected hasExtra(): boolean {
    return false;
  }

  protected abstract updateRun(patch: { empirical_policy: Record<string, unknown> }): Promise<void>;

  /** The repository moved the state on by microseconds (a concurrent writer took its timestamp). */
  #moveTimestamp(timestamp: Timestamp): void {
    this.validatedState!.timestamp = timestamp;
    for (const event of this.events) {
      if (event.id !== this.validatedState!.id) continue;
      event.occurred = timestamp;
      if (event.resource["prefect.state-timestamp"] !== undefined) event.resource["prefect.state-timestamp"] = isoformat(timestamp);
    }
  }
}

export class FlowOrchestrationContext extends BaseContext<FlowRun> {
  readonly kind = "flow" as const;
  /** The rows the run's events name, read with the run, and the run ids they were followed from. */
  prefetchedRelated: Promise<StoredRunRelated | null> | null = null;

  async flowRun(): Promise<FlowRun> {
    return this.run;
  }

  protected artifactOwner() {
    return { flow_run_id: this.run.id, task_run_id: null };
  }

  protected repository() {
    return this.db.flowRuns;
  }

  protected async updateRun(patch: { empirical_policy: Record<string, unknown> }) {
    await this.db.flowRuns.update(this.run.id, patch);
  }
}

export class TaskOrchestrationContext extends BaseContext<TaskRun> {
  readonly kind = "task" as const;
  /** Prefect's BackgroundTaskPolicy outcome: push the run to the task queue for `task_key`. */
  taskQueue: "enqueue" | "retry" | null = null;

  async flowRun(): Promise<FlowRun | null> {
    if (!this.run.flow_run_id) return null;
    return this.db.flowRuns.get(this.run.flow_run_id);
  }

  protected artifactOwner() {
    return { flow_run_id: this.run.flow_run_id, task_run_id: this.run.id };
  }

  protected repository() {
    return this.db.taskRuns;
  }

  protected async updateRun(patch: { empirical_policy: Record<string, unknown> }) {
    await this.db.taskRuns.update(this.run.id, patch);
  }

  protected override hasExtra(): boolean {
    return this.run.flow_run_run_count !== this.original.flow_run_run_count;
  }

  protected override async persistExtra() {
    if (this.hasExtra()) {
      await this.db.taskRuns.update(this.run.id, { flow_run_run_count: this.run.flow_run_run_count });
    }
  }
}

export type OrchestrationContext = FlowOrchestrationContext | TaskOrchestrationContext;

function changed(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) !== JSON.stringify(b);
}

/**
 * Prefect's `Artifact.from_result`: `artifact_key`, `artifact_type` and `artifact_description` are
 * taken out of result data (an object) to become the artifact's key, type and description.
 */
function resultArtifact(data: unknown): { artifact: { key?: string; type?: string; description?: string }; remaining: unknown } {
  if (!isPlainObject(data)) return { artifact: {}, remaining: data };
  const { artifact_key, artifact_type, artifact_description, ...remaining } = data;
  const artifact: { key?: string; type?: string; description?: string } = {};
  if (typeof artifact_key === "string" && artifact_key) artifact.key = artifact_key;
  if (typeof artifact_type === "string" && artifact_type) artifact.type = artifact_type;
  if (typeof artifact_description === "string" && artifact_description) artifact.description = artifact_description;
  return { artifact, remaining };
}
