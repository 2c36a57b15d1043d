/**
 * @prefect/db: open a database (`openDatabase`) and use its repositories (`Database`, `Repositories`).
 * Exported: the repository interfaces, the errors they throw, and the row, input and filter types and
 * schemas the apps and this package's suites use. Anything else stays inside the package.
 */
export { type DatabaseConfig, describeLocation, loadDatabaseConfig, redactUrl } from "./config.js";
export { type Database, openDatabase } from "./database.js";
export { CHECK_TRANSACTION_SCOPE_VARIABLE, ScopeError } from "./driver/scope.js";
export {
  AlreadyExistsError,
  BusyError,
  DatabaseError,
  InvalidError,
  isDatabaseError,
  MigrationError,
  NotFoundError,
  StateTimestampTakenError,
} from "./errors.js";
export type { MigrationStatus } from "./migrations/migrator.js";
export { uuid7 } from "./ids.js";
export { randomRunName } from "./names.js";
export type { ArtifactCollectionCriteria, ArtifactCollectionReadOptions, ArtifactCriteria, ArtifactReadOptions, ArtifactRepository } from "./repositories/artifacts.js";
export type { AutomationStateRepository } from "./repositories/automation-state.js";
export type { AutomationReadOptions, AutomationRepository } from "./repositories/automations.js";
export type { BlockDocumentReadOptions, BlockRepository, BlockSchemaReadOptions, BlockTypeReadOptions } from "./repositories/blocks.js";
export type { Repositories } from "./repositories/bound.js";
export { CANCELLABLE_STATE_TYPES, type CancellationRepository } from "./repositories/cancellations.js";
export type { ConcurrencyLeaseRepository } from "./repositories/concurrency-leases.js";
export type { ConcurrencyLimitRepository } from "./repositories/concurrency-limits.js";
export type { ConfigurationRepository } from "./repositories/configuration.js";
export type { CsrfTokenRepository } from "./repositories/csrf-tokens.js";
export type { DeploymentConcurrency, DeploymentCriteria, DeploymentReadOptions, DeploymentRepository } from "./repositories/deployments.js";
export type { EventGroupCount, EventRepository, GroupWindow, PositionedEvent } from "./repositories/events.js";
export type { FlowRunInputRepository } from "./repositories/flow-run-inputs.js";
export type { FlowRunReadOptions, FlowRunRelated, FlowRunRepository, RelatedIds, StoredRunRelated } from "./repositories/flow-runs.js";
export type { FlowReadOptions, FlowRepository } from "./repositories/flows.js";
export { type Log, LogCreate, type LogReadOptions, type LogRepository } from "./repositories/logs.js";
export type { HistoryInterval, HistoryStateCount, StateHistory } from "./repositories/run-states.js";
export type { SavedSearchRepository } from "./repositories/saved-searches.js";
export { ScheduledRunCreate, type ScheduledRunRepository } from "./repositories/scheduled-runs.js";
export type { RecordedTaskRunChange, TaskRunChange } from "./repositories/task-run-recorder.js";
export type { TaskRunReadOptions, TaskRunRepository } from "./repositories/task-runs.js";
export type { VariableReadOptions, VariableRepository } from "./repositories/variables.js";
export type { WorkerRunRepository } from "./repositories/work-pools/claims.js";
export type { WorkPoolRepository } from "./repositories/work-pools/pools.js";
export type { WorkQueueRepository } from "./repositories/work-pools/queues.js";
export type { WorkerRepository } from "./repositories/work-pools/workers.js";
export { type ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLeaseMetadata, TASK_LEASE_TTL_SECONDS } from "./schemas/concurrency-leases.js";
export { type CronSchedule, type IntervalSchedule, isCronSchedule, isIntervalSchedule, isRRuleSchedule, type RRuleSchedule, type Schedule, type ScheduleInput, ScheduleSchema } from "./schedules.js";
export { type Artifact, type ArtifactCollection, ArtifactCreate, ArtifactUpdate } from "./schemas/artifacts.js";
export { type Automation, type AutomationActionQueueEntry, type AutomationBucket, AutomationCreate, JsonDocument } from "./schemas/automations.js";
export { type BlockDocument, BlockDocumentCreate, type BlockDocumentReference, type BlockSchema, BlockSchemaCreate, type BlockSchemaReference, type BlockType, BlockTypeCreate, DEFAULT_BLOCK_SCHEMA_VERSION } from "./schemas/blocks.js";
export { type Created, JsonObject, Labels, STATE_TYPES, StateType, Tags, TERMINAL_STATE_TYPES, Uuid } from "./schemas/common.js";
export { type ConcurrencyLimitV2, ConcurrencyLimitV2Create, ConcurrencyLimitV2Update, type RetryHint, type SlotAcquisition, SlotWaitSettings, type TagConcurrencyLimit, type TagSlotRelease } from "./schemas/concurrency-limits.js";
export type { CsrfToken } from "./schemas/csrf-tokens.js";
export { type Deployment, DeploymentCreate, type DeploymentSchedule, DeploymentScheduleCreate } from "./schemas/deployments.js";
export { EventCreate, EventFilter, type StoredEvent } from "./schemas/events.js";
export { AutomationFilter, AutomationSort, BlockDocumentFilter, BlockSchemaFilter, FlowFilter, FlowRunFilter, FlowRunSort, FlowSort, LogFilter, type RunCriteria, TaskRunFilter, TaskRunSort, VariableFilter } from "./schemas/filters.js";
export type { FlowRunInput } from "./schemas/flow-run-inputs.js";
export { defaultStateName, type Flow, FlowCreate, type FlowRun, FlowRunCreate, type FlowRunState, FlowUpdate, RunBookkeeping, type State, StateCreate, type TaskRun, TaskRunCreate, type TaskRunState } from "./schemas/runs.js";
export { type SavedSearch, SavedSearchCreate } from "./schemas/saved-searches.js";
export { MAX_VARIABLE_NAME_LENGTH, MAX_VARIABLE_VALUE_LENGTH, type Variable, VariableUpdate } from "./schemas/variables.js";
export { QueueFilter, ScheduledFlowRunQuery, type SlotHolder, type Worker, type WorkerFlowRun, type WorkPool, WorkPoolCreate, WorkPoolUpdate, type WorkQueue, WorkQueueCreate } from "./schemas/work-pools.js";
export { fitsIndexedText, INDEXED_TEXT_TOO_LONG } from "./tables.js";
export { parseTextSearch } from "./text-search.js";
export { addSeconds, fromMicros, now, secondsBetween, type Timestamp, TimestampSchema, toDate, toMicros, toTimestamp } from "./timestamps.js";
