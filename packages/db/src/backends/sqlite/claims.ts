/**
 * Claims of scheduled runs on SQLite. A claim is a handful of synchronous statements inside the
 * caller's IMMEDIATE transaction: find the limits in reach, select the eligible runs, then write each
 * its new state and move its pointer. The write lock excludes every other writer (in this process and
 * in others) until the transaction ends, so two claims can neither take the same run nor share a free
 * slot.
 */
import { randomUUID } from "node:crypto";
import {
  type ClaimedRun,
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
import { type Sql, sql } from "../../sql.js";
import { bindValue, type TableSpec, tables } from "../../tables.js";
import { fromMicros, toMicros } from "../../timestamps.js";
import { sqliteDialect } from "./dialect.js";
import { syncConnection as connection } from "./driver.js";

const state: TableSpec = tables.flow_run_state;
const stateColumns = Object.keys(state.columns);

const insertState =
  `INSERT INTO flow_run_state (${stateColumns.map((c) => `"${c}"`).join(", ")}) VALUES (${stateColumns.map(() => "?").join(", ")}) ` +
  `ON CONFLICT ("flow_run_id", "timestamp") DO NOTHING RETURNING id`;
const movePointer = `UPDATE flow_run SET "state_id" = ?, "state_type" = ?, "state_name" = ?, "state_timestamp" = ?, "updated" = ? WHERE id = ?`;

/**
 * The limit rows the selection's runs may be under. The write lock holds them all: when there are
 * none, the runs need no slot counting (see `eligibleRunsSql`).
 */
const limitsSql = (s: RunSelection): Sql => limitsInReachSql(sqliteDialect, s, () => sql.empty);

/** The runs a claim takes, with their current state's time. */
const pickSql = (s: RunSelection, held: HeldLimits): Sql =>
  sql`${eligibleRunsSql(sqliteDialect, s, held)}SELECT e.id, e.work_pool_id, fr.state_timestamp FROM eligible e JOIN flow_run fr ON fr.id = e.id ORDER BY ${claimOrder("e")}${limitSql(s.limit)}`;

/** The runs a lock holds. */
const lockSql = (s: RunSelection, held: HeldLimits): Sql =>
  sql`${eligibleRunsSql(sqliteDialect, s, held)}SELECT e.id, e.work_pool_id FROM eligible e ORDER BY ${claimOrder("e")}${limitSql(s.limit)}`;

interface Picked {
  id: string;
  work_pool_id: string;
  state_timestamp: string | null;
}

export const sqliteClaims: RunClaims = {
  claim(tx, selection, target, now) {
    const { driver, atomic } = connection(tx);
    const limits = sqliteDialect.render(limitsSql(selection));
    const encode = (column: string, value: unknown) => sqliteDialect.encode(bindValue(state.columns[column]!, value));
    return atomic(() => {
      const held = heldLimits(driver.runQuery<LimitRow>(limits.text, limits.params));
      const pick = sqliteDialect.render(pickSql(selection, held));
      const claimed: ClaimedRun[] = [];
      for (const p of driver.runQuery<Picked>(pick.text, pick.params)) {
        // After the run's current state, so that its history stays in time order.
        const after = p.state_timestamp ? toMicros(p.state_timestamp) + 1 : 0;
        const timestamp = fromMicros(Math.max(toMicros(now), after));
        const row: Record<string, unknown> = {
          id: randomUUID(),
          created: now,
          updated: now,
          flow_run_id: p.id,
          type: target.type,
          timestamp,
          name: target.name,
          message: target.message,
          state_details: target.state_details,
          data: target.data,
          result_artifact_id: null,
        };
        if (driver.runQuery(insertState, stateColumns.map((c) => encode(c, row[c]))).length === 0) continue;
        driver.runExecute(movePointer, [row.id, target.type, target.name, timestamp, now, p.id]);
        claimed.push({ id: p.id, work_pool_id: p.work_pool_id });
      }
      return claimed;
    });
  },

  async lock(tx, selection) {
    // The IMMEDIATE transaction holds SQLite's write lock: no other writer, in this process or in
    // another, runs until it ends, so the runs selected here stay the caller's to move.
    if (!tx.inTransaction) throw new Error("runs are locked inside a transaction: the lock lasts until it ends");
    const held = heldLimits(await tx.query<LimitRow>(limitsSql(selection)));
    return tx.query<ClaimedRun>(lockSql(selection, held));
  },

  // The write lock stands for the limit rows' locks: every limit in reach is held.
  statements: {
    claim: (selection, held) => [limitsSql(selection), pickSql(selection, held), sql.raw(insertState), sql.raw(movePointer)],
    lock: (selection, held) => [limitsSql(selection), lockSql(selection, held)],
  },
};
