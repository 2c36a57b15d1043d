/**
 * Flow run logs the worker writes (its own messages about a run and the run process's output),
 * batched into `db.logs.createMany` as Prefect's API log handler batches them: every second, or as
 * soon as enough have gathered, and on demand before a run's final state is set.
 */
import type { Database, LogCreate } from "@prefect/db";
import { now } from "@prefect/db";
import type { WorkerLogger } from "./logger.js";
import type { OutputStream } from "./process.js";

/** Python's logging levels, which Prefect's logs carry. */
export const LogLevel = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 } as const;

/** The logger names Prefect uses: the worker's messages about a run, and the run's own output. */
export const WORKER_RUN_LOGGER = "prefect.flow_runs.worker";
export const RUN_OUTPUT_LOGGER = "prefect.flow_runs";

const FLUSH_INTERVAL_MS = 1000;
const BATCH_SIZE = 500;
/** Logs kept for another try when the database cannot take them; older ones are dropped past this. */
const MAX_BUFFERED = 20_000;

export class RunLogWriter {
  readonly #db: Database;
  readonly #log: WorkerLogger;
  #buffer: LogCreate[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;

  constructor(db: Database, log: WorkerLogger) {
    this.#db = db;
    this.#log = log;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }

  add(flowRunId: string, name: string, level: number, message: string): void {
    this.#buffer.push({ name, level, message, timestamp: now(), flow_run_id: flowRunId, task_run_id: null });
    if (this.#buffer.length > MAX_BUFFERED) this.#buffer.splice(0, this.#buffer.length - MAX_BUFFERED);
    if (this.#buffer.length >= BATCH_SIZE) void this.flush();
  }

  /** A message about a run: into its logs (as Prefect's worker flow run logger) and the worker's own log. */
  note(flowRunId: string, level: number, message: string): void {
    this.add(flowRunId, WORKER_RUN_LOGGER, level, message);
    const fields = { flow_run_id: flowRunId };
    if (level >= LogLevel.ERROR) this.#log.error(fields, message);
    else if (level >= LogLevel.WARNING) this.#log.warn(fields, message);
    else this.#log.info(fields, message);
  }

  /** A line the run's process wrote: stdout at INFO, stderr at ERROR. */
  output(flowRunId: string, stream: OutputStream, line: string): void {
    this.add(flowRunId, RUN_OUTPUT_LOGGER, stream === "stdout" ? LogLevel.INFO : LogLevel.ERROR, line);
  }

  /** Writes everything added so far (one flush at a time; a failed batch is kept for the next). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      while (this.#buffer.length > 0) {
        const batch = this.#buffer.splice(0, BATCH_SIZE);
        try {
          await this.#db.logs.createMany(batch);
        } catch (error) {
          this.#buffer.unshift(...batch);
          this.#log.warn({ err: error, pending: this.#buffer.length }, "Could not write flow run logs; will try again");
          return;
        }
      }
    });
    return this.#flushing;
  }
}
