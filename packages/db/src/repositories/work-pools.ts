/**
 * Work pools, their queues and workers, and the scheduled runs workers take from them (Prefect's
 * models/workers.py, models/work_queues.py and the foreman's bookkeeping).
 */
import { randomUUID } from "node:crypto";
import { type Dialect, secondsBetween as sqlSecondsBetween } from "../dialect.js";
import type { Queryable, Row } from "../driver/types.js";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../errors.js";
import { page, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { Page } from "../schemas/common.js";
import { defaultStateName, type FlowRun } from "../schemas/runs.js";
import {
  AGENT_POOL_TYPE,
  ClaimScheduledFlowRuns,
  DEFAULT_QUEUE_NAME,
  type DeletedWorkPool,
  QueueRunsQuery,
  ScheduledFlowRunQuery,
  type SlotHolder,
  type Worker,
  WorkerFilter,
  type WorkerFlowRun,
  WorkerHeartbeat,
  type WorkerHeartbeatResult,
  type WorkPool,
  type WorkPoolChange,
  WorkPoolCreate,
  WorkPoolFilter,
  type WorkPoolStatus,
  WorkPoolUpdate,
  type WorkQueue,
  type WorkQueueChange,
  WorkQueueCreate,
  WorkQueueFilter,
  type WorkQueueStatus,
  WorkQueueUpdate,
} from "../schemas/work-pools.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { addSeconds, now, secondsBetween, toTimestamp } from "../timestamps.js";
import { claimOrder, eligibleRunsSql, limitSql, type RunSelection } from "../claims.js";
import { flowRunTables } from "./flow-runs.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { runReader } from "./run-states.js";

export interface WorkPoolReadOptions extends Page {
  readonly work_pools?: WorkPoolFilter | null | undefined;
}

export interface WorkQueueReadOptions extends Page {
  readonly work_queues?: WorkQueueFilter | null | undefined;
}

/** Which slot holders of a pool to list. */
export interface PoolSlotHolderOptions {
  /** Only runs in these queues. */
  readonly workQueueIds?: readonly string[] | undefined;
  /** At most this many runs per queue (by id). */
  readonly perQueueLimit?: number | undefined;
}

export interface WorkerReadOptions extends Page {
  readonly workers?: WorkerFilter | null | undefined;
}

/** When the foreman's bookkeeping runs, for tests and for services that pass their own clock. */
interface AsOf {
  readonly now?: string | undefined;
}

export interface WorkerHealthOptions extends AsOf {
  /** A worker is offline after this many heartbeat intervals without one (Prefect: 3). */
  readonly inactivityHeartbeatMultiple?: number | undefined;
  /** The interval of workers that never said theirs (Prefect: 30 s). */
  readonly fallbackHeartbeatIntervalSeconds?: number | undefined;
}

export interface PollTimeoutOptions extends AsOf {
  /** Not polled for longer than this means NOT_READY (Prefect: 60 s). */
  readonly lastPolledTimeoutSeconds?: number | undefined;
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

  /**
   * Creates a queue in the pool. Without a priority it takes the first free one counting from 1; a
   * priority another queue holds moves that queue (and the ones after it) down. Throws NotFoundError
   * for an unknown pool and AlreadyExistsError for a name the pool already has.
   */
  createQueue(workPoolId: string, input: WorkQueueCreate): Promise<WorkQueue>;
  getQueue(id: string): Promise<WorkQueue | null>;
  getQueueByName(workPoolName: string, queueName: string): Promise<WorkQueue | null>;
  /** The pool's queues by priority. */
  readQueues(workPoolId: string, options?: WorkQueueReadOptions): Promise<WorkQueue[]>;
  /** The queues of every pool, by name (Prefect's legacy `/work_queues/filter`). */
  readAllQueues(options?: WorkQueueReadOptions): Promise<WorkQueue[]>;
  /** How many queues the pool has. */
  countQueues(workPoolId: string): Promise<number>;
  /**
   * Changes the fields given. Pausing makes the queue PAUSED; unpausing a paused queue makes it
   * READY when it was polled in the last minute, else NOT_READY. A new priority reorders the pool's
   * queues as `createQueue` does. Throws NotFoundError.
   */
  updateQueue(id: string, patch: WorkQueueUpdate): Promise<WorkQueue>;
  /** As `updateQueue`, returning the queue as it was before the change too. */
  changeQueue(id: string, patch: WorkQueueUpdate): Promise<WorkQueueChange>;
  /** Returns the deleted queue. Throws NotFoundError, and InvalidError for a pool's default queue. */
  deleteQueue(id: string): Promise<WorkQueue>;
  /**
   * PENDING and RUNNING runs per queue id (CANCELLING ones too with `includeCancelling`, as Prefect's
   * legacy work queue routes count them).
   */
  countQueueActiveSlots(workQueueIds: readonly string[], options?: { readonly includeCancelling?: boolean }): Promise<Map<string, number>>;

  /**
   * Records a worker's heartbeat (inserting the worker on its first): ONLINE, heard from now, with
   * its interval when given. A NOT_READY pool becomes READY. Throws NotFoundError for an unknown pool.
   */
  heartbeat(workPoolId: string, input: WorkerHeartbeat): Promise<Worker>;
  /** As `heartbeat`, also telling whether (and how) the pool became READY. */
  recordHeartbeat(workPoolId: string, input: WorkerHeartbeat): Promise<WorkerHeartbeatResult>;
  /** The pool's workers, most recently heard from first. */
  readWorkers(workPoolId: string, options?: WorkerReadOptions): Promise<Worker[]>;
  /** Throws NotFoundError. */
  deleteWorker(workPoolId: string, name: string): Promise<void>;

  /**
   * The runs workers may start now, as Prefect's worker query picks them (see work-pools.ts), in
   * claim order. Changes nothing.
   */
  getScheduledFlowRuns(query?: ScheduledFlowRunQuery): Promise<WorkerFlowRun[]>;
  /**
   * Picks runs as `getScheduledFlowRuns` does and moves each to `state` (a state row and the run's
   * pointer) in one atomic step. Concurrent claims, from any number of connections or processes,
   * never take the same run and never exceed a pool's, queue's or deployment's limit together.
   * Returns the claimed runs in claim order.
   */
  claimScheduledFlowRuns(options: ClaimScheduledFlowRuns): Promise<WorkerFlowRun[]>;
  /**
   * The runs a legacy poll of one queue gets (Prefect's `get_runs_in_work_queue` for queues without a
   * filter): SCHEDULED runs whose `work_queue_name` is the queue's name, by due time, at most as many
   * as the queue's limit leaves free (PENDING, RUNNING and CANCELLING runs of that name hold slots);
   * none for a paused queue. Changes nothing. Throws NotFoundError for an unknown queue.
   */
  getQueueRuns(workQueueId: string, query?: QueueRunsQuery): Promise<FlowRun[]>;

  /** The pool's PENDING and RUNNING runs (paused queues included), by id. */
  readPoolSlotHolders(workPoolId: string, options?: PoolSlotHolderOptions): Promise<SlotHolder[]>;
  /** How many of the pool's runs are PENDING or RUNNING, per queue id. */
  countPoolSlotHoldersByQueue(workPoolId: string): Promise<Map<string, number>>;
  /**
   * The queue's PENDING, RUNNING and CANCELLING runs, by id: those in the queue, and those without a
   * queue that carry its name.
   */
  readQueueSlotHolders(workQueueId: string, page?: Page): Promise<SlotHolder[]>;
  countQueueSlotHolders(workQueueId: string): Promise<number>;
  /**
   * Picks runs as `getScheduledFlowRuns` does and holds them for the caller's transaction, writing
   * nothing: call it inside `db.transaction` and move each run out of SCHEDULED in that same
   * transaction (e.g. to PENDING through orchestration, which takes deployment concurrency slots).
   * Concurrent callers, from any number of connections or processes, never get the same run, and
   * never more runs under a pool's, queue's or deployment's limit than it has free slots
   * (PostgreSQL: the limits' rows are locked and the runs taken `FOR UPDATE SKIP LOCKED`; SQLite:
   * the transaction holds the write lock). A run the caller leaves SCHEDULED is free again when the
   * transaction ends. Call it on the transaction's repositories (`tx.workPools`); throws
   * InvalidError elsewhere. Returns the runs in claim order.
   */
  lockScheduledFlowRuns(query?: ScheduledFlowRunQuery): Promise<WorkerFlowRun[]>;

  /** Marks ONLINE workers OFFLINE whose last heartbeat is too old; returns their ids. */
  markWorkersOffline(options?: WorkerHealthOptions): Promise<string[]>;
  /** Marks READY pools without an ONLINE worker NOT_READY (paused pools stay PAUSED); returns them. */
  markPoolsNotReady(options?: AsOf): Promise<WorkPool[]>;
  /** Marks READY queues NOT_READY that were not polled for too long; returns their ids. */
  markQueuesNotReady(options?: PollTimeoutOptions): Promise<string[]>;
  /**
   * Marks READY deployments NOT_READY that were not polled for too long, nor was their queue;
   * returns their ids.
   */
  markDeploymentsNotReady(options?: PollTimeoutOptions): Promise<string[]>;
  /**
   * Records that workers polled these queues: `last_polled` now, and NOT_READY ones become READY.
   * Returns the queues that became READY.
   */
  markQueuesPolled(workQueueIds: readonly string[], options?: AsOf): Promise<WorkQueue[]>;
  /**
   * Records that the deployments of these queues were polled: READY, `last_polled` now. Returns the
   * ids of those that were NOT_READY.
   */
  markDeploymentsPolled(workQueueIds: readonly string[], options?: AsOf): Promise<string[]>;
}

const POOL = tables.work_pool;
const QUEUE = tables.work_queue;
const WORKER = tables.worker;
/** Prefect's WORK_QUEUE_LAST_POLLED_TIMEOUT: a queue polled this recently is READY when unpaused. */
const QUEUE_LAST_POLLED_TIMEOUT_SECONDS = 60;

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);
const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

