/**
 * `consumeEvents`: a service that handles every stored event once across all processes, as a member
 * of a consumer group of the events table. Each round claims the events after the group's cursor
 * (`tx.events.claimGroup`, which holds the cursor until the transaction ends), reads those its
 * filter selects (`only`: the rest are passed over unread), hands those it accepts to `handle` on the
 * same transaction, and moves the cursor past the batch: the handler's writes and the progress commit
 * together, whichever process claimed the batch.
 *
 *  - Rounds run when the event feed delivers an event the service accepts, and every `pollMs` in any
 *    case (which moves the cursor past the events it passes over: a load of events it does not take
 *    costs it one round per `pollMs`, not one per delivery).
 *  - A round that claimed fewer events than it asked for has caught up with what was stored when it
 *    read: unless something was delivered meanwhile, no round follows it to find nothing.
 *  - A batch whose handler fails is rolled back and retried one event at a time, so one bad event
 *    cannot hold up the others; an event that keeps failing is skipped (logged) after `maxAttempts`.
 *    A busy database is waited out without counting as a failure.
 *  - A new group starts at the head, on `start`; `stop` runs one last round, so that what was stored
 *    before the service stopped is handled.
 */
import { BusyError, type EventFilter, type PositionedEvent, type Repositories } from "@prefect/db";
import type { AppContext, Logger } from "../context.js";
import type { Service } from "./loop.js";

export interface ConsumeEventsOptions {
  readonly name: string;
  /** The consumer group: services of the same group share the work, each event handled once. */
  readonly group: string;
  /**
   * Which events to read of those the group claims (all when unset): the others are passed over
   * without reading them. `accept` then picks those to handle among the events read.
   */
  readonly only?: EventFilter;
  /** Which events to hand to `handle` (the others are passed over). */
  readonly accept?: (event: PositionedEvent) => boolean;
  /** Handles a batch on the transaction that claimed it; throws to have it retried. */
  readonly handle: (tx: Repositories, events: PositionedEvent[]) => Promise<void>;
  readonly batchSize?: number;
  readonly pollMs: number;
  readonly maxAttempts?: number;
}

type Outcome = "idle" | "caught-up" | "more" | "failed";

export function consumeEvents({ db, feed }: Pick<AppContext, "db" | "feed">, log: Logger, options: ConsumeEventsOptions): Service {
  const batchSize = options.batchSize ?? 500;
  const maxAttempts = options.maxAttempts ?? 5;
  /** Failures per event position; while any is pending, events are claimed one at a time. */
  const failures = new Map<number, number>();
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let unsubscribe: (() => void) | undefined;

  const round = async (): Promise<Outcome> => {
    let claimed: number | undefined;
    try {
      return await db.transaction(async (tx) => {
        const limit = failures.size > 0 ? 1 : batchSize;
        const window = await tx.events.claimGroup(options.group, limit);
        if (window.count === 0) return "idle";
        const last = window.through;
        claimed = window.cursor + 1;
        if ((failures.get(last) ?? 0) >= maxAttempts) {
          log.error({ service: options.name, position: last, attempts: failures.get(last) }, "skipping an event that could not be handled");
        } else {
          const batch = await tx.events.readAfter(window.cursor, { limit, through: last, filter: options.only });
          const accepted = options.accept ? batch.filter(options.accept) : batch;
          if (accepted.length > 0) await options.handle(tx, accepted);
        }
        await tx.events.advanceGroup(options.group, last);
        failures.delete(last);
        return window.count < limit ? "caught-up" : "more";
      });
    } catch (error) {
      if (error instanceof BusyError) return "failed";
      log.warn({ err: error, service: options.name }, "handling events failed; retrying them one by one");
      if (claimed !== undefined) failures.set(claimed, (failures.get(claimed) ?? 0) + (failures.size > 0 ? 1 : 0));
      return "failed";
    }
  };

  const drain = async () => {
    for (;;) {
      again = false;
      const outcome = await round();
      if (outcome === "failed") return;
      if (outcome !== "more" && !again) return;
    }
  };

  const kick = () => {
    again = true;
    if (running || stopped) return;
    running = drain().finally(() => {
      running = undefined;
    });
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      kick();
      schedule();
    }, options.pollMs);
    timer.unref();
  };

  return {
    name: options.name,
    async start() {
      stopped = false;
      // Joins the group (at the head, if it is new) before anything else is stored.
      await drain();
      const { accept } = options;
      unsubscribe = feed.subscribe((events) => {
        if (!accept || events.some(accept)) kick();
      });
      schedule();
    },
    async stop() {
      stopped = true;
      unsubscribe?.();
      if (timer) clearTimeout(timer);
      await running;
      await drain();
    },
  };
}
