/** Work pools (Prefect's models/workers.py): the pools themselves, their slots in use and their status. */
import { randomUUID } from "node:crypto";
import { AlreadyExistsError } from "../../errors.js";
import { page, where } from "../../filters.js";
import { checkId } from "../../ids.js";
import type { Page } from "../../schemas/common.js";
import {
  AGENT_POOL_TYPE,
  DEFAULT_QUEUE_NAME,
  type DeletedWorkPool,
  type SlotHolder,
  type WorkPool,
  type WorkPoolChange,
  WorkPoolCreate,
  type WorkPoolFilter,
  type WorkPoolStatus,
  WorkPoolUpdate,
} from "../../schemas/work-pools.js";
import { sql } from "../../sql.js";
import { assignments, insertSql, selectList } from "../../tables.js";
import { now, toTimestamp } from "../../timestamps.js";
import { parseInput, type RepositoryContext } from "../context.js";
import { has, workPoolFilterSql } from "./filters.js";
import { type AsOf, POOL, QUEUE, SLOT_HOLDER_COLUMNS, workPoolRows } from "./rows.js";

export interface WorkPoolReadOptions extends Page {
  readonly work_pools?: WorkPoolFilter | null | undefined;
}

/** Which slot holders of a pool to list. */
export interface PoolSlotHolderOptions {
  /** Only runs in these queues. */
  readonly workQueueIds?: readonly string[] | undefined;
  /** At most this many runs per queue (by id). */
  readonly perQueueLimit?: number | undefined;
}

export interface WorkPoolRepository {
  /**
   * Creates the pool with its `default` queue (priority 1) and points the pool at it, atomically.
   * A paused pool starts PAUSED, any other NOT_READY. Throws AlreadyExistsError for a taken name.
   */
  create(input: WorkPoolCreate): Promise<WorkPool>;
  get(id: string): Promise<WorkPool | null>;
  getByName(name: string): Promise<WorkPool | null>;
  /** Pools by name. */
  read(options?: WorkPoolReadOptions): Promise<WorkPool[]>;
  count(options?: Pick<WorkPoolReadOptions, "work_pools">): Promise<number>;
  /**
   * Changes the fields given. Pausing makes the pool PAUSED; unpausing makes it READY when one of its
   * workers is online, else NOT_READY (agent pools keep their status). Throws NotFoundError.
   */
  update(id: string, patch: WorkPoolUpdate): Promise<WorkPool>;
  /** As `update`, returning the pool as it was before the change too. */
  change(id: string, patch: WorkPoolUpdate): Promise<WorkPoolChange>;
  /** Deletes the pool with its queues and workers; returns what was deleted. Throws NotFoundError. */
  delete(id: string): Promise<DeletedWorkPool>;
  /** PENDING and RUNNING runs in the pool's queues (paused ones included), per pool id. */
  countActiveSlots(workPoolIds: readonly string[]): Promise<Map<string, number>>;
  /** The pool's PENDING and RUNNING runs (paused queues included), by id. */
  readSlotHolders(workPoolId: string, options?: PoolSlotHolderOptions): Promise<SlotHolder[]>;
  /** How many of the pool's runs are PENDING or RUNNING, per queue id. */
  countSlotHoldersByQueue(workPoolId: string): Promise<Map<string, number>>;
  /** Marks READY pools without an ONLINE worker NOT_READY (paused pools stay PAUSED); returns them. */
  markNotReady(options?: AsOf): Promise<WorkPool[]>;
}

