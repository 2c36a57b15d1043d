/**
 * The worker's figures and their floors:
 *  - the orchestrated claim path in this process: 10 loops, each taking up to 10 due runs at a time
 *    with the worker's own claim (`claimScheduledFlowRuns`: lock + PENDING through orchestration),
 *    then RUNNING and COMPLETED through orchestration, storing orchestration's events as the worker
 *    does; beside graphile-worker 0.17.3 at concurrency 10 (no-op jobs) on the same PostgreSQL;
 *  - `pnpm worker --limit 10` with the command `true`, from the worker's first claim to the last
 *    COMPLETED (state timestamps in the database); beside the machine's spawn rate of `true`.
 * Each drains a known number of due runs (jobs), sized from a first, smaller drain to last about
 * the measurement's seconds.
 */
import { EventEmitter } from "node:events";
import { addSeconds, type Database, now, openDatabase, toMicros } from "@prefect/db";
import { type OrchestrationEvent, setFlowRunState } from "@prefect/orchestration";
import { claimScheduledFlowRuns, createLogger, defaultBaseJobTemplate, EventWriter } from "@prefect/worker";
import { Logger, makeWorkerUtils, run, runMigrations, type WorkerEvents } from "graphile-worker";
import { startWorker } from "./apps.js";
import type { RawDatabase } from "./raw.js";
import type { ScratchDatabase } from "./scratch.js";
import type { BenchSettings } from "./settings.js";

export const CLAIM_LOOPS = 10;
export const CLAIM_BATCH = 10;
export const WORKER_LIMIT = 10;

/** A pool with a deployment whose runs run `command`; `add` makes `count` of its runs due now. */
async function duePool(db: Database, name: string, command: string) {
  const pool = await db.workPools.create({ name, type: "process", base_job_template: defaultBaseJobTemplate() });
  const flow = (await db.flows.create({ name: `flow-of-${name}` })).row;
  const deployment = (await db.deployments.create({ name, flow_id: flow.id, work_queue_id: pool.default_queue_id, job_variables: { command } })).row;
  return {
    deploymentId: deployment.id,
    async add(count: number): Promise<void> {
      const due = addSeconds(now(), -1);
      const create = () =>
        db.flowRuns.create({
          flow_id: flow.id,
          deployment_id: deployment.id,
          work_queue_id: deployment.work_queue_id,
          state: { type: "SCHEDULED", state_details: { scheduled_time: due } },
          next_scheduled_start_time: due,
        });
      const parallel = db.backend === "sqlite" ? 1 : 10;
      let left = count;
      await Promise.all(
        Array.from({ length: parallel }, async () => {
          while (left > 0) {
            left -= 1;
            await create();
          }
        }),
      );
    },
  };
}

/**
 * Drains `first` items, then (except in a smoke run, where the first drain is the measurement) as
 * many as last about the measurement's seconds at the first drain's rate; returns the last rate.
 */
async function drains(settings: BenchSettings, first: number, drain: (count: number) => Promise<number>): Promise<number> {
  const rate = await drain(first);
  return settings.smoke ? rate : drain(Math.max(first, Math.round(rate * settings.seconds)));
}

/**
 * Claims, runs and completes every due run of `pool` on 10 loops; returns how many it completed once
 * their events are stored. The events go through the worker's own writer, as the worker stores them
 * (queued by the runs, appended together while an append is in flight).
 */
async function drainClaims(db: Database, pool: string): Promise<number> {
  const writer = new EventWriter(db, createLogger("warn"));
  const store = (events: readonly OrchestrationEvent[]) => writer.enqueue(events);
  const loop = async (): Promise<number> => {
    let completed = 0;
    for (;;) {
      const outcome = await claimScheduledFlowRuns(db, { workPoolNames: [pool], workQueueNames: null, scheduledBefore: now(), limit: CLAIM_BATCH });
      store(outcome.events);
      const refused = outcome.refused[0];
      if (refused) throw new Error(`run ${refused.run.id} was not claimed: ${String(refused.error ?? refused.result?.status)}`);
      if (outcome.claimed.length === 0) return completed;
      for (const claimed of outcome.claimed) {
        for (const type of ["RUNNING", "COMPLETED"] as const) {
          const result = await setFlowRunState(db, claimed.flow_run.id, { type });
          if (result.status !== "ACCEPT") throw new Error(`${type} for run ${claimed.flow_run.id} was not accepted: ${result.status}`);
          store(result.events);
        }
        completed += 1;
      }
    }
  };
  const counts = await Promise.all(Array.from({ length: CLAIM_LOOPS }, loop));
  await writer.stop();
  return counts.reduce((a, b) => a + b, 0);
}

