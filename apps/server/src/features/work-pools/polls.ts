/**
 * The bookkeeping of polls (work pools' scheduled runs, legacy queues' runs): the polled queues and
 * their deployments marked polled and READY after the answer, as Prefect's background tasks do.
 */
import { BusyError, type Database, now, type WorkPool } from "@prefect/db";
import type { AppContext, Logger } from "../../context.js";
import { deploymentStatusEvent, surroundingsOf } from "../deployments/events.js";
import { publishEvents } from "../events/bus.js";
import { workQueueStatusEvent } from "./events.js";

/** Prefect retries its poll bookkeeping 5 times, half a second apart. */
const MARK_ATTEMPTS = 5;
const MARK_RETRY_DELAY_MS = 500;

/**
 * Records polls after their answer has gone out, as Prefect's API hands them to background tasks:
 * the polled queues get `last_polled` (NOT_READY ones become READY, with Prefect's
 * `prefect.work-queue.ready` event), and their deployments become READY (`prefect.deployment.ready`
 * for those that were not). Polls of the same pool (or legacy queue) arriving while one is being
 * recorded are recorded together once it is done, so a crowd of polling workers costs a write now
 * and then rather than one each. The rows are locked in id order, so recorders on other servers over
 * the same database queue up behind each other. `drain()` waits until everything asked is recorded.
 */
export class PollRecorder {
  readonly #pending = new Map<string, Set<string>>();
  readonly #running = new Map<string, Promise<void>>();

  constructor(
    private readonly context: Pick<AppContext, "db" | "events">,
    private readonly log: Logger,
  ) {}

  /** Records that the queues were polled; `key` groups the polls recorded together. */
  record(key: string, workQueueIds: readonly string[]): void {
    if (workQueueIds.length === 0) return;
    let ids = this.#pending.get(key);
    if (!ids) {
      ids = new Set();
      this.#pending.set(key, ids);
    }
    for (const id of workQueueIds) ids.add(id);
    if (!this.#running.has(key)) this.#running.set(key, this.#work(key));
  }

  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running.values());
  }

  async #work(key: string): Promise<void> {
    // Yield first, so that the answer to the poll goes out before its bookkeeping starts.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      const ids = this.#pending.get(key);
      if (!ids) {
        this.#running.delete(key);
        return;
      }
      this.#pending.delete(key);
      await this.#attempt("marking work queues polled", () => this.#markQueues([...ids]));
      await this.#attempt("marking deployments polled", () => this.#markDeployments([...ids]));
    }
  }

  async #attempt(what: string, work: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= MARK_ATTEMPTS) {
          this.log.error({ err: error }, `${what} failed`);
          return;
        }
        if (!(error instanceof BusyError)) this.log.warn({ err: error }, `${what} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, MARK_RETRY_DELAY_MS));
      }
    }
  }

  async #markQueues(ids: string[]): Promise<void> {
    const { db, events } = this.context;
    const readied = await db.workQueues.markPolled(ids);
    if (readied.length === 0) return;
    const pools = await poolsById(db, readied.map((q) => q.work_pool_id));
    publishEvents(events, readied.map((queue) => workQueueStatusEvent(queue, pools.get(queue.work_pool_id) ?? null)));
  }

  async #markDeployments(ids: string[]): Promise<void> {
    const { db, events } = this.context;
    const readied = await db.workQueues.markDeploymentsPolled(ids);
    if (readied.length === 0) return;
    const at = now();
    const published = [];
    for (const id of readied) {
      const deployment = await db.deployments.get(id);
      if (!deployment) continue;
      published.push(deploymentStatusEvent(deployment, "READY", await surroundingsOf(db, deployment), at));
    }
    publishEvents(events, published);
  }
}

async function poolsById(db: Database, ids: readonly string[]): Promise<Map<string, WorkPool>> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return new Map();
  const pools = await db.workPools.read({ work_pools: { id: { any_: unique } } });
  return new Map(pools.map((p) => [p.id, p]));
}

const recorders = new WeakMap<object, PollRecorder>();

/**
 * The app's poll recorder (one for the work pool and the work queue routes), drained when the app
 * closes so that no poll goes unrecorded.
 */
export function pollRecorder(context: Pick<AppContext, "db" | "events">, log: Logger): PollRecorder {
  let recorder = recorders.get(context);
  if (!recorder) {
    recorder = new PollRecorder(context, log);
    recorders.set(context, recorder);
  }
  return recorder;
}
