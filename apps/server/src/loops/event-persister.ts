/**
 * The event persister (Prefect's `events/services/event_persister.py`): stores every event published
 * on the EventBus with `db.events.createMany`, in batches of PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE
 * or every PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL seconds, whichever comes first.
 * Events already stored (a client resending after a reconnect) are skipped by the repository. Stored
 * events reach this process's readers as stored (see event-reader.ts), other processes' from the table.
 */
import type { AppContext, Logger } from "../context.js";
import { storeEvents } from "../features/events/service.js";
import { EventBatcher } from "./event-batcher.js";

/** Most events written in one transaction when the queue has grown. */
const MAX_BATCH = 1000;
/** Events waiting to be written at which clients' events are held back. */
const HIGH_WATER = 5 * MAX_BATCH;

export function eventPersister({ db, events, feed, settings }: AppContext, log: Logger): EventBatcher {
  const { batchSize, flushIntervalSeconds } = settings.services.eventPersister;
  return new EventBatcher({
    name: "EventPersister",
    bus: events,
    log,
    batchSize,
    flushIntervalMs: flushIntervalSeconds * 1000,
    maxBatch: Math.max(batchSize, MAX_BATCH),
    highWater: Math.max(batchSize, HIGH_WATER),
    write: async (batch) => {
      feed.stored(await storeEvents(db, batch));
    },
  });
}
