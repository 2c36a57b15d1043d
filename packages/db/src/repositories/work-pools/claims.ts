/**
 * The scheduled runs workers take (Prefect's get-runs-from-worker-queues; the selection is in
 * src/claims.ts): reading them, claiming them in one atomic step, or locking them for the caller's
 * transaction. The backend does the claiming and locking.
 */
import { claimOrder, eligibleRunsSql, limitSql, type RunSelection } from "../../claims.js";
import { InvalidError } from "../../errors.js";
import { defaultStateName, type FlowRun } from "../../schemas/runs.js";
import { ClaimScheduledFlowRuns, ScheduledFlowRunQuery, type WorkerFlowRun } from "../../schemas/work-pools.js";
import { sql } from "../../sql.js";
import { now } from "../../timestamps.js";
import { parseInput, type RepositoryContext } from "../context.js";
import { flowRunReader } from "../flow-runs.js";

export interface WorkerRunRepository {
  /**
   * The runs workers may start now, as Prefect's worker query picks them (see src/claims.ts), in
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
}

const selection = (query: ReturnType<typeof ScheduledFlowRunQuery.parse>): RunSelection => ({
  workPoolNames: query.workPoolNames ?? null,
  workQueueNames: query.workQueueNames ?? null,
  scheduledBefore: query.scheduledBefore ?? null,
  scheduledAfter: query.scheduledAfter ?? null,
  limit: query.limit ?? null,
});

export function workerRunRepository({ q, backend }: RepositoryContext): WorkerRunRepository {
  const d = q.dialect;
  const { claims } = backend;
  const reader = flowRunReader(d);
  const workerFlowRun = (flowRun: FlowRun, workPoolId: string): WorkerFlowRun => ({
    work_pool_id: workPoolId,
    work_queue_id: flowRun.work_queue_id!,
    flow_run: flowRun,
  });

  return {
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
  };
}
