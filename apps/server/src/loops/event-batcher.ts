/**
 * The event persister's queue: fed by the EventBus and written to the database in batches, one write
 * at a time, in arrival order.
 *
 *  - A write starts as soon as `batchSize` events wait, and at least every `flushIntervalMs`; it takes
 *    everything queued (up to `maxBatch`), so batches grow with the load.
 *  - A batch the database was busy for (BusyError) goes back to the front of the queue and is retried
 *    after the time the error suggests, without limit while the service runs.
 *  - A batch that fails otherwise is retried event by event, so one bad event cannot sink the others;
 *    an event that keeps failing is retried on the next intervals and dropped (logged) after
 *    `maxAttempts` failures, as Prefect does.
 *  - With `highWater` set, the batcher holds back the events clients send (`EventStream.ready`) while
 *    that many are pending, until half of them are written: a flood of events waits in the clients
 *    and in TCP's buffers, not in this process's memory, where a queue of tens of thousands kept the
 *    garbage collector busy and the persister short of CPU.
 *  - `stop` unsubscribes, waits for the write in progress and writes everything still queued (busy
 *    database included, within `shutdownBudgetMs`) before resolving: nothing is lost on a graceful
 *    shutdown.
 */
import { BusyError } from "@prefect/db";
import type { ReceivedEvent } from "@prefect/orchestration";
import type { EventBacklog, EventStream, Logger } from "../context.js";
import type { Service } from "./loop.js";

export interface EventBatcherOptions {
  readonly name: string;
  readonly bus: EventStream;
  readonly log: Logger;
  /** Writes a batch; throws when nothing was written. */
  readonly write: (batch: ReceivedEvent[]) => Promise<void>;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxBatch: number;
  readonly maxAttempts?: number;
  readonly shutdownBudgetMs?: number;
  /** Events pending at which clients' events are held back (none when unset). */
  readonly highWater?: number;
}

interface Item {
  readonly event: ReceivedEvent;
  attempts: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class EventBatcher implements Service, EventBacklog {
  readonly name: string;
  readonly #options: EventBatcherOptions;
  readonly #maxAttempts: number;
  #queue: Item[] = [];
  /** Events that failed on their own, retried at the next interval. */
  #deferred: Item[] = [];
  /** Events of the write in progress. */
  #inFlight = 0;
  #unsubscribe: (() => void) | undefined;
  #unhold: (() => void) | undefined;
  /** Publishers waiting for the backlog to go down. */
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #pausedUntil = 0;
  #running: Promise<void> | undefined;
  #stopping = false;

  constructor(options: EventBatcherOptions) {
    this.name = options.name;
    this.#options = options;
    this.#maxAttempts = options.maxAttempts ?? 5;
  }

  /** Events not written yet (queued, being written, or waiting for a retry). */
  get pending(): number {
    return this.#queue.length + this.#inFlight + this.#deferred.length;
  }

  ready(): Promise<void> | undefined {
    const { highWater } = this.#options;
    if (highWater === undefined || this.#stopping || this.pending < highWater) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Lets the waiting publishers go once the backlog is down to half the high water (or on stop). */
  #letIn(): void {
    if (this.#waiters.length === 0) return;
    if (!this.#stopping && this.pending > (this.#options.highWater ?? 0) / 2) return;
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#options.bus.subscribe((events) => {
      for (const event of events) this.#queue.push({ event, attempts: 0 });
      if (this.#queue.length >= this.#options.batchSize) this.#kick();
    });
    if (this.#options.highWater !== undefined) this.#unhold = this.#options.bus.hold(this);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopping) return;
    this.#timer = setTimeout(() => {
      this.#queue.unshift(...this.#deferred.splice(0));
      this.#kick();
      this.#schedule();
    }, this.#options.flushIntervalMs);
    this.#timer.unref();
  }

  #kick(): void {
    if (this.#running || this.#stopping || Date.now() < this.#pausedUntil) return;
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
    });
  }

  /**
   * Writes queued batches until the queue is empty or the database asks for a pause; when shutting
   * down (`deadline` given), waits out the pauses instead, until the deadline.
   */
  async #drain(deadline?: number): Promise<void> {
    const shuttingDown = deadline !== undefined;
    while (this.#queue.length > 0 && (!shuttingDown || Date.now() < deadline)) {
      const batch = this.#queue.splice(0, this.#options.maxBatch);
      this.#inFlight = batch.length;
      const outcome = await this.#writeBatch(batch, shuttingDown).finally(() => {
        this.#inFlight = 0;
      });
      this.#letIn();
      if (outcome === "busy" && !shuttingDown) return;
    }
  }

  async #writeBatch(batch: Item[], shuttingDown: boolean): Promise<"written" | "busy"> {
    try {
      await this.#options.write(batch.map((i) => i.event));
      return "written";
    } catch (error) {
      if (error instanceof BusyError) return this.#busy(batch, error, shuttingDown);
      if (batch.length === 1) {
        this.#failed(batch[0]!, error, shuttingDown);
        return "written";
      }
      this.#options.log.warn({ err: error, service: this.name, events: batch.length }, "batch write failed; writing its events one by one");
      for (let i = 0; i < batch.length; i++) {
        const item = batch[i]!;
        try {
          await this.#options.write([item.event]);
          this.#inFlight--;
        } catch (single) {
          if (single instanceof BusyError) return this.#busy(batch.slice(i), single, shuttingDown);
          this.#failed(item, single, shuttingDown);
        }
      }
      return "written";
    }
  }

  async #busy(items: Item[], error: BusyError, shuttingDown: boolean): Promise<"busy"> {
    this.#inFlight -= items.length;
    this.#queue.unshift(...items);
    const waitMs = Math.max(50, error.retryAfterSeconds * 1000);
    this.#options.log.debug({ service: this.name, events: items.length, waitMs }, "database busy; retrying the batch later");
    if (shuttingDown) await sleep(waitMs);
    else {
      this.#pausedUntil = Date.now() + waitMs;
      setTimeout(() => this.#kick(), waitMs).unref();
    }
    return "busy";
  }

  #failed(item: Item, error: unknown, shuttingDown: boolean): void {
    this.#inFlight--;
    item.attempts++;
    if (item.attempts >= this.#maxAttempts) {
      this.#options.log.error({ err: error, service: this.name, event_id: item.event.id, attempts: item.attempts }, "dropping an event that could not be written");
      return;
    }
    if (shuttingDown) this.#queue.push(item);
    else this.#deferred.push(item);
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#unsubscribe?.();
    this.#unhold?.();
    this.#letIn();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    this.#queue.unshift(...this.#deferred.splice(0));
    const deadline = Date.now() + (this.#options.shutdownBudgetMs ?? 30_000);
    await this.#drain(deadline);
    if (this.#queue.length > 0) {
      this.#options.log.error({ service: this.name, events: this.#queue.length }, "could not write every event before shutting down");
    }
  }
}
