/**
 * The rule engine (Prefect's `orchestration/rules.py` and `policies.py`).
 *
 * A policy is an ordered list of rule classes. For a transition (initial state type → proposed state
 * type) the engine keeps the rules whose FROM/TO sets contain the two types, enters them in order
 * (first = outermost), then the global transforms, validates the proposed state, and exits them in
 * reverse order. Entering an orchestration rule runs `beforeTransition` unless the rule is invalid
 * (its types do not match, or an earlier rule already changed the transition); exiting runs
 * `afterTransition`, or `cleanup` when the rule "fizzled" (a later rule changed the transition
 * after this one acted). Universal transforms fire on every transition and check for themselves
 * whether it was nullified.
 */
import type { FlowOrchestrationContext, OrchestrationContext, TaskOrchestrationContext } from "./context.js";
import { ALL_STATE_TYPES, type OrchestrationState, type StateType } from "./states.js";

/** A state type, or null for "no state" (a run without a state yet; a nullified proposal). */
export type TransitionType = StateType | null;

/** Every state type, and null. */
export const ALL_ORCHESTRATION_STATES: ReadonlySet<TransitionType> = new Set<TransitionType>([...ALL_STATE_TYPES, null]);

/** Every state type, and null, except `excluded`. */
export function allStatesExcept(...excluded: TransitionType[]): ReadonlySet<TransitionType> {
  return new Set([...ALL_ORCHESTRATION_STATES].filter((t) => !excluded.includes(t)));
}

/** What the engine does with a rule instance. */
export interface GoverningRule {
  enter(): Promise<void>;
  exit(): Promise<void>;
}

/** A rule or transform class, as policies list them. */
export interface RuleClass<C extends OrchestrationContext> {
  readonly fromStates: ReadonlySet<TransitionType>;
  readonly toStates: ReadonlySet<TransitionType>;
  readonly name: string;
  new (context: C, fromStateType: TransitionType, toStateType: TransitionType): GoverningRule;
}

export type Policy<C extends OrchestrationContext> = readonly RuleClass<C>[];
export type FlowPolicy = Policy<FlowOrchestrationContext>;
export type TaskPolicy = Policy<TaskOrchestrationContext>;

/** Prefect's `compile_transition_rules`: the rules of `policy` that govern `from` → `to`, in order. */
export function compileTransitionRules<C extends OrchestrationContext>(policy: Policy<C>, from: TransitionType, to: TransitionType): RuleClass<C>[] {
  return policy.filter((rule) => rule.fromStates.has(from) && rule.toStates.has(to));
}

/**
 * A discrete piece of orchestration logic (Prefect's `BaseOrchestrationRule`). Subclasses set the
 * static `fromStates` / `toStates` and override the hooks; hooks change the transition only through
 * `rejectTransition`, `delayTransition`, `abortTransition` and `renameState` (or by filling in the
 * proposed state's details), and change the run through `context.run`.
 */
export abstract class OrchestrationRule<C extends OrchestrationContext = OrchestrationContext> implements GoverningRule {
  static fromStates: ReadonlySet<TransitionType> = new Set();
  static toStates: ReadonlySet<TransitionType> = new Set();

  #invalidOnEntry: boolean | null = null;

  constructor(
    readonly context: C,
    public fromStateType: TransitionType,
    public toStateType: TransitionType,
  ) {}