/** Runs per second of the orchestrated claim path, in this process. */
export async function claimPath(scratch: ScratchDatabase, settings: BenchSettings): Promise<number> {
  const db = await openDatabase(scratch.config);
  try {
    const pool = await duePool(db, "bench-claims", "true");
    const drain = async (count: number) => {
      await pool.add(count);
      const start = performance.now();
      const completed = await drainClaims(db, "bench-claims");
      if (completed !== count) throw new Error(`${completed} runs completed of ${count} due`);
      return count / ((performance.now() - start) / 1000);
    };
    return await drains(settings, settings.smoke ? 30 : 100, drain);
  } finally {
    await db.close();
  }
}

/** Jobs per second of graphile-worker at concurrency 10, no-op jobs, on the scratch PostgreSQL database. */
export async function graphileWorker(url: string, settings: BenchSettings): Promise<number> {
  const logger = new Logger(() => () => undefined);
  await runMigrations({ connectionString: url, logger });
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    const drain = async (count: number) => {
      for (let added = 0; added < count; added += 1000) {
        await utils.addJobs(Array.from({ length: Math.min(1000, count - added) }, () => ({ identifier: "bench", payload: {} })));
      }
      const events = new EventEmitter() as WorkerEvents;
      let succeeded = 0;
      let failed: unknown;
      const finished = new Promise<void>((resolve, reject) => {
        events.on("job:success", () => {
          succeeded += 1;
          if (succeeded === count) resolve();
        });
        events.on("job:error", ({ error }) => {
          failed ??= error;
          reject(error);
        });
      });
      const start = performance.now();
      const runner = await run({ connectionString: url, concurrency: 10, noHandleSignals: true, logger, events, taskList: { bench: async () => undefined } });
      try {
        await finished;
      } finally {
        await runner.stop();
      }
      if (failed) throw failed;
      return count / ((performance.now() - start) / 1000);
    };
    return await drains(settings, settings.smoke ? 200 : 500, drain);
  } finally {
    await utils.release();
  }
}

/**
 * Runs per second of `pnpm worker --limit 10` with the command `true`: due runs drained by the
 * worker process, timed from its first PENDING to its last COMPLETED state.
 */
export async function workerProcess(scratch: ScratchDatabase, raw: RawDatabase, settings: BenchSettings): Promise<number> {
  const db = await openDatabase(scratch.config);
  try {
    const name = "bench-worker";
    const pool = await duePool(db, name, "true");
    let drained = 0;
    /** States written after this belong to the current drain. */
    let since = now();
    const drain = async (count: number): Promise<number> => {
      await pool.add(count);
      drained += count;
      const worker = await startWorker(["--pool", name, "--limit", String(WORKER_LIMIT)], scratch.env);
      const deadline = Date.now() + 60_000 + count * 200;
      try {
        for (;;) {
          const completed = await raw.count("SELECT count(*) FROM flow_run WHERE deployment_id = ? AND state_type = 'COMPLETED'", [pool.deploymentId]);
          if (completed === drained) break;
          if (Date.now() > deadline) throw new Error(`the worker completed ${completed} of ${drained} runs in time:\n${worker.output()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      } finally {
        await worker.stop();
      }
      const [span] = await raw.rows(
        `SELECT (SELECT min(s."timestamp") FROM flow_run_state s JOIN flow_run r ON r.id = s.flow_run_id WHERE r.deployment_id = ? AND s.type = 'PENDING' AND s."timestamp" >= ?) AS first_pending,
                (SELECT max(s."timestamp") FROM flow_run_state s JOIN flow_run r ON r.id = s.flow_run_id WHERE r.deployment_id = ? AND s.type = 'COMPLETED' AND s."timestamp" >= ?) AS last_completed`,
        [pool.deploymentId, since, pool.deploymentId, since],
      );
      return count / ((toMicros(String(span!.last_completed)) - toMicros(String(span!.first_pending))) / 1e6);
    };
    return await drains(settings, settings.smoke ? 20 : 50, async (count) => {
      since = now();
      return drain(count);
    });
  } finally {
    await db.close();
  }
}
