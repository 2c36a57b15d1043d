/**
 * @prefect/orchestration: Prefect's state-transition orchestration for flow runs and task runs over
 * @prefect/db. Entry points: `setFlowRunState`, `setTaskRunState`, `createFlowRun`, `createTaskRun`.
 */
export {
  DEFAULT_SETTINGS,
  FlowOrchestrationContext,
  type KnownRows,
  type NestedOrchestration,
  type OrchestrationContext,
  type OrchestrationEvent,
  type OrchestrationSettings,
  type SetStateStatus,
  type StateResponseDetails,
  TaskOrchestrationContext,
} from "./context.js";
export { flowRunStateChangeEvent, statePayload, truncatedTo } from "./events.js";
export { type EventParts, type PrefectEvent, prefectEvent, type ReceivedEvent, receivedAt, type ResourceLabels } from "./prefect-event.js";
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
export { CopyScheduledTime, PreventPendingTransitions, RenameReruns, WaitForScheduledTime } from "./policies/common-rules.js";
export {
  EnforceDeploymentConcurrencyOnLate,
  MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING,
  ReleaseFlowConcurrencySlots,
  ReleaseTaskConcurrencySlots,
  RemoveDeploymentConcurrencyLeaseForOldClientVersions,
  SecureFlowConcurrencySlots,
  SecureTaskConcurrencySlots,
  ValidateDeploymentConcurrencyAtRunning,
  WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY,
} from "./policies/concurrency.js";
export {
  BackgroundTaskPolicy,
  ClientSideTaskOrchestrationPolicy,
  CoreFlowPolicy,
  CoreTaskPolicy,
  MarkLateRunsPolicy,
  MinimalFlowPolicy,
  MinimalTaskPolicy,
} from "./policies/core.js";
export {
  BypassCancellingFlowRunsWithNoInfra,
  EnforceCancellingToCancelledTransition,
  EnsureOnlyScheduledFlowsMarkedLate,
  HandleFlowTerminalStateTransitions,
  HandlePausingFlows,
  HandleResumingPausedFlows,
  PreserveDeploymentConcurrencyLeaseId,
  PreventDuplicateTransitions,
  PreventResultDataLoss,
  RetryFailedFlows,
} from "./policies/flow-rules.js";
export {
  EnsureStateTimestampIsUnique,
  GlobalFlowPolicy,
  GlobalTaskPolicy,
  IncrementFlowRunCount,
  IncrementRunTime,
  IncrementTaskRunCount,
  RemoveResumingIndicator,
  SetEndTime,
  SetExpectedStartTime,
  SetNextScheduledStartTime,
  SetRunStateName,
  SetRunStateTimestamp,
  SetRunStateType,
  SetStartTime,
  UpdateStateDetails,
  UpdateSubflowParentTask,
  UpdateSubflowStateDetails,
} from "./policies/global.js";
export { InstrumentFlowRunStateTransitions } from "./policies/instrumentation.js";
export {
  apiVersionAtLeast,
  FLOW_RUN_POLICY_DEFAULTS,
  type FlowRunPolicyView,
  flowRunPolicy,
  flowRunPolicyWithDefaults,
  normalizeFlowRunPolicy,
  normalizeTaskRunPolicy,
  TASK_RUN_POLICY_DEFAULTS,
  type TaskRunPolicyView,
  taskRunPolicy,
  taskRunPolicyWithDefaults,
} from "./policies/run-policy.js";
export {
  CacheInsertion,
  CacheRetrieval,
  CopyTaskParametersID,
  EnqueueScheduledTasks,
  HandleTaskTerminalStateTransitions,
  PreventRunningTasksFromStoppedFlows,
  RetryFailedTasks,
  UpdateFlowRunTrackerOnTasks,
} from "./policies/task-rules.js";
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
