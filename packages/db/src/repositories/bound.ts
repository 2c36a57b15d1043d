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
import { type WorkPoolRepository, workPoolRepository } from "./work-pools/index.js";

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

export class BoundRepositories implements Repositories {
  #flows?: FlowRepository;
  #flowRuns?: FlowRunRepository;
  #taskRuns?: TaskRunRepository;
  #logs?: LogRepository;
  #events?: EventRepository;
  #blocks?: BlockRepository;
  #configuration?: ConfigurationRepository;
  #deployments?: DeploymentRepository;
  #workPools?: WorkPoolRepository;
  #concurrencyLimits?: ConcurrencyLimitRepository;
  #variables?: VariableRepository;
  #savedSearches?: SavedSearchRepository;
  #flowRunInputs?: FlowRunInputRepository;
  #csrfTokens?: CsrfTokenRepository;
  #artifacts?: ArtifactRepository;
  #automations?: AutomationRepository;
  #scheduledRuns?: ScheduledRunRepository;
  #cancellations?: CancellationRepository;

  constructor(
    protected readonly context: RepositoryContext,
    private readonly bindings: Bindings,
  ) {}

  readonly transaction = <T>(fn: (tx: Repositories) => Promise<T>): Promise<T> =>
    this.context.q.transaction((tx) => fn(this.bindings.for(tx)));

  get flows(): FlowRepository {
    this.#flows ??= flowRepository(this.context);
    return this.#flows;
  }
  get flowRuns(): FlowRunRepository {
    this.#flowRuns ??= flowRunRepository(this.context);
    return this.#flowRuns;
  }
  get taskRuns(): TaskRunRepository {
    this.#taskRuns ??= taskRunRepository(this.context);
    return this.#taskRuns;
  }
  get logs(): LogRepository {
    this.#logs ??= logRepository(this.context);
    return this.#logs;
  }
  get events(): EventRepository {
    this.#events ??= eventRepository(this.context);
    return this.#events;
  }
  get blocks(): BlockRepository {
    this.#blocks ??= blockRepository(this.context);
    return this.#blocks;
  }
  get configuration(): ConfigurationRepository {
    this.#configuration ??= configurationRepository(this.context);
    return this.#configuration;
  }
  get deployments(): DeploymentRepository {
    this.#deployments ??= deploymentRepository(this.context);
    return this.#deployments;
  }
  get workPools(): WorkPoolRepository {
    this.#workPools ??= workPoolRepository(this.context);
    return this.#workPools;
  }
  get concurrencyLimits(): ConcurrencyLimitRepository {
    this.#concurrencyLimits ??= concurrencyLimitRepository(this.context);
    return this.#concurrencyLimits;
  }
  get variables(): VariableRepository {
    this.#variables ??= variableRepository(this.context);
    return this.#variables;
  }
  get savedSearches(): SavedSearchRepository {
    this.#savedSearches ??= savedSearchRepository(this.context);
    return this.#savedSearches;
  }
  get flowRunInputs(): FlowRunInputRepository {
    this.#flowRunInputs ??= flowRunInputRepository(this.context);
    return this.#flowRunInputs;
  }
  get csrfTokens(): CsrfTokenRepository {
    this.#csrfTokens ??= csrfTokenRepository(this.context);
    return this.#csrfTokens;
  }
  get artifacts(): ArtifactRepository {
    this.#artifacts ??= artifactRepository(this.context);
    return this.#artifacts;
  }
  get automations(): AutomationRepository {
    this.#automations ??= automationRepository(this.context);
    return this.#automations;
  }
  get scheduledRuns(): ScheduledRunRepository {
    this.#scheduledRuns ??= scheduledRunRepository(this.context);
    return this.#scheduledRuns;
  }
  get cancellations(): CancellationRepository {
    this.#cancellations ??= cancellationRepository(this.context);
    return this.#cancellations;
  }
}
