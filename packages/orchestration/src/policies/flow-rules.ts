/** Flow-run rules of Prefect's CoreFlowPolicy, MinimalFlowPolicy and MarkLateRunsPolicy (`core_policy.py`). */
import { addSeconds, now } from "@prefect/db";
import type { FlowOrchestrationContext } from "../context.js";
import { ALL_ORCHESTRATION_STATES, allStatesExcept, OrchestrationRule, type TransitionType, UniversalTransform } from "../rules.js";
import { hasPersistedResult, isFinal, newState, type OrchestrationState, TERMINAL_STATES, truthy } from "../states.js";
import { uuid7 } from "../util.js";
import { apiVersionAtLeast, flowRunPolicy, withPolicy } from "./run-policy.js";

const TERMINAL: ReadonlySet<TransitionType> = TERMINAL_STATES;

/**
 * Workers send `deployment_concurrency_lease_id: null` in later proposals; the lease id of the
 * current state is carried forward whenever the proposal has none.
 */
export class PreserveDeploymentConcurrencyLeaseId extends UniversalTransform<FlowOrchestrationContext> {
  protected override async beforeTransition(context: FlowOrchestrationContext): Promise<void> {
    const lease = context.initialState?.state_details.deployment_concurrency_lease_id;
    const proposed = context.proposedState;
    if (lease && proposed && proposed.state_details.deployment_concurrency_lease_id === null) proposed.state_details.deployment_concurrency_lease_id = lease;
  }
}

/**
 * Idempotent retries of set_state: a proposal carrying the `transition_id` of the current state is
 * rejected and the current state returned.
 */
export class PreventDuplicateTransitions extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates = ALL_ORCHESTRATION_STATES;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    const current = initial.state_details.transition_id;
    if (current !== null && current === proposed.state_details.transition_id) {
      await this.rejectTransition(null, "This run has already made this state transition.");
    }
  }
}

const MESSAGE_DATA_LOSS = "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.";

const losesResultData = (initial: OrchestrationState, proposed: OrchestrationState) =>
  initial.type === "COMPLETED" && proposed.type === "COMPLETED" && truthy(initial.data) && hasPersistedResult(initial.data) && !hasPersistedResult(proposed.data);

/**
 * Flow runs in a final state cannot become CANCELLING, PAUSED or CRASHED, leave COMPLETED with a
 * persisted result for a non-final state, drop persisted result data COMPLETED → COMPLETED, or be
 * rescheduled without a deployment. Leaving for a non-final state resets the pause bookkeeping and
 * records the retry type (a manual retry).
 */
export class HandleFlowTerminalStateTransitions extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = TERMINAL;
  static override toStates = ALL_ORCHESTRATION_STATES;
  #originalPolicy: Record<string, unknown> | null = null;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    this.#originalPolicy = structuredClone(context.run.empirical_policy);
    if (proposed.type === "CANCELLING" || proposed.type === "PAUSED" || proposed.type === "CRASHED") {
      await this.abortTransition(`Run is already in terminal state ${initial.type}.`);
      return;
    }
    if (initial.type === "COMPLETED" && !isFinal(proposed) && truthy(initial.data) && hasPersistedResult(initial.data)) {
      await this.rejectTransition(null, "Run is already COMPLETED.");
      return;
    }
    if (losesResultData(initial, proposed)) {
      await this.rejectTransition(null, MESSAGE_DATA_LOSS);
      return;
    }
    if (proposed.type === "SCHEDULED" && !context.run.deployment_id) {
      await this.abortTransition("Cannot reschedule a run without an associated deployment.");
      return;
    }
    if (!isFinal(proposed) && apiVersionAtLeast(context.parameters, "0.8.4")) {
      context.run.empirical_policy = withPolicy(context.run.empirical_policy, {
        resuming: false,
        pause_keys: [],
        retry_type: proposed.type === "SCHEDULED" ? "reschedule" : null,
      });
    }
  }

  protected override async cleanup(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (this.#originalPolicy) context.run.empirical_policy = this.#originalPolicy;
  }
}

/** The lightweight data-loss guard of MinimalFlowPolicy (forced transitions). */
export class PreventResultDataLoss extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = TERMINAL;
  static override toStates = TERMINAL;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    if (losesResultData(initial, proposed)) await this.rejectTransition(null, MESSAGE_DATA_LOSS);
  }
}

/** A CANCELLING run can only become CANCELLED. */
export class EnforceCancellingToCancelledTransition extends OrchestrationRule {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["CANCELLING"]);
  static override toStates = allStatesExcept("CANCELLED");

  protected override async beforeTransition(): Promise<void> {
    await this.rejectTransition(null, "Cannot transition flows that are cancelling to a state other than Cancelled.");
  }
}

/**
 * Cancelling a run without infrastructure to tear down (SCHEDULED without an infrastructure pid, a
 * "Resuming" run, a suspended PAUSED run) goes straight to CANCELLED.
 */
export class BypassCancellingFlowRunsWithNoInfra extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED", "PAUSED"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["CANCELLING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    if ((initial.type === "SCHEDULED" && !context.run.infrastructure_pid) || initial.name === "Resuming") {
      await this.rejectTransition(newState("CANCELLED"), "Scheduled flow run has no infrastructure to terminate.");
    } else if (initial.type === "PAUSED" && initial.state_details.pause_reschedule) {
      await this.rejectTransition(newState("CANCELLED"), "Suspended flow run has no infrastructure to terminate.");
    }
  }
}

