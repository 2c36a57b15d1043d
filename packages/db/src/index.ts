/** @deprecated The name of a backend; use `BackendName`. */
export type { BackendName as Backend } from "./config.js";
export { type BackendName, type DatabaseConfig, type PostgresConfig, type SqliteConfig, describeLocation, loadDatabaseConfig, redactUrl } from "./config.js";
export { type Database, type DatabaseHealth, type OpenOptions, type Repositories, openDatabase } from "./database.js";
export { AlreadyExistsError, BusyError, DatabaseError, InvalidError, type InvalidReason, isDatabaseError, MigrationError, NotFoundError } from "./errors.js";
export type { AppliedMigration, MigrationStatus } from "./migrations/migrator.js";
export type {
  ArtifactCollectionCriteria,
  ArtifactCollectionReadOptions,
  ArtifactCriteria,
  ArtifactReadOptions,
  ArtifactRelatedCriteria,
  ArtifactRepository,
} from "./repositories/artifacts.js";
export type { AutomationStateRepository } from "./repositories/automation-state.js";
export type { AutomationReadOptions, AutomationRepository, RelatedAutomationOptions } from "./repositories/automations.js";
export type { BlockDocumentReadOptions, BlockRepository, BlockSchemaReadOptions, BlockTypeReadOptions } from "./repositories/blocks.js";
export type { ConfigurationRepository } from "./repositories/configuration.js";
export type { DeploymentCriteria, DeploymentReadOptions, DeploymentRepository, FutureRunDeletionOptions } from "./repositories/deployments.js";
export type { ConcurrencyLeaseRepository } from "./repositories/concurrency-leases.js";
export type { ConcurrencyLimitRepository } from "./repositories/concurrency-limits.js";
export type { CsrfTokenRepository } from "./repositories/csrf-tokens.js";
export type { FlowRunInputRepository } from "./repositories/flow-run-inputs.js";
export type { SavedSearchRepository } from "./repositories/saved-searches.js";
export type { VariableReadOptions, VariableRepository } from "./repositories/variables.js";
export type { EventGroupCount, EventGrouping, EventReadAfterOptions, EventReadOptions, EventRepository, PositionedEvent } from "./repositories/events.js";
export type { FlowRunReadOptions, FlowRunRepository } from "./repositories/flow-runs.js";
export type { FlowReadOptions, FlowRepository } from "./repositories/flows.js";
export { type Log, LogCreate, type LogReadOptions, type LogRepository } from "./repositories/logs.js";
export type { HistoryInterval, HistoryOptions, HistoryStateCount, StateHistory } from "./repositories/run-states.js";
export type { TaskRunReadOptions, TaskRunRepository } from "./repositories/task-runs.js";
export type { RecordedTaskRunChange, TaskRunChange } from "./repositories/task-run-recorder.js";
export type {
  PollTimeoutOptions,
  WorkerHealthOptions,
  WorkerReadOptions,
  WorkerRepository,
  WorkerRunRepository,
  WorkPoolReadOptions,
  WorkPoolRepository,
  WorkQueueReadOptions,
  WorkQueueRepository,
} from "./repositories/work-pools/index.js";
export * from "./schemas/artifacts.js";
export * from "./schemas/automations.js";
export * from "./schemas/blocks.js";
export * from "./schemas/common.js";
export * from "./schemas/deployments.js";
export * from "./schemas/concurrency-leases.js";
export * from "./schemas/concurrency-limits.js";
export * from "./schemas/csrf-tokens.js";
export * from "./schemas/events.js";
export * from "./schemas/flow-run-inputs.js";
export * from "./schemas/filters.js";
export * from "./schemas/runs.js";
export * from "./schemas/saved-searches.js";
export * from "./schemas/variables.js";
export * from "./schemas/work-pools.js";
export { randomRunName } from "./names.js";
export * from "./timestamps.js";
export * from "./schedules.js";
export { type DeploymentsToScheduleOptions, ScheduledRunCreate, type ScheduledRunRepository } from "./repositories/scheduled-runs.js";
export { CANCELLABLE_STATE_TYPES, type CancellationRepository, type CancellingFlowRun, type SubflowRunToCancel } from "./repositories/cancellations.js";
export { parseTextSearch, type TextSearchQuery } from "./text-search.js";
