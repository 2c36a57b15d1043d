/** Rules Prefect applies to flow runs and task runs alike (`core_policy.py`). */
import { now, toMicros } from "@prefect/db";
import type { OrchestrationContext } from "../context.js";
import { ALL_ORCHESTRATION_STATES, OrchestrationRule, type TransitionType } from "../rules.js";
import type { OrchestrationState } from "../states.js";

/** Carries the scheduled time from SCHEDULED to PENDING unless the proposal has its own. */
export class CopyScheduledTime extends OrchestrationRule {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["PENDING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    if (!proposed.state_details.scheduled_time) proposed.state_details.scheduled_time = initial.state_details.scheduled_time;
  }
}

/**
 * Runs start no earlier than their scheduled time by the server's clock: too early, the client is
 * told to WAIT the remaining seconds (rounded to whole seconds) and nothing is written.
 */
export class WaitForScheduledTime extends OrchestrationRule {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED", "PENDING"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["RUNNING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    const scheduled = initial.state_details.scheduled_time;
    if (!scheduled) return;
    // Python's floor(total_seconds) + round(microseconds / 1e6) on a normalised timedelta.
    const micros = toMicros(scheduled) - toMicros(now());
    const whole = Math.floor(micros / 1_000_000);
    const fraction = micros - whole * 1_000_000;
    const delaySeconds = whole + (fraction > 500_000 ? 1 : 0);
    if (delaySeconds > 0) await this.delayTransition(delaySeconds, "Scheduled time is in the future");
  }
}

/**
 * Names the RUNNING state of a run that ran before: "Retrying" after AwaitingRetry, else
 * "Rerunning".
 */
export class RenameReruns extends OrchestrationRule {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["RUNNING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: OrchestrationContext): Promise<void> {
    if (!initial || !proposed) return;
    if (context.run.run_count > 0) await this.renameState(initial.name === "AwaitingRetry" ? "Retrying" : "Rerunning");
  }
}

/**
 * Stops a second submission of the same run: anything already PENDING, RUNNING, CANCELLING or
 * CANCELLED cannot go (back) to PENDING. A PENDING run may move to a differently named PENDING state
 * (Pending → Submitting → InfrastructurePending) other than "Pending", keeping the scheduled time and
 * deployment lease of its current state.
 */
export class PreventPendingTransitions extends OrchestrationRule {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["PENDING", "CANCELLING", "RUNNING", "CANCELLED"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["PENDING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    if (initial.type === "PENDING" && proposed.type === "PENDING" && initial.name !== proposed.name && proposed.name !== "Pending") {
      proposed.state_details.scheduled_time = initial.state_details.scheduled_time;
      proposed.state_details.deployment_concurrency_lease_id = initial.state_details.deployment_concurrency_lease_id;
      return;
    }
    await this.abortTransition(`This run is in a ${initial.type} state and cannot transition to a PENDING state.`);
  }
}