function combine(operator: "and_" | "or_", parts: Sql[]): Sql {
  const present = parts.filter((p) => !p.isEmpty);
  if (present.length === 0) return sql.empty;
  return operator === "or_" ? sql.or(present) : sql.and(present);
}

/** The SQL condition of a work pool filter on the `work_pool` row aliased `a`. */
export function workPoolFilterSql(d: Dialect, input: WorkPoolFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkPoolFilter, input, "work pool filter");
  return combine(f.operator, [
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.name && has(f.name.any_) ? d.inList(col(a, "name"), f.name.any_) : sql.empty,
    f.type && has(f.type.any_) ? d.inList(col(a, "type"), f.type.any_) : sql.empty,
  ]);
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The SQL condition of a work queue filter on the `work_queue` row aliased `a`. */
export function workQueueFilterSql(d: Dialect, input: WorkQueueFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkQueueFilter, input, "work queue filter");
  const prefixes = f.name?.startswith_;
  return combine(f.operator, [
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.name && has(f.name.any_) ? d.inList(col(a, "name"), f.name.any_) : sql.empty,
    has(prefixes)
      ? prefixes.length === 0
        ? sql.raw("1=0")
        : sql.or(prefixes.map((p) => sql`lower(${col(a, "name")}) LIKE lower(${`${escapeLike(p)}%`}) ESCAPE '\\'`))
      : sql.empty,
  ]);
}

