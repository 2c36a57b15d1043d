/**
 * Work queues (Prefect's models/work_queues.py): a pool's queues and their priorities, their slots in
 * use, the legacy poll of one queue, and the READY / NOT_READY status that polls keep, of the queues
 * and of the deployments that use them.
 */
import { randomUUID } from "node:crypto";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../../errors.js";
import { page, where } from "../../filters.js";
import { checkId } from "../../ids.js";
import type { Page } from "../../schemas/common.js";
import type { FlowRun } from "../../schemas/runs.js";
import {
  QueueRunsQuery,
  type SlotHolder,
  type WorkQueue,
  type WorkQueueChange,
  WorkQueueCreate,
  type WorkQueueFilter,
  type WorkQueueStatus,
  WorkQueueUpdate,
} from "../../schemas/work-pools.js";
import type { Queryable } from "../../driver/types.js";
import { type Sql, sql } from "../../sql.js";
import { assignments, insertSql } from "../../tables.js";
import { addSeconds, now, secondsBetween, toTimestamp } from "../../timestamps.js";
import { limitSql } from "../../claims.js";
import { parseInput, type RepositoryContext } from "../context.js";
import { flowRunReader } from "../flow-runs.js";
import { has, workQueueFilterSql } from "./filters.js";
import { type AsOf, QUEUE, SLOT_HOLDER_COLUMNS, workPoolRows } from "./rows.js";

/** Prefect's WORK_QUEUE_LAST_POLLED_TIMEOUT: a queue polled this recently is READY when unpaused. */
const QUEUE_LAST_POLLED_TIMEOUT_SECONDS = 60;

export interface WorkQueueReadOptions extends Page {
  readonly work_queues?: WorkQueueFilter | null | undefined;
}

export interface PollTimeoutOptions extends AsOf {
  /** Not polled for longer than this means NOT_READY (Prefect: 60 s). */
  readonly lastPolledTimeoutSeconds?: number | undefined;
}

/**
 * The priorities of a pool's queues after giving one of them `priority`, as Prefect's bulk
 * reprioritisation does: the queue goes before the first other queue at or below that priority, and
 * the others keep their order, each moved down only as far as it must to stay after the one before
 * it, so that priorities stay distinct. Returns only the changes.
 */
function reprioritise(queues: readonly { id: string; priority: number }[], movedId: string, priority: number): Map<string, number> {
  const ordered = [...queues].sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : 1));
  const result = new Map(ordered.map((q) => [q.id, q.id === movedId ? priority : q.priority]));
  const others = ordered.filter((q) => q.id !== movedId).map((q) => q.id);
  const at = others.findIndex((id) => result.get(id)! >= priority);
  if (at >= 0) others.splice(at, 0, movedId);
  let last = 0;
  for (const id of others) {
    const current = result.get(id)!;
    if (current <= last) result.set(id, ++last);
    else last = current;
  }
  const before = new Map(queues.map((q) => [q.id, q.priority]));
  return new Map([...result].filter(([id, p]) => before.get(id) !== p));
}

/** The first gap in the priorities taken, counting from 1; else one past the highest. */
function firstFreePriority(priorities: readonly number[]): number {
  const sorted = [...priorities].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) if (sorted[i] !== i + 1) return i + 1;
  return sorted.length === 0 ? 1 : sorted[sorted.length - 1]! + 1;
}

/** A queue's slot holders as Prefect's legacy queue routes see them: by id, or by name for runs without a queue. */
function queueSlotHolders(workQueueId: string): Sql {
  return sql`(fr.work_queue_id = ${workQueueId} OR (fr.work_queue_id IS NULL AND fr.work_queue_name = (SELECT name FROM work_queue WHERE id = ${workQueueId})))
    AND fr.state_type IN ('PENDING', 'RUNNING', 'CANCELLING')`;
}

