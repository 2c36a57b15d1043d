/** Task-run rules of Prefect's CoreTaskPolicy and BackgroundTaskPolicy (`core_policy.py`). */
import { addSeconds, NotFoundError, now } from "@prefect/db";
import type { TaskOrchestrationContext } from "../context.js";
import { ALL_ORCHESTRATION_STATES, OrchestrationRule, type TransitionType } from "../rules.js";
import { fromStoredState, freshCopy, hasPersistedResult, isFinal, newState, type OrchestrationState, TERMINAL_STATES, truthy } from "../states.js";
import { clampedPoissonInterval } from "../util.js";
import { taskRunPolicy } from "./run-policy.js";

const RUNNING: ReadonlySet<TransitionType> = new Set(["RUNNING"]);

/**
 * A RUNNING proposal with a cache key (and no `refresh_cache`) whose key has an unexpired cached
 * COMPLETED state is rejected into a fresh copy of that state, named "Cached".
 */
export class CacheRetrieval extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = RUNNING;

  protected override async beforeTransition(_initial: OrchestrationState | null, proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!proposed) return;
    const key = proposed.state_details.cache_key;
    if (!key || proposed.state_details.refresh_cache) return;
    const entry = await context.db.taskRuns.findCachedState(key, now());
    if (!entry) return;
    const cached = await context.db.taskRuns.getState(entry.task_run_state_id);
    if (!cached) return;
    const state = freshCopy(fromStoredState(cached));
    state.name = "Cached";
    await this.rejectTransition(state, "Retrieved state from cache");
  }
}

/**
 * Completed states with a cache key are remembered in task_run_state_cache; a key longer than
 * `maxCacheKeyLength` is refused (the state is kept, with the rejection as its status).
 */
export class CacheInsertion extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["COMPLETED"]);

  protected override async beforeTransition(_initial: OrchestrationState | null, proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!proposed) return;
    const key = proposed.state_details.cache_key;
    const max = context.settings.maxCacheKeyLength;
    if (key && key.length > max) await this.rejectTransition(proposed, `Cache key exceeded maximum allowed length of ${max} characters.`);
  }

  protected override async afterTransition(_initial: OrchestrationState | null, validated: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    const key = validated?.state_details.cache_key;
    if (!validated || !key) return;
    await context.db.taskRuns.cacheState({ cache_key: key, cache_expiration: validated.state_details.cache_expiration, task_run_state_id: validated.id });
  }
}

/**
 * Task runs in a final state cannot become CANCELLING, PAUSED or CRASHED, nor leave a COMPLETED
 * state with a persisted result. Leaving for a non-final state resets the run count (so retries
 * start over); a RUNNING proposal while the parent flow run is retrying is named "Retrying".
 */
export class HandleTaskTerminalStateTransitions extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = TERMINAL_STATES;
  static override toStates = ALL_ORCHESTRATION_STATES;
  #originalRunCount: number | null = null;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    this.#originalRunCount = context.run.run_count;
    if (proposed.type === "CANCELLING" || proposed.type === "PAUSED" || proposed.type === "CRASHED") {
      await this.abortTransition(`Run is already ${initial.type}.`);
      return;
    }
    if (initial.type === "COMPLETED" && truthy(initial.data) && hasPersistedResult(initial.data)) {
      await this.rejectTransition(null, "This run is already completed.");
      return;
    }
    if (!isFinal(proposed)) context.run.run_count = 0;
    if (proposed.type === "RUNNING" && context.run.flow_run_id) {
      const flowRun = await context.flowRun();
      if (flowRun && context.run.flow_run_run_count < flowRun.run_count) await this.renameState("Retrying");
    }
  }

  protected override async cleanup(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (this.#originalRunCount !== null) context.run.run_count = this.#originalRunCount;
  }
}

