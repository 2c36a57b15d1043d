/**
 * Prefect's global bookkeeping (`orchestration/global_policy.py`): universal transforms that run
 * innermost on every transition that writes a state, keeping the run's denormalised columns
 * current. The engine writes the run's fields together with the new state.
 */
import { fromMicros, secondsBetween, toMicros } from "@prefect/db";
import type { FlowOrchestrationContext, OrchestrationContext, TaskOrchestrationContext } from "../context.js";
import { type FlowPolicy, type TaskPolicy, UniversalTransform } from "../rules.js";
import { freshCopy, isFinal } from "../states.js";
import { apiVersionAtLeast, flowRunPolicy, withPolicy } from "./run-policy.js";

/**
 * Moves the proposed timestamp on by microseconds until no other state of the run has it (the
 * state tables are unique on (run, timestamp)). Prefect applies this to flow runs; we apply it to
 * task runs too, so that the run's start/end times always equal its states' timestamps.
 */
export class EnsureStateTimestampIsUnique extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    // A run without a current state has no states: each state write sets the pointer with it.
    if (this.nullifiedTransition() || !proposed || context.run.state_id === null) return;
    // States are mostly proposed after the current one: then only a state stored after the current
    // one could have the timestamp, which the state write itself catches (moving the timestamp and
    // the bookkeeping set from it), so the states need not be read.
    const current = context.initialState;
    if (current && toMicros(proposed.timestamp) > toMicros(current.timestamp)) return;
    const states = context.kind === "flow" ? await context.db.flowRuns.readStates(context.run.id) : await context.db.taskRuns.readStates(context.run.id);
    const taken = new Set(states.map((s) => toMicros(s.timestamp)));
    let candidate = toMicros(proposed.timestamp);
    while (taken.has(candidate)) candidate += 1;
    proposed.timestamp = fromMicros(candidate);
  }
}

export class SetRunStateType extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    if (context.proposedState) context.run.state_type = context.proposedState.type;
  }
}

export class SetRunStateName extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    if (context.proposedState) context.run.state_name = context.proposedState.name;
  }
}

export class SetRunStateTimestamp extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    if (context.proposedState) context.run.state_timestamp = context.proposedState.timestamp;
  }
}

/** The first time the run enters RUNNING. */
export class SetStartTime extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    if (proposed?.type === "RUNNING" && context.run.start_time === null) context.run.start_time = proposed.timestamp;
  }
}

/** Set when entering a final state (with the start time, for runs that never ran); cleared when leaving one. */
export class SetEndTime extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    if (!proposed) return;
    const run = context.run;
    if (isFinal(context.initialState) && !isFinal(proposed)) run.end_time = null;
    if (isFinal(proposed) && !run.end_time) {
      if (!run.start_time) run.start_time = proposed.timestamp;
      run.end_time = proposed.timestamp;
    }
  }
}

/**
 * Adds the time spent in the RUNNING state being left. (A backdated proposal could make it
 * negative; the run's total is kept at or above zero, which our column requires.)
 */
export class IncrementRunTime extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    const initial = context.initialState;
    if (!proposed || initial?.type !== "RUNNING") return;
    context.run.total_run_time = Math.max(0, context.run.total_run_time + secondsBetween(proposed.timestamp, initial.timestamp));
  }
}

/** The first state fixes when the run is expected to start: its scheduled time, or its timestamp. */
export class SetExpectedStartTime extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    if (!proposed || context.run.expected_start_time) return;
    context.run.expected_start_time = proposed.type === "SCHEDULED" ? proposed.state_details.scheduled_time : proposed.timestamp;
  }
}

/** Set on entering SCHEDULED, cleared on leaving it. */
export class SetNextScheduledStartTime extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    if (this.nullifiedTransition()) return;
    if (context.initialState?.type === "SCHEDULED") context.run.next_scheduled_start_time = null;
    const proposed = context.proposedState;
    if (proposed?.type === "SCHEDULED") context.run.next_scheduled_start_time = proposed.state_details.scheduled_time;
  }
}

/** Points the state at its run(s). */
export class UpdateStateDetails extends UniversalTransform {
  protected override async beforeTransition(context: OrchestrationContext): Promise<void> {
    const details = context.proposedState?.state_details;
    if (!details) return;
    if (context.kind === "flow") {
      details.flow_run_id = context.run.id;
    } else {
      details.flow_run_id = context.run.flow_run_id;
      details.task_run_id = context.run.id;
    }
  }
}

/** A subflow's state change is forced onto its parent task run, pointing at the subflow. */
export class UpdateSubflowParentTask extends UniversalTransform<FlowOrchestrationContext> {
  protected override async afterTransition(context: FlowOrchestrationContext): Promise<void> {
    if (this.nullifiedTransition()) return;
    const parent = context.run.parent_task_run_id;
    if (!parent || !context.validatedState) return;
    const state = freshCopy(context.validatedState);
    state.state_details.child_flow_run_id = context.run.id;
    await context.nested.setTaskRunState(parent, state);
  }
}

/** A subflow's states point at the task run that tracks it in the parent flow run. */
export class UpdateSubflowStateDetails extends UniversalTransform<FlowOrchestrationContext> {
  protected override async beforeTransition(context: FlowOrchestrationContext): Promise<void> {
    const parent = context.run.parent_task_run_id;
    if (parent && context.proposedState) context.proposedState.state_details.task_run_id = parent;
  }
}

/** Counts the times the run enters RUNNING, except when it resumes from a pause. */
export class IncrementFlowRunCount extends UniversalTransform<FlowOrchestrationContext> {
  protected override async beforeTransition(context: FlowOrchestrationContext): Promise<void> {
    if (context.proposedState?.type !== "RUNNING") return;
    if (apiVersionAtLeast(context.parameters, "0.8.4") && flowRunPolicy(context.run.empirical_policy).resuming) return;
    context.run.run_count += 1;
  }
}

/** A run that resumed clears its `resuming` flag once it runs again or ends. */
export class RemoveResumingIndicator extends UniversalTransform<FlowOrchestrationContext> {
  protected override async beforeTransition(context: FlowOrchestrationContext): Promise<void> {
    const proposed = context.proposedState;
    if (!proposed || !apiVersionAtLeast(context.parameters, "0.8.4")) return;
    if ((proposed.type === "RUNNING" || isFinal(proposed)) && flowRunPolicy(context.run.empirical_policy).resuming) {
      context.run.empirical_policy = withPolicy(context.run.empirical_policy, { resuming: false });
    }
  }
}

export class IncrementTaskRunCount extends UniversalTransform<TaskOrchestrationContext> {
  protected override async beforeTransition(context: TaskOrchestrationContext): Promise<void> {
    if (context.proposedState?.type === "RUNNING") context.run.run_count += 1;
  }
}

const COMMON_GLOBAL_TRANSFORMS = [
  EnsureStateTimestampIsUnique,
  SetRunStateType,
  SetRunStateName,
  SetRunStateTimestamp,
  SetStartTime,
  SetEndTime,
  IncrementRunTime,
  SetExpectedStartTime,
  SetNextScheduledStartTime,
  UpdateStateDetails,
] as const;

export const GlobalFlowPolicy: FlowPolicy = [
  ...COMMON_GLOBAL_TRANSFORMS,
  UpdateSubflowParentTask,
  UpdateSubflowStateDetails,
  IncrementFlowRunCount,
  RemoveResumingIndicator,
];

export const GlobalTaskPolicy: TaskPolicy = [...COMMON_GLOBAL_TRANSFORMS, IncrementTaskRunCount];