export interface WorkQueueRepository {
  /**
   * Creates a queue in the pool. Without a priority it takes the first free one counting from 1; a
   * priority another queue holds moves that queue (and the ones after it) down. Throws NotFoundError
   * for an unknown pool and AlreadyExistsError for a name the pool already has.
   */
  create(workPoolId: string, input: WorkQueueCreate): Promise<WorkQueue>;
  get(id: string): Promise<WorkQueue | null>;
  getByName(workPoolName: string, queueName: string): Promise<WorkQueue | null>;
  /** The pool's queues by priority. */
  read(workPoolId: string, options?: WorkQueueReadOptions): Promise<WorkQueue[]>;
  /** The queues of every pool, by name (Prefect's legacy `/work_queues/filter`). */
  readAll(options?: WorkQueueReadOptions): Promise<WorkQueue[]>;
  /** How many queues the pool has. */
  count(workPoolId: string): Promise<number>;
  /**
   * Changes the fields given. Pausing makes the queue PAUSED; unpausing a paused queue makes it
   * READY when it was polled in the last minute, else NOT_READY. A new priority reorders the pool's
   * queues as `createQueue` does. Throws NotFoundError.
   */
  update(id: string, patch: WorkQueueUpdate): Promise<WorkQueue>;
  /** As `updateQueue`, returning the queue as it was before the change too. */
  change(id: string, patch: WorkQueueUpdate): Promise<WorkQueueChange>;
  /** Returns the deleted queue. Throws NotFoundError, and InvalidError for a pool's default queue. */
  delete(id: string): Promise<WorkQueue>;
  /**
   * PENDING and RUNNING runs per queue id (CANCELLING ones too with `includeCancelling`, as Prefect's
   * legacy work queue routes count them).
   */
  countActiveSlots(workQueueIds: readonly string[], options?: { readonly includeCancelling?: boolean }): Promise<Map<string, number>>;
  /**
   * The queue's PENDING, RUNNING and CANCELLING runs, by id: those in the queue, and those without a
   * queue that carry its name.
   */
  readSlotHolders(workQueueId: string, page?: Page): Promise<SlotHolder[]>;
  countSlotHolders(workQueueId: string): Promise<number>;
  /**
   * The runs a legacy poll of one queue gets (Prefect's `get_runs_in_work_queue` for queues without a
   * filter): SCHEDULED runs whose `work_queue_name` is the queue's name, by due time, at most as many
   * as the queue's limit leaves free (PENDING, RUNNING and CANCELLING runs of that name hold slots);
   * none for a paused queue. Changes nothing. Throws NotFoundError for an unknown queue.
   */
  getRuns(workQueueId: string, query?: QueueRunsQuery): Promise<FlowRun[]>;
  /** Marks READY queues NOT_READY that were not polled for too long; returns their ids. */
  markNotReady(options?: PollTimeoutOptions): Promise<string[]>;
  /**
   * Records that workers polled these queues: `last_polled` now, and NOT_READY ones become READY.
   * Returns the queues that became READY.
   */
  markPolled(workQueueIds: readonly string[], options?: AsOf): Promise<WorkQueue[]>;
  /**
   * Marks READY deployments NOT_READY that were not polled for too long, nor was their queue;
   * returns their ids.
   */
  markDeploymentsNotReady(options?: PollTimeoutOptions): Promise<string[]>;
  /**
   * Records that the deployments of these queues were polled: READY, `last_polled` now. Returns the
   * ids of those that were NOT_READY.
   */
  markDeploymentsPolled(workQueueIds: readonly string[], options?: AsOf): Promise<string[]>;
}

