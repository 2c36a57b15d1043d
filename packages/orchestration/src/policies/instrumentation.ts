/** Prefect's InstrumentFlowRunStateTransitions (`instrumentation_policies.py`). */
import type { FlowOrchestrationContext } from "../context.js";
import { flowRunStateChangeEvent } from "../events.js";
import { UniversalTransform } from "../rules.js";

/** Every flow-run transition that writes a state produces a `prefect.flow-run.<StateName>` event. */
export class InstrumentFlowRunStateTransitions extends UniversalTransform<FlowOrchestrationContext> {
  protected override async afterTransition(context: FlowOrchestrationContext): Promise<void> {
    if (!context.proposedState || !context.validatedState) return;
    context.events.push(await flowRunStateChangeEvent(context, context.initialState, context.validatedState));
  }
}
