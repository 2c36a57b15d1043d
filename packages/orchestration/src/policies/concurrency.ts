/**
 * Deployment and tag concurrency (Prefect's SecureFlowConcurrencySlots, ReleaseFlowConcurrencySlots,
 * ValidateDeploymentConcurrencyAtRunning, RemoveDeploymentConcurrencyLeaseForOldClientVersions,
 * EnforceDeploymentConcurrencyOnLate, SecureTaskConcurrencySlots, ReleaseTaskConcurrencySlots).
 *
 * Deployment slots are held in the database alone: a flow run takes one slot on its deployment's
 * limit (`concurrency_limit_v2.active_slots`) when it enters PENDING, and gives it back when it
 * leaves PENDING/RUNNING/CANCELLING for any other kind of state. Whether a run holds a slot is told by
 * its state, so nothing lives outside the database, and no lease id is handed to clients (a client
 * with a lease id renews it and crashes when the server does not know it). This is Prefect's
 * behaviour for runs without a lease; what is lost is the lease expiry that frees the slot of a run
 * whose infrastructure vanished without reporting a state: such a run holds its slot until it is
 * moved to another state (e.g. marked CRASHED).
 *
 * Tag slots of task runs are counted in the `tag:<tag>` limits (or legacy v1 rows, which list their
 * holders), with a lease naming the task run, as Prefect does, so that release frees exactly what the
 * run holds. Leases are rows of the database, written in the transition's transaction: a transition
 * that rolls back leaves them as they were.
 */
import { addSeconds, type ConcurrencyLease, type DeploymentConcurrency, now, TASK_LEASE_TTL_SECONDS } from "@prefect/db";
import type { FlowOrchestrationContext, OrchestrationContext, TaskOrchestrationContext } from "../context.js";
import { ALL_ORCHESTRATION_STATES, allStatesExcept, OrchestrationRule, type TransitionType, UniversalTransform } from "../rules.js";
import { newState, type OrchestrationState } from "../states.js";
import { clampedPoissonInterval, compareVersions } from "../util.js";

/** Worker versions that managed deployment concurrency themselves (Prefect's WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY). */
export const WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY: ReadonlySet<string> = new Set(["3.0.0rc20", "3.0.0", "3.0.1", "3.0.2", "3.0.3"]);
/** Clients from this version on maintain deployment concurrency leases. */
export const MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING = "3.4.11";

const ACTIVE: ReadonlySet<TransitionType> = new Set(["PENDING", "RUNNING", "CANCELLING"]);

/**
 * Frees a lease's slots and revokes it; without the lease, frees one slot of the fallback limits. The
 * lease is taken out in the transition's transaction: a rollback puts it back.
 */
async function releaseLease(context: OrchestrationContext, leaseId: string, fallbackLimitIds: readonly string[]): Promise<void> {
  const lease = await context.db.concurrencyLeases.takeLease(leaseId);
  if (!lease) {
    if (fallbackLimitIds.length > 0) await context.db.concurrencyLimits.decrementActiveSlots({ ids: fallbackLimitIds }, 1);
    return;
  }
  await context.db.concurrencyLimits.decrementActiveSlots({ ids: lease.resource_ids }, lease.metadata?.slots ?? 1);
}

/**
 * The concurrency settings of the run's deployment (null without a deployment, or when it is gone).
 * The rows the run's events name were read in the transaction with the run's lock, the id of the
 * deployment's limit with them: a deployment found there without a limit needs no read of its own.
 */
async function deploymentOf(context: FlowOrchestrationContext): Promise<DeploymentConcurrency | null> {
  const id = context.run.deployment_id;
  if (!id) return null;
  const related = context.prefetchedRelated ? await context.prefetchedRelated.catch(() => null) : null;
  if (related?.ids.deployment_id === id && related.deployment && related.deploymentConcurrencyLimitId === null) {
    return { id, concurrency_limit_id: null, concurrency_options: null, global_concurrency_limit: null };
  }
  return context.db.deployments.concurrency(id);
}

/**
 * Entering PENDING takes a slot of the deployment's concurrency limit. A limit of 0 aborts; a full
 * limit rejects into AwaitingConcurrencySlot (SCHEDULED a little later; ENQUEUE, the default) or
 * Cancelled (CANCEL_NEW). If the rule fizzles, the slot is given back.
 */