export function workPoolRepository(context: RepositoryContext): WorkPoolRepository {
  const { q, d, decodePool, decodeQueue, decodeSlotHolder, selectPools, selectQueues, poolWhere, lockPool, countBy, updateInIdOrder } = workPoolRows(context);
  const repository: WorkPoolRepository = {
    async create(input) {
      const data = parseInput(WorkPoolCreate, input, "work pool");
      const ts = now();
      const poolId = data.id ?? randomUUID();
      const queueId = randomUUID();
      const status: WorkPoolStatus = data.is_paused && data.type !== AGENT_POOL_TYPE ? "PAUSED" : "NOT_READY";
      const pool = {
        id: poolId,
        created: ts,
        updated: ts,
        name: data.name,
        description: data.description ?? null,
        type: data.type,
        base_job_template: data.base_job_template,
        is_paused: data.is_paused,
        default_queue_id: null,
        concurrency_limit: data.concurrency_limit ?? null,
        status,
        last_transitioned_status_at: null,
        last_status_event_id: null,
        storage_configuration: data.storage_configuration,
      };
      const queue = {
        id: queueId,
        created: ts,
        updated: ts,
        name: DEFAULT_QUEUE_NAME,
        filter: null,
        description: "The work pool's default queue.",
        is_paused: false,
        concurrency_limit: null,
        priority: 1,
        last_polled: null,
        status: "NOT_READY",
        work_pool_id: poolId,
      };
      try {
        await q.transaction(async (tx) => {
          // The pool and its default queue point at each other: the pool goes in first, without its pointer.
          await tx.execute(insertSql(POOL, pool));
          await tx.execute(insertSql(QUEUE, queue));
          await tx.execute(sql`UPDATE work_pool SET default_queue_id = ${queueId} WHERE id = ${poolId}`);
        });
      } catch (error) {
        if (error instanceof AlreadyExistsError) {
          throw new AlreadyExistsError(`A work pool named ${JSON.stringify(data.name)} already exists.`, error.constraint, { cause: error });
        }
        throw error;
      }
      return { ...pool, default_queue_id: queueId } as WorkPool;
    },

    get: async (id) => poolWhere(q, sql`wp.id = ${checkId(id, "work pool id")}`),

    getByName: async (name) => poolWhere(q, sql`wp.name = ${name}`),

    async read(options = {}) {
      const rows = await q.query(
        sql`${selectPools}${where(workPoolFilterSql(d, options.work_pools, "wp"))} ORDER BY wp.name${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodePool);
    },

    async count(options = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM work_pool wp${where(workPoolFilterSql(d, options.work_pools, "wp"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      return (await repository.change(id, patch)).current;
    },

    async change(id, patch) {
      id = checkId(id, "work pool id");
      const data = parseInput(WorkPoolUpdate, patch, "work pool update");
      return q.transaction(async (tx) => {
        const previous = await lockPool(tx, id);
        const ts = now();
        const changes: Record<string, unknown> = {
          description: data.description,
          concurrency_limit: data.concurrency_limit,
          base_job_template: data.base_job_template ?? undefined,
          storage_configuration: data.storage_configuration ?? undefined,
          is_paused: data.is_paused ?? undefined,
          updated: ts,
        };
        if (has(data.is_paused) && previous.type !== AGENT_POOL_TYPE) {
          let status: WorkPoolStatus = "PAUSED";
          if (!data.is_paused) {
            const online = await tx.query(sql`SELECT 1 AS online FROM worker WHERE work_pool_id = ${id} AND status = 'ONLINE' LIMIT 1`);
            status = online.length > 0 ? "READY" : "NOT_READY";
          }
          Object.assign(changes, { status, last_status_event_id: randomUUID(), last_transitioned_status_at: ts });
        }
        const rows = await tx.query(sql`UPDATE work_pool SET ${assignments(POOL, changes)} WHERE id = ${id} RETURNING ${selectList(POOL, "work_pool")}`);
        return { previous, current: decodePool(rows[0]!) };
      });
    },

    async delete(id) {
      id = checkId(id, "work pool id");
      return q.transaction(async (tx) => {
        // Locked first, as queue changes lock it, so that no queue is added meanwhile.
        const pool = await lockPool(tx, id);
        const queues = (await tx.query(sql`${selectQueues} WHERE wq.work_pool_id = ${id} ORDER BY wq.priority, wq.id`)).map(decodeQueue);
        // Legacy agents hold their queue without a delete rule; they go with it.
        await tx.execute(sql`DELETE FROM agent WHERE work_queue_id IN (SELECT id FROM work_queue WHERE work_pool_id = ${id})`);
        await tx.execute(sql`DELETE FROM work_pool WHERE id = ${id}`);
        return { pool, queues };
      });
    },

    async countActiveSlots(workPoolIds) {
      const ids = workPoolIds.map((id) => checkId(id, "work pool id"));
      if (ids.length === 0) return new Map();
      return countBy(
        sql`SELECT wq.work_pool_id AS id, count(*) AS n FROM flow_run fr JOIN work_queue wq ON wq.id = fr.work_queue_id
            WHERE fr.state_type IN ('PENDING', 'RUNNING') AND ${d.inList(sql.raw("wq.work_pool_id"), ids)} GROUP BY wq.work_pool_id`,
      );
    },

    async readSlotHolders(workPoolId, options = {}) {
      workPoolId = checkId(workPoolId, "work pool id");
      const queueIds = options.workQueueIds?.map((id) => checkId(id, "work queue id"));
      if (queueIds && queueIds.length === 0) return [];
      const inQueues = queueIds ? sql` AND ${d.inList(sql.raw("fr.work_queue_id"), queueIds)}` : sql.empty;
      const perQueue = options.perQueueLimit === undefined ? sql.empty : sql` WHERE h.queue_rank <= ${options.perQueueLimit}`;
      const rows = await q.query(
        sql`SELECT h.* FROM (
              SELECT ${SLOT_HOLDER_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY fr.work_queue_id ORDER BY fr.id) AS queue_rank
              FROM flow_run fr JOIN work_queue wq ON wq.id = fr.work_queue_id
              WHERE wq.work_pool_id = ${workPoolId} AND fr.state_type IN ('PENDING', 'RUNNING')${inQueues}
            ) h${perQueue} ORDER BY h.id`,
      );
      return rows.map(decodeSlotHolder);
    },

    async countSlotHoldersByQueue(workPoolId) {
      workPoolId = checkId(workPoolId, "work pool id");
      return countBy(
        sql`SELECT fr.work_queue_id AS id, count(*) AS n FROM flow_run fr JOIN work_queue wq ON wq.id = fr.work_queue_id
            WHERE wq.work_pool_id = ${workPoolId} AND fr.state_type IN ('PENDING', 'RUNNING') GROUP BY fr.work_queue_id`,
      );
    },

    async markNotReady(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      const rows = await updateInIdOrder(
        "work_pool",
        sql`status = 'NOT_READY', last_status_event_id = ${d.randomUuid()}, last_transitioned_status_at = ${ts}, updated = ${ts}`,
        sql`t.status = 'READY' AND NOT EXISTS (SELECT 1 FROM worker w WHERE w.work_pool_id = t.id AND w.status = 'ONLINE')`,
        sql` RETURNING ${selectList(POOL, "work_pool")}`,
      );
      return rows.map(decodePool);
    },
  };
  return repository;
}