/**
 * A task can only start RUNNING while its flow run is RUNNING: a flow run without a state, or in any
 * other state, aborts; a PAUSED flow run rejects into Paused("NotReady") with the flow run's pause
 * timeout and reschedule flag.
 */
export class PreventRunningTasksFromStoppedFlows extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = RUNNING;

  protected override async beforeTransition(_initial: OrchestrationState | null, _proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    const flowRun = await context.flowRun();
    if (!flowRun) return;
    const state = flowRun.state;
    if (!state || (state.type !== "RUNNING" && state.type !== "PAUSED")) {
      await this.abortTransition("The enclosing flow must be running to begin task execution.");
    } else if (state.type === "PAUSED") {
      const details = fromStoredState(state).state_details;
      const paused = newState("PAUSED", {
        name: "NotReady",
        details: { pause_timeout: details.pause_timeout, pause_reschedule: details.pause_reschedule, pause_key: null },
      });
      await this.rejectTransition(paused, `The flow is paused, new tasks can execute after resuming flow run: ${flowRun.id}.`);
    }
  }
}

/**
 * RUNNING → FAILED with retries left (and not `retriable: false`) becomes AwaitingRetry at now +
 * delay: `retry_delay` (a list is indexed by attempt, its last entry repeating), jittered by
 * `retry_jitter_factor` with Prefect's clamped Poisson interval.
 */
export class RetryFailedTasks extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = RUNNING;
  static override toStates: ReadonlySet<TransitionType> = new Set(["FAILED"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    const policy = taskRunPolicy(context.run.empirical_policy);
    const runCount = context.run.run_count;
    let baseDelay = 0;
    if (Array.isArray(policy.retry_delay)) {
      const delays: readonly number[] = policy.retry_delay;
      if (delays.length > 0) {
        // Python indexing: the attempt's delay, the last one past the end (and for run count 0).
        const index = Math.min(runCount - 1, delays.length - 1);
        baseDelay = delays[index < 0 ? delays.length + index : index] ?? 0;
      }
    } else if (typeof policy.retry_delay === "number") {
      baseDelay = policy.retry_delay;
    }
    const delay = policy.retry_jitter_factor && baseDelay > 0 ? clampedPoissonInterval(baseDelay, policy.retry_jitter_factor, context.random) : baseDelay;
    if (proposed.state_details.retriable === false) return;
    if (policy.retries !== null && runCount <= policy.retries) {
      const retry = newState("SCHEDULED", {
        name: "AwaitingRetry",
        message: proposed.message,
        data: proposed.data,
        details: { scheduled_time: addSeconds(now(), delay) },
      });
      await this.rejectTransition(retry, "Retrying");
    }
  }
}

/** Records which attempt of its flow run a task run ran in (`flow_run_run_count`). */
export class UpdateFlowRunTrackerOnTasks extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = RUNNING;

  protected override async afterTransition(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!context.run.flow_run_id) return;
    const flowRun = await context.flowRun();
    if (!flowRun) {
      throw new NotFoundError(`Unable to read flow run associated with task run: ${context.run.id}, this flow run might have been deleted`);
    }
    context.run.flow_run_run_count = flowRun.run_count;
  }
}

/** Background tasks keep their parameters id from SCHEDULED through PENDING to RUNNING. */
export class CopyTaskParametersID extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED", "PENDING"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["PENDING", "RUNNING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    if (!proposed.state_details.task_parameters_id) proposed.state_details.task_parameters_id = initial.state_details.task_parameters_id;
  }
}

/**
 * A deferred (background) task run entering SCHEDULED goes to the task queue of its task key; the
 * server does the pushing (`result.taskQueue`: "retry" for AwaitingRetry, else "enqueue").
 */
export class EnqueueScheduledTasks extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED"]);

  protected override async afterTransition(_initial: OrchestrationState | null, validated: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!validated?.state_details.deferred) return;
    context.taskQueue = validated.name === "AwaitingRetry" ? "retry" : "enqueue";
  }
}