export function workQueueRepository(context: RepositoryContext): WorkQueueRepository {
  const { q, d, decodeQueue, decodeSlotHolder, selectQueues, lockRows, poolWhere, queueWhere, lockPool, countBy, updateInIdOrder } = workPoolRows(context);
  const reader = flowRunReader(d);

  /** Gives the queue `priority`, moving the pool's other queues as `reprioritise` says. */
  const applyPriority = async (tx: Queryable, workPoolId: string, queueId: string, priority: number) => {
    const queues = await tx.query<{ id: string; priority: number }>(sql`SELECT id, priority FROM work_queue WHERE work_pool_id = ${workPoolId}`);
    const changes = reprioritise(
      queues.map((row) => ({ id: row.id, priority: Number(row.priority) })),
      queueId,
      priority,
    );
    const ts = now();
    for (const [id, p] of changes) await tx.execute(sql`UPDATE work_queue SET priority = ${p}, updated = ${ts} WHERE id = ${id}`);
  };

  const repository: WorkQueueRepository = {
    async create(workPoolId, input) {
      workPoolId = checkId(workPoolId, "work pool id");
      const data = parseInput(WorkQueueCreate, input, "work queue");
      const id = data.id ?? randomUUID();
      try {
        await q.transaction(async (tx) => {
          await lockPool(tx, workPoolId);
          const taken = await tx.query<{ priority: number }>(sql`SELECT priority FROM work_queue WHERE work_pool_id = ${workPoolId}`);
          const ts = now();
          await tx.execute(
            insertSql(QUEUE, {
              id,
              created: ts,
              updated: ts,
              name: data.name,
              filter: data.filter ?? null,
              description: data.description ?? "",
              is_paused: data.is_paused,
              concurrency_limit: data.concurrency_limit ?? null,
              priority: data.priority ?? firstFreePriority(taken.map((row) => Number(row.priority))),
              last_polled: null,
              status: data.is_paused ? "PAUSED" : "NOT_READY",
              work_pool_id: workPoolId,
            }),
          );
          if (has(data.priority)) await applyPriority(tx, workPoolId, id, data.priority);
        });
      } catch (error) {
        if (error instanceof AlreadyExistsError) {
          throw new AlreadyExistsError(`The work pool already has a queue named ${JSON.stringify(data.name)}.`, error.constraint, { cause: error });
        }
        throw error;
      }
      return (await queueWhere(q, sql`wq.id = ${id}`))!;
    },

    get: async (id) => queueWhere(q, sql`wq.id = ${checkId(id, "work queue id")}`),

    getByName: async (workPoolName, queueName) => queueWhere(q, sql`wp.name = ${workPoolName} AND wq.name = ${queueName}`),

    async read(workPoolId, options = {}) {
      workPoolId = checkId(workPoolId, "work pool id");
      const rows = await q.query(
        sql`${selectQueues} WHERE wq.work_pool_id = ${workPoolId} AND ${sql.and([workQueueFilterSql(d, options.work_queues, "wq")])} ORDER BY wq.priority, wq.id${page(
          d,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(decodeQueue);
    },

    async readAll(options = {}) {
      const rows = await q.query(
        sql`${selectQueues}${where(workQueueFilterSql(d, options.work_queues, "wq"))} ORDER BY wq.name, wq.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeQueue);
    },

    async count(workPoolId) {
      workPoolId = checkId(workPoolId, "work pool id");
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM work_queue WHERE work_pool_id = ${workPoolId}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      return (await repository.change(id, patch)).current;
    },

    async change(id, patch) {
      id = checkId(id, "work queue id");
      const data = parseInput(WorkQueueUpdate, patch, "work queue update");
      let previous: WorkQueue | undefined;
      try {
        await q.transaction(async (tx) => {
          // A new priority moves other queues of the pool: lock the pool first, as claims do, then the queue.
          const found = has(data.priority) ? await queueWhere(tx, sql`wq.id = ${id}`) : null;
          if (found) await lockPool(tx, found.work_pool_id);
          const current = await queueWhere(tx, sql`wq.id = ${id}`, true);
          if (!current) throw new NotFoundError(`Work queue ${id} not found.`);
          previous = current;
          const changes: Record<string, unknown> = {
            name: data.name,
            description: data.description === null ? "" : data.description,
            is_paused: data.is_paused,
            concurrency_limit: data.concurrency_limit,
            last_polled: data.last_polled,
            filter: data.filter,
            updated: now(),
          };
          if (data.is_paused === true && current.status !== "PAUSED") changes.status = "PAUSED" satisfies WorkQueueStatus;
          if (data.is_paused === false && current.status === "PAUSED") {
            const lastPolled = data.last_polled === undefined ? current.last_polled : data.last_polled;
            const recent = lastPolled !== null && secondsBetween(now(), lastPolled) <= QUEUE_LAST_POLLED_TIMEOUT_SECONDS;
            changes.status = (recent ? "READY" : "NOT_READY") satisfies WorkQueueStatus;
          }
          await tx.execute(sql`UPDATE work_queue SET ${assignments(QUEUE, changes)} WHERE id = ${id}`);
          if (has(data.priority)) await applyPriority(tx, current.work_pool_id, id, data.priority);
        });
      } catch (error) {
        if (error instanceof AlreadyExistsError) {
          throw new AlreadyExistsError(`The work pool already has a queue named ${JSON.stringify(data.name)}.`, error.constraint, { cause: error });
        }
        throw error;
      }
      return { previous: previous!, current: (await queueWhere(q, sql`wq.id = ${id}`))! };
    },

    async delete(id) {
      id = checkId(id, "work queue id");
      return q.transaction(async (tx) => {
        const current = await queueWhere(tx, sql`wq.id = ${id}`, true);
        if (!current) throw new NotFoundError(`Work queue ${id} not found.`);
        const pool = await poolWhere(tx, sql`wp.id = ${current.work_pool_id}`);
        if (pool?.default_queue_id === id) throw new InvalidError("Can't delete a pool's default queue.");
        await tx.execute(sql`DELETE FROM agent WHERE work_queue_id = ${id}`);
        await tx.execute(sql`DELETE FROM work_queue WHERE id = ${id}`);
        return current;
      });
    },

    async countActiveSlots(workQueueIds, options = {}) {
      const ids = workQueueIds.map((id) => checkId(id, "work queue id"));
      if (ids.length === 0) return new Map();
      const states = sql.raw(options.includeCancelling ? "('PENDING', 'RUNNING', 'CANCELLING')" : "('PENDING', 'RUNNING')");
      return countBy(
        sql`SELECT fr.work_queue_id AS id, count(*) AS n FROM flow_run fr
            WHERE fr.state_type IN ${states} AND ${d.inList(sql.raw("fr.work_queue_id"), ids)} GROUP BY fr.work_queue_id`,
      );
    },

    async readSlotHolders(workQueueId, options = {}) {
      workQueueId = checkId(workQueueId, "work queue id");
      const rows = await q.query(
        sql`SELECT ${SLOT_HOLDER_COLUMNS} FROM flow_run fr WHERE ${queueSlotHolders(workQueueId)} ORDER BY fr.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeSlotHolder);
    },

    async countSlotHolders(workQueueId) {
      workQueueId = checkId(workQueueId, "work queue id");
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM flow_run fr WHERE ${queueSlotHolders(workQueueId)}`);
      return Number(rows[0]?.n ?? 0);
    },

    async getRuns(workQueueId, query = {}) {
      workQueueId = checkId(workQueueId, "work queue id");
      const data = parseInput(QueueRunsQuery, query, "work queue runs query");
      const queue = await queueWhere(q, sql`wq.id = ${workQueueId}`);
      if (!queue) throw new NotFoundError(`Work queue with id ${workQueueId} not found.`);
      if (queue.is_paused) return [];
      let limit = data.limit ?? null;
      if (queue.concurrency_limit !== null) {
        const active = await q.query<{ n: number }>(
          sql`SELECT count(*) AS n FROM flow_run WHERE work_queue_name = ${queue.name} AND state_type IN ('PENDING', 'RUNNING', 'CANCELLING')`,
        );
        const free = Math.max(0, queue.concurrency_limit - Number(active[0]?.n ?? 0));
        limit = limit === null ? free : Math.min(limit, free);
      }
      if (limit === 0) return [];
      const before = data.scheduledBefore ? sql` AND fr.next_scheduled_start_time <= ${data.scheduledBefore}` : sql.empty;
      const rows = await q.query(
        sql`${reader.select} WHERE r.id IN (
              SELECT fr.id FROM flow_run fr WHERE fr.work_queue_name = ${queue.name} AND fr.state_type = 'SCHEDULED'${before}
              ORDER BY fr.next_scheduled_start_time ASC NULLS LAST, fr.id${limitSql(limit)})
            ORDER BY r.next_scheduled_start_time ASC NULLS LAST, r.id`,
      );
      return rows.map((row) => reader.decode(row));
    },

    async markNotReady(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      const threshold = addSeconds(ts, -(options.lastPolledTimeoutSeconds ?? 60));
      const rows = await updateInIdOrder(
        "work_queue",
        sql`status = 'NOT_READY', updated = ${ts}`,
        sql`t.status = 'READY' AND t.last_polled IS NOT NULL AND t.last_polled < ${threshold}`,
        sql` RETURNING id`,
      );
      return rows.map((row) => row.id as string);
    },

    async markPolled(workQueueIds, options = {}) {
      const ids = [...new Set(workQueueIds.map((id) => checkId(id, "work queue id")))];
      if (ids.length === 0) return [];
      const ts = options.now ? toTimestamp(options.now) : now();
      const readied = await q.transaction(async (tx) => {
        // Rows locked in id order, so that concurrent marks (and the foreman's) queue up instead of deadlocking.
        const locked = await tx.query<{ id: string; status: string }>(
          sql`SELECT t.id, t.status FROM work_queue t WHERE ${d.inList(sql.raw("t.id"), ids)} ORDER BY t.id${lockRows("t")}`,
        );
        if (locked.length === 0) return [];
        await tx.execute(sql`UPDATE work_queue SET last_polled = ${ts}, updated = ${ts} WHERE ${d.inList(sql.raw("id"), locked.map((row) => row.id))}`);
        const ready = locked.filter((row) => row.status === "NOT_READY").map((row) => row.id);
        if (ready.length > 0) await tx.execute(sql`UPDATE work_queue SET status = 'READY' WHERE ${d.inList(sql.raw("id"), ready)}`);
        return ready;
      });
      if (readied.length === 0) return [];
      return (await q.query(sql`${selectQueues} WHERE ${d.inList(sql.raw("wq.id"), readied)} ORDER BY wq.id`)).map(decodeQueue);
    },

    async markDeploymentsNotReady(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      const threshold = addSeconds(ts, -(options.lastPolledTimeoutSeconds ?? 60));
      // `updated` stays as it is: the scheduler reads it as "the deployment changed".
      const rows = await updateInIdOrder(
        "deployment",
        sql`status = 'NOT_READY'`,
        sql`t.status = 'READY' AND t.last_polled IS NOT NULL AND t.last_polled < ${threshold}
            AND NOT EXISTS (SELECT 1 FROM work_queue wq WHERE wq.id = t.work_queue_id AND wq.last_polled >= ${threshold})`,
        sql` RETURNING id`,
      );
      return rows.map((row) => row.id as string);
    },

    async markDeploymentsPolled(workQueueIds, options = {}) {
      const ids = [...new Set(workQueueIds.map((id) => checkId(id, "work queue id")))];
      if (ids.length === 0) return [];
      const ts = options.now ? toTimestamp(options.now) : now();
      return q.transaction(async (tx) => {
        const locked = await tx.query<{ id: string; status: string }>(
          sql`SELECT t.id, t.status FROM deployment t WHERE ${d.inList(sql.raw("t.work_queue_id"), ids)} ORDER BY t.id${lockRows("t")}`,
        );
        if (locked.length === 0) return [];
        // `updated` stays as it is: the scheduler reads it as "the deployment changed".
        await tx.execute(sql`UPDATE deployment SET status = 'READY', last_polled = ${ts} WHERE ${d.inList(sql.raw("id"), locked.map((row) => row.id))}`);
        return locked.filter((row) => row.status === "NOT_READY").map((row) => row.id);
      });
    },
  };
  return repository;
}
