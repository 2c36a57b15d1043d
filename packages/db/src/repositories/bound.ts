/**
 * The repositories as `db` and `tx` offer them: bound to one queryable (the pool, or one transaction),
 * each built on first use and kept. A transaction binds its queryable once and builds only the
 * repositories its callback uses; a nested transaction (a savepoint on the same connection) gets
 * the binding of its parent back.
 */
import type { Backend } from "../backends/backend.js";
import type { Queryable } from "../driver/types.js";
import type { RepositoryContext } from "./context.js";
import { type ArtifactRepository, artifactRepository } from "./artifacts.js";
import { type AutomationRepository, automationRepository } from "./automations.js";
import { type BlockRepository, blockRepository } from "./blocks.js";
import { type CancellationRepository, cancellationRepository } from "./cancellations.js";
import { type ConcurrencyLeaseRepository, concurrencyLeaseRepository } from "./concurrency-leases.js";
import { type ConcurrencyLimitRepository, concurrencyLimitRepository } from "./concurrency-limits.js";
import { type ConfigurationRepository, configurationRepository } from "./configuration.js";
import { type CsrfTokenRepository, csrfTokenRepository } from "./csrf-tokens.js";
import { type DeploymentRepository, deploymentRepository } from "./deployments.js";
import { type EventRepository, eventRepository } from "./events.js";
import { type FlowRunInputRepository, flowRunInputRepository } from "./flow-run-inputs.js";
import { type FlowRunRepository, flowRunRepository } from "./flow-runs.js";
import { type FlowRepository, flowRepository } from "./flows.js";
import { type LogRepository, logRepository } from "./logs.js";
import { type SavedSearchRepository, savedSearchRepository } from "./saved-searches.js";
import { type ScheduledRunRepository, scheduledRunRepository } from "./scheduled-runs.js";
import { type TaskRunRepository, taskRunRepository } from "./task-runs.js";
import { type VariableRepository, variableRepository } from "./variables.js";
import {
  type WorkerRepository,
  type WorkerRunRepository,
  type WorkPoolRepository,
  type WorkQueueRepository,
  workerRepository,
  workerRunRepository,
  workPoolRepository,
  workQueueRepository,
} from "./work-pools/index.js";

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
  readonly workQueues: WorkQueueRepository;
  readonly workers: WorkerRepository;
  /** The scheduled runs workers read, claim and lock. */
  readonly workerRuns: WorkerRunRepository;
  readonly concurrencyLimits: ConcurrencyLimitRepository;
  /** Concurrency leases: who holds which limits' slots, until when. */
  readonly concurrencyLeases: ConcurrencyLeaseRepository;
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
  /** Whether these repositories are bound to a transaction (a `transaction` callback's `tx`). */
  readonly inTransaction: boolean;
}

type RepositoryName = Exclude<keyof Repositories, "transaction" | "inTransaction">;

/** How each repository is built on a context. */
const FACTORIES: { readonly [K in RepositoryName]: (context: RepositoryContext) => Repositories[K] } = {
  flows: flowRepository,
  flowRuns: flowRunRepository,
  taskRuns: taskRunRepository,
  logs: logRepository,
  events: eventRepository,
  blocks: blockRepository,
  configuration: configurationRepository,
  deployments: deploymentRepository,
  workPools: workPoolRepository,
  workQueues: workQueueRepository,
  workers: workerRepository,
  workerRuns: workerRunRepository,
  concurrencyLimits: concurrencyLimitRepository,
  concurrencyLeases: concurrencyLeaseRepository,
  variables: variableRepository,
  savedSearches: savedSearchRepository,
  flowRunInputs: flowRunInputRepository,
  csrfTokens: csrfTokenRepository,
  artifacts: artifactRepository,
  automations: automationRepository,
  scheduledRuns: scheduledRunRepository,
  cancellations: cancellationRepository,
};
const NAMES = Object.keys(FACTORIES) as RepositoryName[];

/** One binding per queryable; bindings of finished transactions go with them. */
export class Bindings {
  readonly #bound = new WeakMap<Queryable, Repositories>();
  constructor(readonly backend: Backend) {}

  for(q: Queryable): Repositories {
    let bound = this.#bound.get(q);
    if (!bound) {
      bound = new BoundRepositories({ q, backend: this.backend }, this);
      this.#bound.set(q, bound);
    }
    return bound;
  }
}

/**
 * Each repository is an accessor of the instance that builds it on first use. The accessors close
 * over the binding's state instead of reading it from `this`, so the repositories also work through
 * wrappers of this object (a Proxy that forwards property reads, for instance).
 */
export class BoundRepositories implements Repositories {
  declare readonly flows: FlowRepository;
  declare readonly flowRuns: FlowRunRepository;
  declare readonly taskRuns: TaskRunRepository;
  declare readonly logs: LogRepository;
  declare readonly events: EventRepository;
  declare readonly blocks: BlockRepository;
  declare readonly configuration: ConfigurationRepository;
  declare readonly deployments: DeploymentRepository;
  declare readonly workPools: WorkPoolRepository;
  declare readonly workQueues: WorkQueueRepository;
  declare readonly workers: WorkerRepository;
  declare readonly workerRuns: WorkerRunRepository;
  declare readonly concurrencyLimits: ConcurrencyLimitRepository;
  declare readonly concurrencyLeases: ConcurrencyLeaseRepository;
  declare readonly variables: VariableRepository;
  declare readonly savedSearches: SavedSearchRepository;
  declare readonly flowRunInputs: FlowRunInputRepository;
  declare readonly csrfTokens: CsrfTokenRepository;
  declare readonly artifacts: ArtifactRepository;
  declare readonly automations: AutomationRepository;
  declare readonly scheduledRuns: ScheduledRunRepository;
  declare readonly cancellations: CancellationRepository;
  readonly transaction: Repositories["transaction"];
  readonly inTransaction: boolean;

  constructor(context: RepositoryContext, bindings: Bindings) {
    const built: { [K in RepositoryName]?: Repositories[K] } = {};
    for (const name of NAMES) {
      Object.defineProperty(this, name, {
        enumerable: true,
        get() {
          let repository = built[name];
          if (repository === undefined) {
            repository = FACTORIES[name](context) as never;
            built[name] = repository;
          }
          return repository;
        },
      });
    }
    this.transaction = (fn) => context.q.transaction((tx) => fn(bindings.for(tx)));
    this.inTransaction = context.q.inTransaction;
  }
}
