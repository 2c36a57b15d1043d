/**
 * Claims of scheduled runs on PostgreSQL. A claim is two statements in the caller's transaction:
 *
 * 1. Lock the rows of the pools, queues and deployments in reach that have a concurrency limit
 *    (`FOR NO KEY UPDATE`, in id order, so claimers queue up instead of deadlocking; flow runs can
 *    still be inserted meanwhile, their foreign-key checks only share the lock). Claimers that
 *    compete for a limit thus take turns, and each one's second statement counts the slots in use
 *    with a snapshot that already includes the claims committed before it.
 * 2. One statement that selects the eligible runs, locks them with `FOR UPDATE SKIP LOCKED` (runs
 *    another claimer is taking are passed over, and the LIMIT fills up with the next ones), inserts
 *    their new states and moves their pointers, returning the claimed runs' ids.
 *
 * Claims that touch no limit take no row locks but the runs', and run side by side.
 */
import {
  type ClaimedRun,
  type ClaimStateRow,
  claimOrder,
  eligibleRunsSql,
  type HeldLimits,
  heldLimits,
  type LimitRow,
  limitSql,
  limitsInReachSql,
  type RunClaims,
  type RunSelection,
} from "../../claims.js";
import type { Queryable } from "../../driver/types.js";
import { JsonValue, type Sql, sql } from "../../sql.js";
import type { Timestamp } from "../../timestamps.js";
import { postgresDialect as d } from "./dialect.js";

/** The limit rows in reach, locked (see the top of this file). */
const lockLimitsSql = (s: RunSelection): Sql => limitsInReachSql(d, s, (alias) => sql.raw(` FOR NO KEY UPDATE OF ${alias}`));

function claimSql(s: RunSelection, held: HeldLimits, target: ClaimStateRow, now: Timestamp): Sql {
  return sql`${eligibleRunsSql(d, s, held)},
picked AS (
  -- Runs in claim order, each locked as it comes (runs other claimers hold are skipped), until the
  -- LIMIT is met: only the runs taken are locked. The lateral lookup keeps the plan that way whatever
  -- the planner thinks of the CTEs' sizes.
  SELECT e.id, e.work_pool_id, e.priority, e.next_scheduled_start_time, l.state_timestamp
  FROM (SELECT * FROM eligible ORDER BY ${claimOrder()}) e
  CROSS JOIN LATERAL (
    SELECT fr.state_timestamp FROM flow_run fr WHERE fr.id = e.id AND fr.state_type = 'SCHEDULED' FOR UPDATE SKIP LOCKED
  ) l
  ORDER BY ${claimOrder("e")}${limitSql(s.limit)}
),
states AS (
  INSERT INTO flow_run_state ("id", "created", "updated", "flow_run_id", "type", "timestamp", "name", "message", "state_details", "data", "result_artifact_id")
  SELECT gen_random_uuid(), ${now}::timestamptz, ${now}::timestamptz, p.id, ${target.type}::state_type,
    GREATEST(${now}::timestamptz, p.state_timestamp + interval '1 microsecond'),
    ${target.name}::text, ${target.message}::text, ${new JsonValue(target.state_details)}::jsonb, ${target.data === null || target.data === undefined ? null : new JsonValue(target.data)}::jsonb, NULL
  FROM picked p
  ON CONFLICT ("flow_run_id", "timestamp") DO NOTHING
  RETURNING *
),
claimed AS (
  UPDATE flow_run run SET "state_id" = s.id, "state_type" = s.type, "state_name" = s.name, "state_timestamp" = s."timestamp", "updated" = ${now}::timestamptz
  FROM states s WHERE run.id = s.flow_run_id
  RETURNING run.id
)
SELECT p.id, p.work_pool_id FROM claimed c JOIN picked p ON p.id = c.id ORDER BY ${claimOrder("p")}`;
}

function lockSql(s: RunSelection, held: HeldLimits): Sql {
  return sql`${eligibleRunsSql(d, s, held)}
SELECT e.id, e.work_pool_id
FROM (SELECT * FROM eligible ORDER BY ${claimOrder()}) e
CROSS JOIN LATERAL (
  SELECT 1 AS taken FROM flow_run fr WHERE fr.id = e.id AND fr.state_type = 'SCHEDULED' FOR UPDATE SKIP LOCKED
) l
ORDER BY ${claimOrder("e")}${limitSql(s.limit)}`;
}

/** Locks the limit rows in reach (see the top of this file) and returns which ones are held. */
async function lockLimits(tx: Queryable, selection: RunSelection): Promise<HeldLimits> {
  return heldLimits(await tx.query<LimitRow>(lockLimitsSql(selection)));
}

export const postgresClaims: RunClaims = {
  async claim(tx, selection, target, now) {
    if (!tx.inTransaction) throw new Error("claims run inside a transaction: the limit locks last until it ends");
    return tx.query<ClaimedRun>(claimSql(selection, await lockLimits(tx, selection), target, now));
  },

  async lock(tx, selection) {
    // As a claim, without the writes: the limit rows stay locked until the caller's transaction
    // ends, so the next locker counts the slots with the runs this caller moved by then.
    if (!tx.inTransaction) throw new Error("runs are locked inside a transaction: the locks last until it ends");
    return tx.query<ClaimedRun>(lockSql(selection, await lockLimits(tx, selection)));
  },

  statements: {
    claim: (selection, held, target, now) => [lockLimitsSql(selection), claimSql(selection, held, target, now)],
    lock: (selection, held) => [lockLimitsSql(selection), lockSql(selection, held)],
  },
};