/** Only a SCHEDULED run not already "Late" can be marked "Late". */
export class EnsureOnlyScheduledFlowsMarkedLate extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    if (proposed.type !== "SCHEDULED" || proposed.name !== "Late") return;
    if (initial.type !== "SCHEDULED") await this.rejectTransition(null, "Only scheduled flows can be marked late.");
    else if (initial.name === "Late") await this.rejectTransition(null, "This flow run is already marked late.");
  }
}

/**
 * Pausing: only RUNNING runs, each pause key once; suspending (`pause_reschedule`) needs a
 * deployment and is refused to subflows. The key (a random one by default) is remembered in the
 * run's `empirical_policy.pause_keys`.
 */
export class HandlePausingFlows extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["PAUSED"]);
  #key: string | null = null;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!proposed) return;
    const verb = proposed.name === "Suspended" ? "suspend" : "pause";
    if (!initial) {
      await this.abortTransition(`Cannot ${verb} flows with no state.`);
      return;
    }
    if (initial.type !== "RUNNING") {
      await this.rejectTransition(null, `Cannot ${verb} flows that are not currently running.`);
      return;
    }
    this.#key = proposed.state_details.pause_key ?? uuid7();
    if (flowRunPolicy(context.run.empirical_policy).pause_keys.includes(this.#key)) {
      await this.rejectTransition(null, `This ${verb} has already fired.`);
      return;
    }
    if (proposed.state_details.pause_reschedule) {
      if (context.run.parent_task_run_id) {
        await this.abortTransition(`Cannot ${verb} subflows.`);
        return;
      }
      if (!context.run.deployment_id) {
        await this.abortTransition(`Cannot ${verb} flows without a deployment.`);
      }
    }
  }

  protected override async afterTransition(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    const key = this.#key;
    if (key === null) return;
    const keys = flowRunPolicy(context.run.empirical_policy).pause_keys;
    if (!keys.includes(key)) context.run.empirical_policy = withPolicy(context.run.empirical_policy, { pause_keys: [...keys, key] });
  }
}

/**
 * Leaving PAUSED: only for RUNNING, SCHEDULED or a final state; rescheduling a suspended run needs a
 * deployment; after the pause timeout the run fails instead. The run is marked `resuming`.
 */
export class HandleResumingPausedFlows extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["PAUSED"]);
  static override toStates = ALL_ORCHESTRATION_STATES;

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    if (!(proposed.type === "RUNNING" || proposed.type === "SCHEDULED" || isFinal(proposed))) {
      await this.rejectTransition(null, `This run cannot transition to the ${proposed.type} state from the ${initial.type} state.`);
      return;
    }
    const verb = proposed.name === "Suspended" ? "suspend" : "pause";
    const displayName = (proposed.name || proposed.type).toLowerCase();
    if (initial.state_details.pause_reschedule && !context.run.deployment_id) {
      await this.rejectTransition(null, `Cannot reschedule a ${displayName} flow run without a deployment.`);
      return;
    }
    const timeout = initial.state_details.pause_timeout;
    if (timeout && timeout < now()) {
      await this.rejectTransition(newState("FAILED", { message: `The flow was ${displayName} and never resumed.` }), `The flow run ${verb} has timed out and can no longer resume.`);
    }
  }

  protected override async afterTransition(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    context.run.empirical_policy = withPolicy(context.run.empirical_policy, { resuming: true });
  }
}

/**
 * RUNNING → FAILED with retries left becomes AwaitingRetry (SCHEDULED at now + retry_delay, keeping
 * the message and data); the run's retry type becomes "in_process" and its pause keys are cleared.
 * Exhausted retries clear the retry type. For clients of API < 0.8.3 the run's failed task runs are
 * forced to AwaitingRetry too.
 */
export class RetryFailedFlows extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["RUNNING"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["FAILED"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    const policy = flowRunPolicy(context.run.empirical_policy);
    if (policy.retries === null || context.run.run_count > policy.retries) {
      context.run.empirical_policy = withPolicy(context.run.empirical_policy, { retry_type: null });
      return;
    }
    const scheduledTime = addSeconds(now(), policy.retry_delay ?? 0);
    if (!apiVersionAtLeast(context.parameters, "0.8.3")) {
      const failed = await context.db.taskRuns.read({
        flow_runs: { id: { any_: [context.run.id] } },
        task_runs: { state: { type: { any_: ["FAILED"] } } },
      });
      for (const taskRun of failed) {
        await context.nested.setTaskRunState(taskRun.id, newState("SCHEDULED", { name: "AwaitingRetry", details: { scheduled_time: scheduledTime } }), {
          resetRunCount: true,
        });
      }
    }
    if (apiVersionAtLeast(context.parameters, "0.8.4")) {
      context.run.empirical_policy = withPolicy(context.run.empirical_policy, { resuming: false, pause_keys: [], retry_type: "in_process" });
    }
    const retry = newState("SCHEDULED", { name: "AwaitingRetry", message: proposed.message, data: proposed.data, details: { scheduled_time: scheduledTime } });
    await this.rejectTransition(retry, "Retrying");
  }
}