function workerFilterSql(d: Dialect, input: WorkerFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkerFilter, input, "worker filter");
  const heartbeat = f.last_heartbeat_time;
  return combine(f.operator, [
    heartbeat && has(heartbeat.before_) ? sql`${col(a, "last_heartbeat_time")} <= ${heartbeat.before_}` : sql.empty,
    heartbeat && has(heartbeat.after_) ? sql`${col(a, "last_heartbeat_time")} >= ${heartbeat.after_}` : sql.empty,
    f.status && has(f.status.any_) ? d.inList(col(a, "status"), f.status.any_) : sql.empty,
    f.status && has(f.status.not_any_) && f.status.not_any_.length > 0 ? d.notInList(col(a, "status"), f.status.not_any_) : sql.empty,
  ]);
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

const SLOT_HOLDER_COLUMNS = sql.raw("fr.id, fr.name, fr.work_queue_id, fr.state_type, fr.state_name, fr.start_time, fr.state_timestamp");

/** A queue's slot holders as Prefect's legacy queue routes see them: by id, or by name for runs without a queue. */
function queueSlotHolders(workQueueId: string): Sql {
  return sql`(fr.work_queue_id = ${workQueueId} OR (fr.work_queue_id IS NULL AND fr.work_queue_name = (SELECT name FROM work_queue WHERE id = ${workQueueId})))
    AND fr.state_type IN ('PENDING', 'RUNNING', 'CANCELLING')`;
}

