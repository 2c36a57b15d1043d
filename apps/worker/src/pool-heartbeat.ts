/**
 * The worker's place in its work pool (Prefect's `sync_with_backend`): finds the pool (creating it
 * when asked to), picks the queues the worker takes runs from, and heartbeats, which is what makes
 * the pool and the worker ONLINE/READY for the server and the UI. It beats once at start and then
 * on an interval; a beat that fails is logged and the next one tries again, because a worker that
 * cannot reach its database for a while must not stop.
 */
import { AlreadyExistsError, type Database, type WorkPool } from "@prefect/db";
import { WORKER_TYPE } from "./events.js";
import { defaultBaseJobTemplate } from "./job-configuration.js";
import type { WorkerLogger } from "./logger.js";
import { pyRepr } from "./messages.js";
import type { WorkerOptions } from "./options.js";

type HeartbeatOptions = Pick<WorkerOptions, "pool" | "queues" | "name" | "createPoolIfNotFound" | "heartbeatIntervalSeconds">;

export class PoolHeartbeat {
  readonly #db: Database;
  readonly #options: HeartbeatOptions;
  readonly #log: WorkerLogger;
  #pool: WorkPool | null = null;
  #queueIds: string[] = [];
  #workerId: string | null = null;
  #warnedType = false;
  #beating: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(db: Database, options: HeartbeatOptions, log: WorkerLogger) {
    this.#db = db;
    this.#options = options;
    this.#log = log;
  }

  /** The pool as of the last beat; null until it is found (or once it was removed). */
  get pool(): WorkPool | null {
    return this.#pool;
  }

  /** The ids of the queues the worker takes runs from, as of the last beat. */
  get queueIds(): readonly string[] {
    return this.#queueIds;
  }

  /** The worker's id in the database, from its first heartbeat. */
  get workerId(): string | null {
    return this.#workerId;
  }

  /** Beats every `heartbeatIntervalSeconds` until `stop()`. */
  start(): void {
    this.#timer ??= setInterval(() => void this.beat(), this.#options.heartbeatIntervalSeconds * 1000);
  }

  /** Stops beating; resolves once a beat in progress has ended. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#beating;
  }

  /** One beat; never rejects. A call while a beat is in progress joins it rather than starting another. */
  beat(): Promise<void> {
    this.#beating ??= this.#sync()
      .catch((error: unknown) => this.#log.error({ err: error }, "Could not sync with the database; will try again"))
      .finally(() => {
        this.#beating = null;
      });
    return this.#beating;
  }

  async #sync(): Promise<void> {
    const name = this.#options.pool;
    let pool = await this.#db.workPools.getByName(name);
    if (!pool && this.#options.createPoolIfNotFound) {
      try {
        pool = await this.#db.workPools.create({ name, type: WORKER_TYPE, base_job_template: defaultBaseJobTemplate() });
        this.#log.info(`Work pool ${pyRepr(name)} created.`);
      } catch (error) {
        // Another worker created it first.
        if (!(error instanceof AlreadyExistsError)) throw error;
        pool = await this.#db.workPools.getByName(name);
      }
    }
    if (!pool) {
      this.#log.warn(`Work pool ${pyRepr(name)} not found!`);
      this.#pool = null;
      return;
    }
    // As Prefect's worker does: a pool without a template gets the process worker's default one.
    if (Object.keys(pool.base_job_template).length === 0) {
      pool = await this.#db.workPools.update(pool.id, { base_job_template: defaultBaseJobTemplate() });
    }
    if (pool.type !== WORKER_TYPE && !this.#warnedType) {
      this.#warnedType = true;
      this.#log.warn(
        `Worker type mismatch! This worker process expects type ${pyRepr(WORKER_TYPE)} but received ${pyRepr(pool.type)} from the server. Unexpected behavior may occur.`,
      );
    }
    const queues = await this.#db.workQueues.read(pool.id);
    const wanted = new Set(this.#options.queues);
    this.#queueIds = queues.filter((q) => wanted.size === 0 || wanted.has(q.name)).map((q) => q.id);
    const worker = await this.#db.workers.heartbeat(pool.id, {
      name: this.#options.name,
      heartbeat_interval_seconds: Math.max(1, Math.round(this.#options.heartbeatIntervalSeconds)),
    });
    this.#pool = pool;
    this.#workerId = worker.id;
    this.#log.debug({ worker_id: worker.id }, "Worker synchronized with the database");
  }
}
