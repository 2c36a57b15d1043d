/**
 * @prefect/orchestration: Prefect's state-transition orchestration for flow runs and task runs over
 * @prefect/db. Entry points: `setFlowRunState`, `setTaskRunState`, `createFlowRun`, `createTaskRun`.
 */
export {
  DEFAULT_SETTINGS,
  FlowOrchestrationContext,
  type NestedOrchestration,
  type OrchestrationContext,
  type OrchestrationEvent,
  type OrchestrationSettings,
  type SetStateStatus,
  type StateResponseDetails,
  TaskOrchestrationContext,
} from "./context.js";
export { flowRunStateChangeEvent, statePayload, truncatedTo } from "./events.js";
export {
  type ConcurrencyLease,
  type ConcurrencyLeaseHolder,
  type ConcurrencyLeaseMetadata,
  defaultLeaseStorage,
  type LeaseStorage,
  MemoryLeaseStorage,
  TASK_LEASE_TTL_SECONDS,
} from "./leases.js";
export {
  type CreatedRun,
  createFlowRun,
  createTaskRun,
  type OrchestrationResult,
  type SetFlowRunStateOptions,
  type SetStateOptions,
  type SetTaskRunStateOptions,
  setFlowRunState,
  setTaskRunState,
  type TaskOrchestrationResult,
} from "./orchestrate.js";
export * from "./policies/common-rules.js";
export * from "./policies/concurrency.js";
export * from "./policies/core.js";
export * from "./policies/flow-rules.js";
export * from "./policies/global.js";
export * from "./policies/instrumentation.js";
export { apiVersionAtLeast, type FlowRunPolicyView, flowRunPolicy, type TaskRunPolicyView, taskRunPolicy } from "./policies/run-policy.js";
export * from "./policies/task-rules.js";
export {
  ALL_ORCHESTRATION_STATES,
  allStatesExcept,
  compileTransitionRules,
  type FlowPolicy,
  type GoverningRule,
  governTransition,
  OrchestrationRule,
  type Policy,
  type RuleClass,
  type TaskPolicy,
  type TransitionType,
  UniversalTransform,
} from "./rules.js";
export {
  ALL_STATE_TYPES,
  copyState,
  emptyStateDetails,
  freshCopy,
  fromStoredState,
  hasPersistedResult,
  isFinal,
  newState,
  type NewStateOptions,
  type OrchestrationState,
  parseStateDetails,
  parseStateInput,
  type StateDetails,
  type StateInput,
  TERMINAL_STATES,
} from "./states.js";
export { clampedPoissonInterval, compareVersions, isoformat, type RandomSource, uuid7 } from "./util.js";
