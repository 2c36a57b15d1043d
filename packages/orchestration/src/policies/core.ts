/** Prefect's policies (`core_policy.py`): ordered rule lists, first = outermost. */
import type { FlowPolicy, TaskPolicy } from "../rules.js";
import { CopyScheduledTime, PreventPendingTransitions, RenameReruns, WaitForScheduledTime } from "./common-rules.js";
import {
  EnforceDeploymentConcurrencyOnLate,
  ReleaseFlowConcurrencySlots,
  ReleaseTaskConcurrencySlots,
  RemoveDeploymentConcurrencyLeaseForOldClientVersions,
  SecureFlowConcurrencySlots,
  SecureTaskConcurrencySlots,
  ValidateDeploymentConcurrencyAtRunning,
} from "./concurrency.js";
import {
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
} from "./flow-rules.js";
import { InstrumentFlowRunStateTransitions } from "./instrumentation.js";
import {
  CacheInsertion,
  CacheRetrieval,
  CopyTaskParametersID,
  EnqueueScheduledTasks,
  HandleTaskTerminalStateTransitions,
  PreventRunningTasksFromStoppedFlows,
  RetryFailedTasks,
  UpdateFlowRunTrackerOnTasks,
} from "./task-rules.js";

/** `POST /flow_runs/{id}/set_state` without `force`. */
export const CoreFlowPolicy: FlowPolicy = [
  PreserveDeploymentConcurrencyLeaseId,
  PreventDuplicateTransitions,
  HandleFlowTerminalStateTransitions,
  EnforceCancellingToCancelledTransition,
  BypassCancellingFlowRunsWithNoInfra,
  PreventPendingTransitions,
  ValidateDeploymentConcurrencyAtRunning,
  SecureFlowConcurrencySlots,
  RemoveDeploymentConcurrencyLeaseForOldClientVersions,
  EnsureOnlyScheduledFlowsMarkedLate,
  HandlePausingFlows,
  HandleResumingPausedFlows,
  CopyScheduledTime,
  WaitForScheduledTime,
  RetryFailedFlows,
  InstrumentFlowRunStateTransitions,
  ReleaseFlowConcurrencySlots,
];

/** `force=True` (and run creation with an initial state). */
export const MinimalFlowPolicy: FlowPolicy = [
  PreventResultDataLoss,
  BypassCancellingFlowRunsWithNoInfra,
  InstrumentFlowRunStateTransitions,
  ReleaseFlowConcurrencySlots,
];

/** The late-runs service marking SCHEDULED runs "Late". */
export const MarkLateRunsPolicy: FlowPolicy = [EnsureOnlyScheduledFlowsMarkedLate, EnforceDeploymentConcurrencyOnLate, InstrumentFlowRunStateTransitions];

/** `POST /task_runs/{id}/set_state` without `force`. */
export const CoreTaskPolicy: TaskPolicy = [
  CacheRetrieval,
  HandleTaskTerminalStateTransitions,
  PreventRunningTasksFromStoppedFlows,
  SecureTaskConcurrencySlots,
  CopyScheduledTime,
  WaitForScheduledTime,
  RetryFailedTasks,
  RenameReruns,
  UpdateFlowRunTrackerOnTasks,
  CacheInsertion,
  ReleaseTaskConcurrencySlots,
];

/** CoreTaskPolicy for clients that secure tag slots themselves. */
export const ClientSideTaskOrchestrationPolicy: TaskPolicy = [
  CacheRetrieval,
  HandleTaskTerminalStateTransitions,
  PreventRunningTasksFromStoppedFlows,
  CopyScheduledTime,
  WaitForScheduledTime,
  RetryFailedTasks,
  RenameReruns,
  UpdateFlowRunTrackerOnTasks,
  CacheInsertion,
  ReleaseTaskConcurrencySlots,
];

/** Deferred (background) task runs: any proposal with `state_details.deferred`. */
export const BackgroundTaskPolicy: TaskPolicy = [
  PreventPendingTransitions,
  CacheRetrieval,
  HandleTaskTerminalStateTransitions,
  CopyScheduledTime,
  CopyTaskParametersID,
  WaitForScheduledTime,
  RetryFailedTasks,
  RenameReruns,
  UpdateFlowRunTrackerOnTasks,
  CacheInsertion,
  ReleaseTaskConcurrencySlots,
  EnqueueScheduledTasks,
];

/** `force=True` for task runs: only give tag slots back. */
export const MinimalTaskPolicy: TaskPolicy = [ReleaseTaskConcurrencySlots];