export class SecureFlowConcurrencySlots extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates = allStatesExcept("PENDING", "RUNNING", "CANCELLING");
  static override toStates: ReadonlySet<TransitionType> = new Set(["PENDING"]);
  #acquiredLimitId: string | null = null;

  protected override async beforeTransition(_initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!context.run.deployment_id || !proposed || (context.clientVersion && WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY.has(context.clientVersion))) return;
    const deployment = await deploymentOf(context);
    if (!deployment) {
      await this.abortTransition("Deployment not found.");
      return;
    }
    const limitId = deployment.concurrency_limit_id;
    if (!deployment.global_concurrency_limit || !limitId) return;
    if (deployment.global_concurrency_limit.limit === 0) {
      await this.abortTransition("The deployment concurrency limit is 0. The flow will deadlock if submitted again.");
      return;
    }
    const acquisition = await context.db.concurrencyLimits.incrementActiveSlots({ ids: [limitId] }, 1);
    if (acquisition.acquired) {
      this.#acquiredLimitId = limitId;
      return;
    }
    const reason = "Deployment concurrency limit reached.";
    if ((deployment.concurrency_options?.collision_strategy ?? "ENQUEUE") === "CANCEL_NEW") {
      await this.rejectTransition(newState("CANCELLED", { message: reason }), reason);
    } else {
      const scheduledTime = addSeconds(now(), context.settings.deploymentConcurrencySlotWaitSeconds);
      await this.rejectTransition(newState("SCHEDULED", { name: "AwaitingConcurrencySlot", details: { scheduled_time: scheduledTime } }), reason);
    }
  }

  protected override async cleanup(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!this.#acquiredLimitId) return;
    await context.db.concurrencyLimits.decrementActiveSlots({ ids: [this.#acquiredLimitId] }, 1);
    this.#acquiredLimitId = null;
  }
}

/**
 * PENDING → RUNNING keeps the lease id of the PENDING state. (Prefect also renews that lease here
 * and re-acquires a reaped slot; slots held by state, as here, cannot be reaped.)
 */
export class ValidateDeploymentConcurrencyAtRunning extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["PENDING"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["RUNNING"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null): Promise<void> {
    if (!initial || !proposed) return;
    proposed.state_details.deployment_concurrency_lease_id = initial.state_details.deployment_concurrency_lease_id;
  }
}

/** Clients older than 3.4.11 cannot renew deployment leases: their lease is revoked once they leave PENDING. */
export class RemoveDeploymentConcurrencyLeaseForOldClientVersions extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["PENDING"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["RUNNING", "CANCELLING"]);

  protected override async afterTransition(initial: OrchestrationState | null, _validated: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial) return;
    if (context.clientVersion && compareVersions(context.clientVersion, MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING) >= 0) return;
    const leaseId = initial.state_details.deployment_concurrency_lease_id;
    if (!leaseId) return;
    await context.db.concurrencyLeases.revokeLease(leaseId);
  }
}

/** Leaving PENDING/RUNNING/CANCELLING for another kind of state gives the deployment slot back. */
export class ReleaseFlowConcurrencySlots extends UniversalTransform<FlowOrchestrationContext> {
  protected override async afterTransition(context: FlowOrchestrationContext): Promise<void> {
    if (this.nullifiedTransition()) return;
    if (!ACTIVE.has(context.initialStateType) || ACTIVE.has(context.proposedStateType)) return;
    if (!context.run.deployment_id) return;
    const leaseId = context.initialState?.state_details.deployment_concurrency_lease_id;
    const deployment = await deploymentOf(context);
    const limitIds = deployment?.concurrency_limit_id ? [deployment.concurrency_limit_id] : [];
    if (leaseId) {
      await releaseLease(context, leaseId, limitIds);
      return;
    }
    if (limitIds.length > 0) await context.db.concurrencyLimits.decrementActiveSlots({ ids: limitIds }, 1);
  }
}

/** Marking a run Late cancels it instead when its deployment's CANCEL_NEW limit is full (MarkLateRunsPolicy). */
export class EnforceDeploymentConcurrencyOnLate extends OrchestrationRule<FlowOrchestrationContext> {
  static override fromStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED"]);
  static override toStates: ReadonlySet<TransitionType> = new Set(["SCHEDULED"]);

  protected override async beforeTransition(initial: OrchestrationState | null, proposed: OrchestrationState | null, context: FlowOrchestrationContext): Promise<void> {
    if (!initial || !proposed || proposed.type !== "SCHEDULED" || proposed.name !== "Late") return;
    const deployment = await deploymentOf(context);
    if (!deployment?.concurrency_limit_id || deployment.concurrency_options?.collision_strategy !== "CANCEL_NEW") return;
    const limit = deployment.global_concurrency_limit;
    if (limit && limit.active_slots >= limit.limit) {
      const reason = "Deployment concurrency limit is full and uses the CANCEL_NEW strategy.";
      await this.rejectTransition(newState("CANCELLED", { message: "Deployment concurrency limit reached." }), reason);
    }
  }
}