export function workPoolRepository({ q, backend }: RepositoryContext): WorkPoolRepository {
  const d = q.dialect;
  const { claims } = backend;
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
  const reader = runReader<FlowRun>(d, flowRunTables);
  const workerFlowRun = (flowRun: FlowRun, workPoolId: string): WorkerFlowRun => ({
    work_pool_id: workPoolId,
    work_queue_id: flowRun.work_queue_id!,
    flow_run: flowRun,
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

  const selection = (query: ReturnType<typeof ScheduledFlowRunQuery.parse>): RunSelection => ({
    workPoolNames: query.workPoolNames ?? null,
    workQueueNames: query.workQueueNames ?? null,
    scheduledBefore: query.scheduledBefore ?? null,
    scheduledAfter: query.scheduledAfter ?? null,
    limit: query.limit ?? null,
  });

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

    async createQueue(workPoolId, input) {
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

    getQueue: async (id) => queueWhere(q, sql`wq.id = ${checkId(id, "work queue id")}`),
    getQueueByName: async (workPoolName, queueName) => queueWhere(q, sql`wp.name = ${workPoolName} AND wq.name = ${queueName}`),

    async readQueues(workPoolId, options = {}) {
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

    async readAllQueues(options = {}) {
      const rows = await q.query(
        sql`${selectQueues}${where(workQueueFilterSql(d, options.work_queues, "wq"))} ORDER BY wq.name, wq.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeQueue);
    },

    async countQueues(workPoolId) {
      workPoolId = checkId(workPoolId, "work pool id");
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM work_queue WHERE work_pool_id = ${workPoolId}`);
      return Number(rows[0]?.n ?? 0);
    },

    async updateQueue(id, patch) {
      return (await repository.changeQueue(id, patch)).current;
    },

    async changeQueue(id, patch) {
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

    async deleteQueue(id) {
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

    async countQueueActiveSlots(workQueueIds, options = {}) {
      const ids = workQueueIds.map((id) => checkId(id, "work queue id"));
      if (ids.length === 0) return new Map();
      const states = sql.raw(options.includeCancelling ? "('PENDING', 'RUNNING', 'CANCELLING')" : "('PENDING', 'RUNNING')");
      return countBy(
        sql`SELECT fr.work_queue_id AS id, count(*) AS n FROM flow_run fr
            WHERE fr.state_type IN ${states} AND ${d.inList(sql.raw("fr.work_queue_id"), ids)} GROUP BY fr.work_queue_id`,
      );
    },

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

    async readWorkers(workPoolId, options = {}) {
      workPoolId = checkId(workPoolId, "work pool id");
      const rows = await q.query(
        sql`${selectWorkers} WHERE w.work_pool_id = ${workPoolId} AND ${sql.and([workerFilterSql(d, options.workers, "w")])}
            ORDER BY w.last_heartbeat_time DESC, w.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeWorker);
    },

    async deleteWorker(workPoolId, name) {
      workPoolId = checkId(workPoolId, "work pool id");
      const deleted = await q.execute(sql`DELETE FROM worker WHERE work_pool_id = ${workPoolId} AND name = ${name}`);
      if (deleted === 0) throw new NotFoundError(`Worker ${JSON.stringify(name)} not found in work pool ${workPoolId}.`);
    },

    async getScheduledFlowRuns(query = {}) {
      const s = selection(parseInput(ScheduledFlowRunQuery, query, "scheduled flow run query"));
      const rows = await q.query(
        sql`${eligibleRunsSql(d, s)}SELECT runs.*, e.work_pool_id AS eligible_work_pool_id
            FROM (SELECT * FROM eligible ORDER BY ${claimOrder()}${limitSql(s.limit)}) e JOIN (${reader.select}) runs ON runs.id = e.id
            ORDER BY ${claimOrder("e")}`,
      );
      return rows.map((row) => workerFlowRun(reader.decode(row), row.eligible_work_pool_id as string));
    },

    async claimScheduledFlowRuns(options) {
      const data = parseInput(ClaimScheduledFlowRuns, options, "claim");
      const state = {
        type: data.state.type,
        name: data.state.name ?? defaultStateName(data.state.type),
        message: data.state.message ?? null,
        state_details: data.state.state_details ?? {},
        data: data.state.data === undefined ? null : data.state.data,
      };
      return q.transaction(async (tx) => {
        const claimed = await claims.claim(tx, selection(data), state, now());
        if (claimed.length === 0) return [];
        const rows = await tx.query(sql`${reader.select} WHERE ${d.inList(sql.raw("r.id"), claimed.map((c) => c.id))}`);
        const runs = new Map(rows.map((row) => [row.id as string, reader.decode(row)]));
        return claimed.map((c) => workerFlowRun(runs.get(c.id)!, c.work_pool_id));
      });
    },

    async lockScheduledFlowRuns(query = {}) {
      const s = selection(parseInput(ScheduledFlowRunQuery, query, "scheduled flow run query"));
      if (!q.inTransaction) throw new InvalidError("lockScheduledFlowRuns needs a transaction: call it as db.transaction((tx) => tx.workPools.lockScheduledFlowRuns(...)).");
      const locked = await claims.lock(q, s);
      if (locked.length === 0) return [];
      const rows = await q.query(sql`${reader.select} WHERE ${d.inList(sql.raw("r.id"), locked.map((l) => l.id))}`);
      const runs = new Map(rows.map((row) => [row.id as string, reader.decode(row)]));
      return locked.map((l) => workerFlowRun(runs.get(l.id)!, l.work_pool_id));
    },

    async markWorkersOffline(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      // `* 1.0` keeps fractional settings fractional (PostgreSQL would type them after the integer column).
      const interval = sql`COALESCE(t.heartbeat_interval_seconds * 1.0, ${options.fallbackHeartbeatIntervalSeconds ?? 30}) * ${options.inactivityHeartbeatMultiple ?? 3}`;
      const rows = await updateInIdOrder(
        "worker",
        sql`status = 'OFFLINE', updated = ${ts}`,
        sql`t.status = 'ONLINE' AND ${sqlSecondsBetween(q.dialect, sql`${ts}`, sql.raw("t.last_heartbeat_time"))} > (${interval})`,
        sql` RETURNING id`,
      );
      return rows.map((row) => row.id as string);
    },

    async markPoolsNotReady(options = {}) {
      const ts = options.now ? toTimestamp(options.now) : now();
      const rows = await updateInIdOrder(
        "work_pool",
        sql`status = 'NOT_READY', last_status_event_id = ${d.randomUuid()}, last_transitioned_status_at = ${ts}, updated = ${ts}`,
        sql`t.status = 'READY' AND NOT EXISTS (SELECT 1 FROM worker w WHERE w.work_pool_id = t.id AND w.status = 'ONLINE')`,
        sql` RETURNING ${selectList(POOL, "work_pool")}`,
      );
      return rows.map(decodePool);
    },

    async markQueuesNotReady(options = {}) {
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

    async markQueuesPolled(workQueueIds, options = {}) {
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

    async getQueueRuns(workQueueId, query = {}) {
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

    async readPoolSlotHolders(workPoolId, options = {}) {
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

    async countPoolSlotHoldersByQueue(workPoolId) {
      workPoolId = checkId(workPoolId, "work pool id");
      return countBy(
        sql`SELECT fr.work_queue_id AS id, count(*) AS n FROM flow_run fr JOIN work_queue wq ON wq.id = fr.work_queue_id
            WHERE wq.work_pool_id = ${workPoolId} AND fr.state_type IN ('PENDING', 'RUNNING') GROUP BY fr.work_queue_id`,
      );
    },

    async readQueueSlotHolders(workQueueId, options = {}) {
      workQueueId = checkId(workQueueId, "work queue id");
      const rows = await q.query(
        sql`SELECT ${SLOT_HOLDER_COLUMNS} FROM flow_run fr WHERE ${queueSlotHolders(workQueueId)} ORDER BY fr.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeSlotHolder);
    },

    async countQueueSlotHolders(workQueueId) {
      workQueueId = checkId(workQueueId, "work queue id");
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM flow_run fr WHERE ${queueSlotHolders(workQueueId)}`);
      return Number(rows[0]?.n ?? 0);
    },
  };
  return repository;
}
