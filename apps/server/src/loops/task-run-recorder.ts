/**
 * The task-run recorder (Prefect's `services/task_run_recorder.py`): Prefect 3.x clients orchestrate
 * ordinary tasks themselves and report each state change as a `prefect.task-run.<State>` event
 * (resource label `prefect.orchestration` = `client`); this turns those events into task runs and
 * their states (features/task-runs/events.ts reads them, `db.taskRuns.recordChanges` writes them).
 *
 * It reads the stored events as the consumer group `task-run-recorder`: each event is recorded once,
 * by whichever server process claims it, whichever process stored it. The runs only move forward and
 * states are idempotent by id, so events may arrive out of order.
 */
import type { ReceivedEvent } from "@prefect/orchestration";
import type { AppContext, Logger } from "../context.js";
import { recordTaskRunEvents } from "../features/task-runs/service.js";
import { consumeEvents } from "./consume-events.js";
import type { Service } from "./loop.js";

export const TASK_RUN_RECORDER_GROUP = "task-run-recorder";

/** The events Prefect's recorder takes. */
export function isClientTaskRunEvent(event: ReceivedEvent): boolean {
  return event.event.startsWith("prefect.task-run") && event.resource["prefect.orchestration"] === "client";
}

export function taskRunRecorder(context: AppContext, log: Logger): Service {
  return consumeEvents(context, log, {
    name: "TaskRunRecorder",
    group: TASK_RUN_RECORDER_GROUP,
    only: { event: { prefix: ["prefect.task-run"] } },
    accept: isClientTaskRunEvent,
    // Paces the rounds when no new event wakes it, and the retries of events that failed.
    pollMs: context.settings.services.taskRunRecorder.loopSeconds * 1000,
    handle: async (tx, events) => {
      const { invalid } = await recordTaskRunEvents(tx, events);
      for (const problem of invalid) log.warn({ service: "TaskRunRecorder", event_id: problem.event_id, problem: problem.message }, "ignoring a task-run event that cannot be recorded");
    },
  });
}