/** The leases the task run holds on the `tag:` limits of its tags. */
async function heldLeases(context: TaskOrchestrationContext): Promise<ConcurrencyLease[]> {
  const limits = await context.db.concurrencyLimits.readByNames(context.run.tags.map((tag) => `tag:${tag}`));
  const limitIds = new Set(limits.map((limit) => limit.id));
  const held = await context.db.concurrencyLeases.listLeasesHeldBy({ type: "task_run", id: context.run.id });
  return held.filter((lease) => lease.resource_ids.some((id) => limitIds.has(id)));
}

/** Takes the task run's leases out (in the transition's transaction), returning those it got. */
async function takeHeldLeases(context: TaskOrchestrationContext): Promise<ConcurrencyLease[]> {
  const taken: ConcurrencyLease[] = [];
  for (const lease of await heldLeases(context)) {
    const got = await context.db.concurrencyLeases.takeLease(lease.id);
    if (got) taken.push(got);
  }
  return taken;
}

/**
 * Entering RUNNING takes one slot on the limit of each of the task run's tags (all or none), recorded
 * as a lease held by the task run. A limit of 0 aborts (the task would deadlock); a full limit tells
 * the client to WAIT: a Poisson-jittered interval around the limit's average slot occupancy, capped
 * by `taskTagConcurrencySlotWaitSeconds` (legacy v1 limits: that setting as is). A run that already
 * holds a lease (RUNNING → RUNNING) takes nothing more, as Prefect's v1 limits (which list their
 * holders) behave; Prefect's v2 path would take a second slot.
 */
export class SecureTaskConcurrencySlots extends OrchestrationRule<TaskOrchestrationContext> {
  static override fromStates = ALL_ORCHESTRATION_STATES;
  static override toStates: ReadonlySet<TransitionType> = new Set(["RUNNING"]);
  #lease: ConcurrencyLease | null = null;
  #acquired = false;

  protected override async beforeTransition(_initial: OrchestrationState | null, _proposed: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    const tags = context.run.tags;
    if (tags.length === 0) return;
    // A run that holds its slots already (RUNNING → RUNNING, a repeated proposal) takes no more.
    if ((await heldLeases(context)).length > 0) return;
    const result = await context.db.concurrencyLimits.incrementTagSlots(tags, context.run.id);
    if (result.status === "zero_limit") {
      await this.abortTransition(`The concurrency limit on tag "${result.tag}" is 0 and will deadlock if the task tries to run again.`);
      return;
    }
    const maxWait = context.settings.taskTagConcurrencySlotWaitSeconds;
    if (result.status === "limit_reached") {
      const active = result.limits.filter((l) => l.active && l.limit > 0);
      if (active.length === 0) {
        await this.delayTransition(Math.trunc(maxWait), `Concurrency limit for the ${result.tag} tag has been reached`);
        return;
      }
      const blocking = active.reduce((a, b) => (b.active_slots / b.limit > a.active_slots / a.limit ? b : a));
      const average = Math.min(blocking.avg_slot_occupancy_seconds || maxWait, maxWait);
      const delay = average > 0 ? clampedPoissonInterval(average, 0.3, context.random) : 0;
      const tagNames = active.map((l) => l.name.replace(/^tag:/, "")).join(", ");
      await this.delayTransition(Math.round(delay), `Concurrency limit reached for tags: ${tagNames}`);
      return;
    }
    this.#acquired = true;
    if (result.limits.length === 0) return;
    this.#lease = await context.db.concurrencyLeases.createLease(
      result.limits.map((l) => l.id),
      TASK_LEASE_TTL_SECONDS,
      { slots: 1, holder: { type: "task_run", id: context.run.id } },
    );
  }

  protected override async cleanup(_initial: OrchestrationState | null, _validated: OrchestrationState | null, context: TaskOrchestrationContext): Promise<void> {
    if (!this.#acquired) return;
    const lease = this.#lease;
    await context.db.concurrencyLimits.decrementTagSlots(context.run.tags, context.run.id, lease ? [{ resource_ids: [...lease.resource_ids], slots: 1 }] : []);
    if (lease) await context.db.concurrencyLeases.revokeLease(lease.id);
    this.#acquired = false;
    this.#lease = null;
  }
}

/** Leaving RUNNING/CANCELLING frees every tag slot the task run holds (its leases, and legacy v1 rows). */
export class ReleaseTaskConcurrencySlots extends UniversalTransform<TaskOrchestrationContext> {
  protected override async afterTransition(context: TaskOrchestrationContext): Promise<void> {
    if (this.nullifiedTransition()) return;
    const validated = context.validatedState;
    if (!validated || validated.type === "RUNNING" || validated.type === "CANCELLING") return;
    const tags = context.run.tags;
    if (tags.length === 0) return;
    const leases = await takeHeldLeases(context);
    await context.db.concurrencyLimits.decrementTagSlots(
      tags,
      context.run.id,
      leases.map((l) => ({ resource_ids: [...l.resource_ids], slots: l.metadata?.slots ?? 1 })),
    );
  }
}
