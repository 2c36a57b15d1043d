/** Workers (Prefect's models/workers.py): heartbeats, which make a NOT_READY pool READY, and going OFFLINE. */
import { randomUUID } from "node:crypto";
import { secondsBetween } from "../../dialect.js";
import { InvalidError, NotFoundError } from "../../errors.js";
import { page } from "../../filters.js";
import { checkId } from "../../ids.js";
import type { Page } from "../../schemas/common.js";
import { type Worker, type WorkerFilter, WorkerHeartbeat, type WorkerHeartbeatResult, type WorkPoolChange } from "../../schemas/work-pools.js";
import { sql } from "../../sql.js";
import { insertSql, selectList } from "../../tables.js";
import { now, toTimestamp } from "../../timestamps.js";
import { parseInput, type RepositoryContext } from "../context.js";
import { workerFilterSql } from "./filters.js";
import { type AsOf, POOL, WORKER, workPoolRows } from "./rows.js";

export interface WorkerReadOptions extends Page {
  readonly workers?: WorkerFilter | null | undefined;
}

export interface WorkerHealthOptions extends AsOf {
  /** A worker is offline after this many heartbeat intervals without one (Prefect: 3). */
  readonly inactivityHeartbeatMultiple?: number | undefined;
  /** The interval of workers that never said theirs (Prefect: 30 s). */
  readonly fallbackHeartbeatIntervalSeconds?: number | undefined;
}

export interface WorkerRepository {
  /**
   * Records a worker's heartbeat (inserting the worker on its first): ONLINE, heard from now, with
   * its interval when given. A NOT_READY pool becomes READY. Throws NotFoundError for an unknown pool.
   */
  heartbeat(workPoolId: string, input: WorkerHeartbeat): Promise<Worker>;
  /** As `heartbeat`, also telling whether (and how) the pool became READY. */
  recordHeartbeat(workPoolId: string, input: WorkerHeartbeat): Promise<WorkerHeartbeatResult>;
  /** The pool's workers, most recently heard from first. */
  read(workPoolId: string, options?: WorkerReadOptions): Promise<Worker[]>;
  /** Throws NotFoundError. */
  delete(workPoolId: string, name: string): Promise<void>;
  /** Marks ONLINE workers OFFLINE whose last heartbeat is too old; returns their ids. */
  markOffline(options?: WorkerHealthOptions): Promise<string[]>;
}

export function workerRepository(context: RepositoryContext): WorkerRepository {
  const { q, d, decodePool, decodeWorker, selectWorkers, poolWhere, updateInIdOrder } = workPoolRows(context);
  const repository: WorkerRepository = {
    async heartbeat(workPoolId, input) {
      return (await repository.recordHeartbeat(workPoolId, input)).worker;
    },

    async recordHeartbeat(workPoolId, input) {
      workPoolId = checkId(workPoolId, "work pool id");
      const data = parseInput(WorkerHeartbeat, input, "worker heartbeat");
      const ts = now();
      const worker = {
        id: randomUUID(),
        created: ts,
        updated: ts,
        work_pool_id: workPoolId,
        name: data.name,
        last_heartbeat_time: ts,
        heartbeat_interval_seconds: data.heartbeat_interval_seconds ?? null,
        status: "ONLINE",
      };
      const upsert = insertSql(
        WORKER,
        worker,
        sql` ON CONFLICT ("work_pool_id", "name") DO UPDATE SET "last_heartbeat_time" = excluded."last_heartbeat_time", "status" = excluded."status",
          "heartbeat_interval_seconds" = COALESCE(excluded."heartbeat_interval_seconds", "worker"."heartbeat_interval_seconds"), "updated" = excluded."updated"
          RETURNING ${selectList(WORKER, "worker")}`,
      );
      try {
        return await q.transaction(async (tx): Promise<WorkerHeartbeatResult> => {
          const previous = await poolWhere(tx, sql`wp.id = ${workPoolId}`);
          if (!previous) throw new NotFoundError(`Work pool ${workPoolId} not found.`);
          // The pool changes first (taking its row lock only then), before the worker's row is
          // locked, in the order other changes of both take them. Of concurrent heartbeats, the
          // first to commit makes the pool READY; the condition leaves the others nothing to change.
          let readied: WorkPoolChange | null = null;
          if (previous.status === "NOT_READY") {
            const changed = await tx.query(
              sql`UPDATE work_pool SET status = 'READY', last_status_event_id = ${randomUUID()}, last_transitioned_status_at = ${ts}, updated = ${ts}
                  WHERE id = ${workPoolId} AND status = 'NOT_READY' RETURNING ${selectList(POOL, "work_pool")}`,
            );
            if (changed[0]) readied = { previous, current: decodePool(changed[0]) };
          }
          const rows = await tx.query(upsert);
          return { worker: decodeWorker(rows[0]!), readied };
        });
      } catch (error) {
        if (error instanceof InvalidError && error.reason === "missing_reference") {
          throw new NotFoundError(`Work pool ${workPoolId} not found.`, { cause: error });
        }
        throw error;
      }
    },

    async read(workPoolId, options = {}) {
      workPoolId = checkId(workPoolId, "work pool id");
      const rows = await q.query(
        sql`${selectWorkers} WHERE w.work_pool_id = ${workPoolId} AND ${sql.and([workerFilterSql(d, options.workers, "w")])}
            ORDER BY w.last_heartbeat_time DESC, w.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeWorker);
    },

    async delete(workPoolId, name) {
      workPoolId = checkId(workPoolId, "work pool id");
      const deleted = await q.execute(sql`DELETE FROM worker WHERE work_pool_id = ${workPoolId} AND name = ${name}`);
      if (deleted === 0) throw new NotFoundError(`Worker ${JSON.stringify(name)} not found in work pool ${workPoolId}.`);
    },

    async markOffline(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      // `* 1.0` keeps fractional settings fractional (PostgreSQL would type them after the integer column).
      const interval = sql`COALESCE(t.heartbeat_interval_seconds * 1.0, ${options.fallbackHeartbeatIntervalSeconds ?? 30}) * ${options.inactivityHeartbeatMultiple ?? 3}`;
      const rows = await updateInIdOrder(
        "worker",
        sql`status = 'OFFLINE', updated = ${ts}`,
        sql`t.status = 'ONLINE' AND ${secondsBetween(d, sql`${ts}`, sql.raw("t.last_heartbeat_time"))} > (${interval})`,
        sql` RETURNING id`,
      );
      return rows.map((row) => row.id as string);
    },
  };
  return repository;
}
