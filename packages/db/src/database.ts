import { backendFor } from "./backends/index.js";
import { type DatabaseConfig, describeLocation, loadDatabaseConfig } from "./config.js";
import type { Queryable } from "./driver/types.js";
import { type MigrationStatus, Migrator } from "./migrations/migrator.js";
import { type ArtifactRepository, artifactRepository } from "./repositories/artifacts.js";
import { type AutomationRepository, automationRepository } from "./repositories/automations.js";
import { type BlockRepository, blockRepository } from "./repositories/blocks.js";
import { type ConfigurationRepository, configurationRepository } from "./repositories/configuration.js";
import { type DeploymentRepository, deploymentRepository } from "./repositories/deployments.js";
import { type ConcurrencyLimitRepository, concurrencyLimitRepository } from "./repositories/concurrency-limits.js";
import { type CsrfTokenRepository, csrfTokenRepository } from "./repositories/csrf-tokens.js";
import { type FlowRunInputRepository, flowRunInputRepository } from "./repositories/flow-run-inputs.js";
import { type SavedSearchRepository, savedSearchRepository } from "./repositories/saved-searches.js";
import { type VariableRepository, variableRepository } from "./repositories/variables.js";
import type { RepositoryContext } from "./repositories/context.js";
import { type EventRepository, eventRepository } from "./repositories/events.js";
import { type FlowRunRepository, flowRunRepository } from "./repositories/flow-runs.js";
import { type FlowRepository, flowRepository } from "./repositories/flows.js";
import { type LogRepository, logRepository } from "./repositories/logs.js";
import { type TaskRunRepository, taskRunRepository } from "./repositories/task-runs.js";
import { type WorkPoolRepository, workPoolRepository } from "./repositories/work-pools/index.js";
import { type ScheduledRunRepository, scheduledRunRepository } from "./repositories/scheduled-runs.js";
import { type CancellationRepository, cancellationRepository } from "./repositories/cancellations.js";
import { sql } from "./sql.js";

/** Every repository, bound to the pool or to one transaction. */
export interface Repositories {
  readonly flows: FlowRepository;
  readonly flowRuns: FlowRunRepository;
  readonly taskRuns: TaskRunRepository;
  readonly logs: LogRepository;
  readonly events: EventRepository;
  readonly blocks: BlockRepository;
  readonly configuration: ConfigurationRepository;
  readonly deployments: DeploymentRepository;
  readonly workPools: WorkPoolRepository;
  readonly concurrencyLimits: ConcurrencyLimitRepository;
  readonly variables: VariableRepository;
  readonly savedSearches: SavedSearchRepository;
  readonly flowRunInputs: FlowRunInputRepository;
  readonly csrfTokens: CsrfTokenRepository;
  readonly artifacts: ArtifactRepository;
  readonly automations: AutomationRepository;
  /** The scheduler's queries and its idempotent batched insert of scheduled runs. */
  readonly scheduledRuns: ScheduledRunRepository;
  /** The cancellation cleanup's queries. */
  readonly cancellations: CancellationRepository;
  /** Runs `fn` atomically: a transaction, or a savepoint inside the current one. */
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T>;
}

export interface DatabaseHealth {
  readonly ok: boolean;
  readonly backend: DatabaseConfig["backend"];
  readonly server: string;
  readonly error?: string;
}

/**
 * The database: every repository, plus `transaction(fn)`, which runs `fn` atomically on one connection
 * (every repository call on `tx`, or on this database from within `fn`, commits together, and a throw
 * rolls all of it back; nested calls use savepoints).
 */
export interface Database extends Repositories {
  readonly config: DatabaseConfig;
  readonly backend: DatabaseConfig["backend"];
  /** Where the database is, with any password hidden. */
  readonly location: string;
  /** Applies pending migrations; returns their names. */
  migrate(): Promise<string[]>;
  migrationStatus(): Promise<MigrationStatus>;
  /** Drops everything and migrates from scratch. */
  reset(): Promise<string[]>;
  health(): Promise<DatabaseHealth>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Overrides `config.migrateOnStart`. */
  readonly migrate?: boolean;
}

function repositories(context: RepositoryContext): Repositories {
  return {
    transaction: (fn) => context.q.transaction((tx) => fn(repositories({ ...context, q: tx }))),
    flows: flowRepository(context),
    flowRuns: flowRunRepository(context),
    taskRuns: taskRunRepository(context),
    logs: logRepository(context),
    events: eventRepository(context),
    blocks: blockRepository(context),
    configuration: configurationRepository(context),
    deployments: deploymentRepository(context),
    workPools: workPoolRepository(context),
    concurrencyLimits: concurrencyLimitRepository(context),
    variables: variableRepository(context),
    savedSearches: savedSearchRepository(context),
    flowRunInputs: flowRunInputRepository(context),
    csrfTokens: csrfTokenRepository(context),
    artifacts: artifactRepository(context),
    automations: automationRepository(context),
    scheduledRuns: scheduledRunRepository(context),
    cancellations: cancellationRepository(context),
  };
}

/**
 * Opens the configured database (SQLite or PostgreSQL, from the environment unless `config` is
 * given) and, unless turned off, applies pending migrations.
 */
export async function openDatabase(config: DatabaseConfig = loadDatabaseConfig(), options: OpenOptions = {}): Promise<Database> {
  const backend = backendFor(config);
  const driver = await backend.connect(config);
  const migrator = new Migrator(driver, backend.migrationHooks, backend.migrations);
  const bound = (q: Queryable) => repositories({ q, backend });

  const db: Database = {
    ...bound(driver),
    config,
    backend: config.backend,
    location: describeLocation(config),
    migrate: () => migrator.upgrade(),
    migrationStatus: () => migrator.status(),
    async reset() {
      await migrator.dropAll();
      return migrator.upgrade();
    },
    async health() {
      try {
        await driver.query(sql`SELECT 1 AS ok`);
        return { ok: true, backend: config.backend, server: await driver.serverVersion() };
      } catch (error) {
        return { ok: false, backend: config.backend, server: await driver.serverVersion(), error: error instanceof Error ? error.message : String(error) };
      }
    },
    close: () => driver.close(),
  };

  if (options.migrate ?? config.migrateOnStart) {
    try {
      await migrator.upgrade();
    } catch (error) {
      await driver.close();
      throw error;
    }
  }
  return db;
}