  get #definition(): { readonly fromStates: ReadonlySet<TransitionType>; readonly toStates: ReadonlySet<TransitionType> } {
    return this.constructor as unknown as { fromStates: ReadonlySet<TransitionType>; toStates: ReadonlySet<TransitionType> };
  }

  async enter(): Promise<void> {
    if (this.invalid()) return;
    await this.beforeTransition(this.context.initialState, this.context.proposedState, this.context);
  }

  async exit(): Promise<void> {
    if (this.invalid()) return;
    if (this.fizzled()) await this.cleanup(this.context.initialState, this.context.validatedState, this.context);
    else await this.afterTransition(this.context.initialState, this.context.validatedState, this.context);
  }

  /**
   * Invalid rules do nothing: their types are outside FROM/TO, or on entry the context no longer
   * proposes the transition the rule was made for. Decided once, on entry (the type checks are
   * repeated, so a rule that moved its own transition outside its TO states stays silent on exit).
   */
  invalid(): boolean {
    const { fromStates, toStates } = this.#definition;
    if (!fromStates.has(this.fromStateType)) this.#invalidOnEntry = true;
    if (!toStates.has(this.toStateType)) this.#invalidOnEntry = true;
    if (this.#invalidOnEntry === null) this.#invalidOnEntry = this.invalidTransition();
    return this.#invalidOnEntry;
  }

  /** Valid on entry, but the transition changed under it afterwards: its side effects must be undone. */
  fizzled(): boolean {
    if (this.#invalidOnEntry) return false;
    return this.invalidTransition();
  }

  invalidTransition(): boolean {
    return this.fromStateType !== this.context.initialStateType || this.toStateType !== this.context.proposedStateType;
  }

  /** Fires before the state is validated; may change the transition. */
  protected async beforeTransition(_initial: OrchestrationState | null, _proposed: OrchestrationState | null, _context: C): Promise<void> {}
  /** Fires after validation when the rule still governs the transition. */
  protected async afterTransition(_initial: OrchestrationState | null, _validated: OrchestrationState | null, _context: C): Promise<void> {}
  /** Fires after validation when the rule fizzled: revert what `beforeTransition` did. */
  protected async cleanup(_initial: OrchestrationState | null, _validated: OrchestrationState | null, _context: C): Promise<void> {}

  #assertNotValidated(): void {
    if (this.context.validatedState) throw new Error("The transition is already validated");
  }

  /**
   * Rejects the proposed state for `state`, or, with null, keeps the run's current state (nothing is
   * written). The rule itself does not fizzle.
   */
  protected async rejectTransition(state: OrchestrationState | null, reason: string): Promise<void> {
    this.#assertNotValidated();
    if (state === null) {
      if (this.fromStateType === null) {
        throw new Error("The current run has no state; this transition cannot be rejected without providing a new state.");
      }
      this.toStateType = null;
      this.context.proposedState = null;
    } else {
      this.toStateType = state.type;
      this.context.proposedState = state;
    }
    this.context.responseStatus = "REJECT";
    this.context.responseDetails = { type: "reject_details", reason };
  }

  /** Tells the client to retry after `delaySeconds`; nothing is written. */
  protected async delayTransition(delaySeconds: number, reason: string): Promise<void> {
    this.#assertNotValidated();
    this.toStateType = null;
    this.context.proposedState = null;
    this.context.responseStatus = "WAIT";
    this.context.responseDetails = { type: "wait_details", delay_seconds: delaySeconds, reason };
  }

  /** Stops the transition for good; nothing is written. */
  protected async abortTransition(reason: string): Promise<void> {
    this.#assertNotValidated();
    this.toStateType = null;
    this.context.proposedState = null;
    this.context.responseStatus = "ABORT";
    this.context.responseDetails = { type: "abort_details", reason };
  }

  /** Renames the proposed state (its type stays, so no rule is invalidated). */
  protected async renameState(name: string): Promise<void> {
    if (this.context.proposedState) this.context.proposedState.name = name;
  }

  /** Passes a value to later rules. */
  protected updateContextParameters(key: string, value: unknown): void {
    this.context.parameters[key] = value;
  }
}

/**
 * Privileged bookkeeping that fires on every transition (Prefect's `BaseUniversalTransform`); it
 * must check `nullifiedTransition()` itself.
 */
export abstract class UniversalTransform<C extends OrchestrationContext = OrchestrationContext> implements GoverningRule {
  static fromStates: ReadonlySet<TransitionType> = ALL_ORCHESTRATION_STATES;
  static toStates: ReadonlySet<TransitionType> = ALL_ORCHESTRATION_STATES;

  constructor(
    readonly context: C,
    readonly fromStateType: TransitionType,
    readonly toStateType: TransitionType,
  ) {}

  async enter(): Promise<void> {
    await this.beforeTransition(this.context);
  }

  async exit(): Promise<void> {
    await this.afterTransition(this.context);
  }

  protected async beforeTransition(_context: C): Promise<void> {}
  protected async afterTransition(_context: C): Promise<void> {}

  /** No state will be written: a rule rejected with none, delayed or aborted the transition. */
  nullifiedTransition(): boolean {
    return this.context.proposedState === null;
  }
}

/**
 * Runs one transition through `policy` and then `globalPolicy` (Prefect's `AsyncExitStack` in
 * `set_flow_run_state`). An exception thrown by a hook propagates (Prefect re-raises it after
 * aborting), so the caller's transaction rolls back.
 */
export async function governTransition<C extends OrchestrationContext>(context: C, policy: Policy<C>, globalPolicy: Policy<C>): Promise<void> {
  const from = context.initialStateType;
  const to = context.proposedStateType;
  const entered: GoverningRule[] = [];
  for (const Rule of [...compileTransitionRules(policy, from, to), ...compileTransitionRules(globalPolicy, from, to)]) {
    const rule = new Rule(context, from, to);
    await rule.enter();
    entered.push(rule);
  }
  await context.validateProposedState();
  for (const rule of entered.reverse()) await rule.exit();
}
