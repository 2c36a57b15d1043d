/**
 * What the work pool modules share: how pools, queues, workers and slot holders are read and
 * decoded, and the row locks their changes take.
 */
import type { Queryable, Row } from "../../driver/types.js";
import { NotFoundError } from "../../errors.js";
import type { SlotHolder, Worker, WorkPool, WorkQueue } from "../../schemas/work-pools.js";
import { type Sql, sql } from "../../sql.js";
import { rowDecoder, selectList, tables } from "../../tables.js";
import type { RepositoryContext } from "../context.js";

export const POOL = tables.work_pool;
export const QUEUE = tables.work_queue;
export const WORKER = tables.worker;

/** When the foreman's bookkeeping runs, for tests and for services that pass their own clock. */
export interface AsOf {
  readonly now?: string | undefined;
}

export const SLOT_HOLDER_COLUMNS = sql.raw("fr.id, fr.name, fr.work_queue_id, fr.state_type, fr.state_name, fr.start_time, fr.state_timestamp");

export function workPoolRows(context: RepositoryContext) {
  const { q } = context;
  const d = q.dialect;
  const decodePool = rowDecoder<WorkPool>(d, POOL);
  const decodeQueueRow = rowDecoder<WorkQueue>(d, QUEUE);
  const decodeQueue = (row: Row): WorkQueue => ({ ...decodeQueueRow(row), work_pool_name: row.work_pool_name as string });
  const decodeWorker = rowDecoder<Worker>(d, WORKER);
  const decodeSlotHolder = (row: Row): SlotHolder => ({
    id: row.id as string,
    name: row.name as string,
    work_queue_id: (row.work_queue_id as string | null) ?? null,
    state_type: (row.state_type as SlotHolder["state_type"]) ?? null,
    state_name: (row.state_name as string | null) ?? null,
    start_time: row.start_time === null || row.start_time === undefined ? null : d.decodeTimestamp(row.start_time),
    state_timestamp: row.state_timestamp === null || row.state_timestamp === undefined ? null : d.decodeTimestamp(row.state_timestamp),
  });

  const selectPools = sql`SELECT ${selectList(POOL, "wp")} FROM work_pool wp`;
  const selectQueues = sql`SELECT ${selectList(QUEUE, "wq")}, wp.name AS work_pool_name FROM work_queue wq JOIN work_pool wp ON wp.id = wq.work_pool_id`;
  const selectWorkers = sql`SELECT ${selectList(WORKER, "w")} FROM worker w`;

  /**
   * A row lock for changes that leave the row's key alone, so that inserts of rows referring to it
   * (runs into a queue, workers into a pool) go on meanwhile.
   */
  const lockRows = (alias: string) => d.forNoKeyUpdate(alias);
  const poolWhere = async (db: Queryable, condition: Sql, lock = false) => {
    const rows = await db.query(sql`${selectPools} WHERE ${condition}${lock ? lockRows("wp") : sql.empty}`);
    return rows[0] ? decodePool(rows[0]) : null;
  };
  const queueWhere = async (db: Queryable, condition: Sql, lock = false) => {
    const rows = await db.query(sql`${selectQueues} WHERE ${condition}${lock ? lockRows("wq") : sql.empty}`);
    return rows[0] ? decodeQueue(rows[0]) : null;
  };

  /** Locks the pool row against concurrent queue changes; throws NotFoundError when it is gone. */
  const lockPool = async (tx: Queryable, workPoolId: string) => {
    const pool = await poolWhere(tx, sql`wp.id = ${workPoolId}`, true);
    if (!pool) throw new NotFoundError(`Work pool ${workPoolId} not found.`);
    return pool;
  };

  const countBy = async (query: Sql) => {
    const rows = await q.query<{ id: string; n: number }>(query);
    return new Map(rows.map((row) => [row.id, Number(row.n)]));
  };

  /** `UPDATE table SET ... WHERE <rows>`, locking the rows in id order first (no deadlocks between bulk updates). */
  const updateInIdOrder = (table: "work_pool" | "work_queue" | "worker" | "deployment", set: Sql, rows: Sql, returning: Sql) =>
    q.query(
      sql`WITH locked AS (SELECT t.id FROM ${sql.ident(table)} t WHERE ${rows} ORDER BY t.id${lockRows("t")}) UPDATE ${sql.ident(
        table,
      )} SET ${set} WHERE id IN (SELECT id FROM locked)${returning}`,
    );

  return {
    q,
    d,
    decodePool,
    decodeQueue,
    decodeWorker,
    decodeSlotHolder,
    selectPools,
    selectQueues,
    selectWorkers,
    lockRows,
    poolWhere,
    queueWhere,
    lockPool,
    countBy,
    updateInIdOrder,
  };
}
