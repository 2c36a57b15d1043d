/**
 * The cancellation cleanup's reads (Prefect's services/cancellation_cleanup.py): runs left unfinished
 * under a cancelled flow run, and flow runs stuck in CANCELLING. Only reads: the service moves each
 * run through orchestration, which locks it and checks it again.
 */
import type { StateType } from "../schemas/common.js";
import { sql } from "../sql.js";
import { type Timestamp, toTimestamp } from "../timestamps.js";
import type { RepositoryContext } from "./context.js";

/** The states Prefect's cleanup looks for subflow runs in (every state but the terminal ones). */
export const CANCELLABLE_STATE_TYPES: readonly StateType[] = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"];

export interface SubflowRunToCancel {
  readonly id: string;
  readonly deployment_id: string | null;
  readonly state_type: StateType;
}

export interface CancellingFlowRun {
  readonly id: string;
  readonly state_id: string;
  readonly state_timestamp: Timestamp;
}

export interface CancellationRepository {
  /**
   * Subflow runs not in a terminal state whose parent task run belongs to a flow run that is
   * CANCELLED, has no state, or no longer exists (Prefect's `cancel_subflow_run` conditions), except
   * deployment runs already CANCELLING (their worker finishes them). Ordered by id.
   */
  subflowRunsToCancel(options: { readonly limit: number }): Promise<SubflowRunToCancel[]>;
  /**
   * Task runs not in a terminal state whose flow run is CANCELLED and ended at or after `endedSince`
   * (Prefect looks at runs cancelled in the last day). Ordered by id.
   */
  taskRunsToCancel(options: { readonly endedSince: Timestamp | string; readonly limit: number }): Promise<string[]>;
  /** Flow runs in CANCELLING since `before` or earlier, oldest first. */
  cancellingSince(options: { readonly before: Timestamp | string; readonly limit: number }): Promise<CancellingFlowRun[]>;
}

export function cancellationRepository(context: RepositoryContext): CancellationRepository {
  const { q } = context;
  const d = q.dialect;
  const limitOf = (limit: number) => Math.max(0, Math.floor(limit));

  return {
    async subflowRunsToCancel(options) {
      const rows = await q.query<{ id: string; deployment_id: string | null; state_type: StateType }>(sql`
        SELECT f.id, f.deployment_id, f.state_type FROM flow_run f
        JOIN task_run t ON t.id = f.parent_task_run_id
        LEFT JOIN flow_run p ON p.id = t.flow_run_id
        WHERE ${d.inList(sql.raw("f.state_type"), CANCELLABLE_STATE_TYPES)}
          AND t.flow_run_id IS NOT NULL
          AND (p.id IS NULL OR p.state_type IS NULL OR p.state_type = 'CANCELLED')
          AND NOT (f.deployment_id IS NOT NULL AND f.state_type = 'CANCELLING')
        ORDER BY f.id LIMIT ${limitOf(options.limit)}`);
      return rows.map((row) => ({ id: String(row.id), deployment_id: row.deployment_id === null ? null : String(row.deployment_id), state_type: row.state_type }));
    },

    async taskRunsToCancel(options) {
      const rows = await q.query<{ id: string }>(sql`
        SELECT t.id FROM task_run t
        JOIN flow_run f ON f.id = t.flow_run_id
        WHERE f.state_type = 'CANCELLED' AND f.end_time IS NOT NULL AND f.end_time >= ${toTimestamp(options.endedSince)}
          AND ${d.inList(sql.raw("t.state_type"), CANCELLABLE_STATE_TYPES)}
        ORDER BY t.id LIMIT ${limitOf(options.limit)}`);
      return rows.map((row) => String(row.id));
    },

    async cancellingSince(options) {
      const rows = await q.query<{ id: string; state_id: string; state_timestamp: unknown }>(sql`
        SELECT r.id, r.state_id, r.state_timestamp FROM flow_run r
        WHERE r.state_type = 'CANCELLING' AND r.state_id IS NOT NULL AND r.state_timestamp IS NOT NULL AND r.state_timestamp <= ${toTimestamp(options.before)}
        ORDER BY r.state_timestamp, r.id LIMIT ${limitOf(options.limit)}`);
      return rows.map((row) => ({ id: String(row.id), state_id: String(row.state_id), state_timestamp: d.decodeTimestamp(row.state_timestamp) }));
    },
  };
}
