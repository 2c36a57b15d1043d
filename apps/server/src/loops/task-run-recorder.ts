/**
 * The task-run recorder (Prefect's `services/task_run_recorder.py`): Prefect 3.x clients orchestrate
 * ordinary tasks themselves and report each state change as a `prefect.task-run.<State>` event
 * (resource label `prefect.orchestration` = `client`); this turns those events into task runs and
 * their states (features/task-runs/events.ts reads them, `db.taskRuns.recordChanges` writes them).
 *
 * Events are written as soon as they arrive (Prefect's default batch size is 1); whatever queues up
 * while a write is in progress goes in the next one, so batches grow with the load. The runs only
 * move forward and states are idempotent by id, so events may arrive out of order or twice.
 */
import type { AppContext, Logger } from "../context.js";
import type { ReceivedEvent } from "@prefect/orchestration";
import { recordTaskRunEvents } from "../features/task-runs/service.js";
import { EventBatcher } from "./event-batcher.js";

const MAX_BATCH = 500;

/** The events Prefect's recorder takes. */
export function isClientTaskRunEvent(event: ReceivedEvent): boolean {
  return event.event.startsWith("prefect.task-run") && event.resource["prefect.orchestration"] === "client";
}

export function taskRunRecorder({ db, events, settings }: AppContext, log: Logger): EventBatcher {
  return new EventBatcher({
    name: "TaskRunRecorder",
    bus: events,
    log,
    accept: isClientTaskRunEvent,
    batchSize: 1,
    // Only paces retries of events that failed on their own (e.g. a flow run not created yet).
    flushIntervalMs: settings.services.taskRunRecorder.loopSeconds * 1000,
    maxBatch: MAX_BATCH,
    write: async (batch) => {
      const { invalid } = await recordTaskRunEvents(db, batch);
      for (const problem of invalid) log.warn({ service: "TaskRunRecorder", event_id: problem.event_id, problem: problem.message }, "ignoring a task-run event that cannot be recorded");
    },
  });
}
