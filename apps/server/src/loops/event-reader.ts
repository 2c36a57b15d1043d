/**
 * The event reader: this process's follower of the events table, the one place events are delivered
 * from (`/api/events/out`, and the wake-up of the consumer groups). It keeps the highest position it
 * has delivered and reads what was stored after it, whoever stored it (this server, another server,
 * a worker): woken by PostgreSQL's NOTIFY, by this process's own writes, and every `pollMs` in any case
 * (SQLite, a missed notification, a LISTEN connection being connected again). What this process
 * stores right after the cursor is delivered as stored, without reading it back.
 */
import type { Database, PositionedEvent } from "@prefect/db";
import type { EventFeed, Logger, StoredEventListener } from "../context.js";
import type { Service } from "./loop.js";

/**
 * How often the table is read when nothing wakes the reader: SQLite has no notifications (other
 * processes' events arrive within this), PostgreSQL's NOTIFY wakes it at once and this only covers a
 * notification missed.
 */
export const readerPollMs = (db: Database) => (db.backend === "sqlite" ? 100 : 1000);

/** Most events read at once. */
const READ_LIMIT = 1000;

export class EventReader implements EventFeed, Service {
  readonly name = "EventReader";
  readonly #listeners = new Set<StoredEventListener>();
  #cursor = 0;
  #woken = false;
  /** Whether a read is in flight. */
  #reading = false;
  /** The newest position an append was notified with (0: none). */
  #notified = 0;
  #resume: (() => void) | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #unwatch: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly pollMs: number,
  ) {}

  subscribe(listener: StoredEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  wake(head?: number): void {
    if (head !== undefined) {
      // An append read past already needs no read: PostgreSQL notifies the appends this process made
      // too, which the persister's own wake-up has had read (or is having read: a read in flight then
      // ends by comparing what it reached with the newest position notified meanwhile).
      if (head <= this.#cursor) return;
      this.#notified = Math.max(this.#notified, head);
      if (this.#reading) return;
    }
    this.#woken = true;
    this.#resume?.();
  }

  stored(events: readonly PositionedEvent[]): void {
    const first = events[0];
    const last = events.at(-1);
    if (!first || !last) return;
    // The positions right after the cursor, in one append (numbered without gaps): nothing stored by
    // anyone else comes between, so these are what a read would return. A read in flight that
    // returns them too passes over them (it delivers only what is past the cursor).
    if (first.position === this.#cursor + 1 && last.position === first.position + events.length - 1) {
      this.#cursor = last.position;
      this.#deliver(events);
      return;
    }
    this.wake();
  }

  #deliver(batch: readonly PositionedEvent[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(batch);
      } catch (error) {
        this.log.error({ err: error, service: this.name }, "an event listener failed");
      }
    }
  }

  /** Starts at the head: what was stored before is read from the table by whoever needs it (backfill). */
  async start(): Promise<void> {
    this.#cursor = await this.db.events.head();
    this.#unwatch = this.db.watchEventAppends((head) => this.wake(head));
    this.#running = this.#loop();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      this.#woken = false;
      // What was notified before the read starts, the read sees.
      this.#notified = 0;
      this.#reading = true;
      try {
        await this.#readNew();
        // An append notified during the read that the read did not reach: one more read (which
        // clears it, whatever it finds: events may be gone, deleted by retention, before any read
        // reaches them).
        if (this.#notified > this.#cursor) this.#woken = true;
      } catch (error) {
        this.log.warn({ err: error, service: this.name }, "could not read new events; trying again");
      } finally {
        this.#reading = false;
      }
      if (!this.#woken && !this.#stopped) await this.#sleep();
    }
  }

  #sleep(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.pollMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#resume = () => {
        this.#resume = undefined;
        done();
      };
    });
  }

  async #readNew(): Promise<void> {
    for (;;) {
      const read: PositionedEvent[] = await this.db.events.readAfter(this.#cursor, { limit: READ_LIMIT });
      // What this process delivered as it stored it while the read was in flight is not delivered twice.
      const batch = read.filter((event) => event.position > this.#cursor);
      if (batch.length > 0) {
        this.#cursor = batch.at(-1)!.position;
        this.#deliver(batch);
      }
      if (read.length < READ_LIMIT) return;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.wake();
    await this.#running;
    await this.#unwatch?.();
  }
}
