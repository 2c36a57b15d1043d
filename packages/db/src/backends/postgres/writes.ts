/**
 * Run writes on PostgreSQL: one statement with data-modifying CTEs per write, atomic by itself and
 * one round trip.
 */
import type { Queryable } from "../../driver/types.js";
import { AlreadyExistsError, StateTimestampTakenError } from "../../errors.js";
import { bindValue, type ColumnKind, checkIndexedText, type TableSpec } from "../../tables.js";
import { quote, type RunTables, type RunWrites, type StateWriteResult, TextCache } from "../../writes.js";
import { postgresDialect } from "./dialect.js";

const texts = new TextCache();

/** Explicit types for parameters in a SELECT list, where PostgreSQL cannot infer them. */
const CASTS: Record<ColumnKind, string> = {
  uuid: "uuid",
  text: "text",
  indexed_text: "text",
  int: "integer",
  float: "double precision",
  bool: "boolean",
  json: "jsonb",
  timestamp: "timestamptz",
  enum: "state_type",
};

function encodeRow(spec: TableSpec, columns: readonly string[], values: Record<string, unknown>): unknown[] {
  return columns.map((c) => {
    checkIndexedText(spec, c, values[c]);
    return postgresDialect.encode(bindValue(spec.columns[c]!, values[c]));
  });
}

/** A run, and with `withState` its first state too, in one statement (the foreign keys between them are checked at its end). */
function insertRunText(t: RunTables, withState: boolean): string {
  return texts.get(`insert:${t.run.name}:${withState ? "with-state" : "bare"}`, () => {
    const runColumns = Object.keys(t.run.columns);
    const stateColumns = Object.keys(t.state.columns);
    const runMarks = runColumns.map((_, i) => `$${i + 1}`).join(", ");
    const insertRun = `INSERT INTO ${quote(t.run.name)} (${runColumns.map(quote).join(", ")}) VALUES (${runMarks}) ON CONFLICT (${t.upsertKey
      .map(quote)
      .join(", ")}) DO NOTHING RETURNING id`;
    if (!withState) return `WITH r AS (${insertRun}) SELECT count(*) AS inserted FROM r`;
    const stateValues = stateColumns.map((c, i) => `$${runColumns.length + i + 1}::${CASTS[t.state.columns[c]!]}`).join(", ");
    const insertState = `INSERT INTO ${quote(t.state.name)} (${stateColumns.map(quote).join(", ")}) SELECT ${stateValues} FROM r`;
    return `WITH r AS (${insertRun}), s AS (${insertState} RETURNING id) SELECT count(*) AS inserted FROM r`;
  });
}

/** A state, and the `assigned` columns of its run, in one statement; nothing when the state's timestamp is taken. */
function writeStateText(t: RunTables, assigned: readonly string[], final = false): string {
  return texts.get(`state:${t.run.name}:${assigned.join(",")}:${final}`, () => {
    const stateColumns = Object.keys(t.state.columns);
    const marks = stateColumns.map((_, i) => `$${i + 1}`).join(", ");
    const sets = assigned.map((c, i) => `${quote(c)} = $${stateColumns.length + i + 1}`).join(", ");
    const runParam = `$${stateColumns.length + assigned.length + 1}`;
    return (
      `WITH s AS (INSERT INTO ${quote(t.state.name)} (${stateColumns.map(quote).join(", ")}) VALUES (${marks}) ` +
      // Committed with the write (`final`), a taken timestamp must fail the transaction, not pass.
      `${final ? "" : `ON CONFLICT (${quote(t.parentColumn)}, "timestamp") DO NOTHING `}RETURNING id) ` +
      `UPDATE ${quote(t.run.name)} AS run SET ${sets} FROM s WHERE run.id = ${runParam} RETURNING run.id`
    );
  });
}

export const postgresWrites: RunWrites = {
  async insertRun(q: Queryable, t: RunTables, run, state, final = false) {
    const params = [...encodeRow(t.run, Object.keys(t.run.columns), run), ...(state ? encodeRow(t.state, Object.keys(t.state.columns), state) : [])];
    const text = insertRunText(t, state !== null);
    const rows = await (final ? q.queryFinal<{ inserted: number }>(text, params) : q.queryText<{ inserted: number }>(text, params));
    return Number(rows[0]?.inserted ?? 0) > 0;
  },

  async writeState(q, t, runId, state, assignments, final = false): Promise<StateWriteResult> {
    const assigned = Object.keys(assignments);
    const params = [...encodeRow(t.state, Object.keys(t.state.columns), state), ...encodeRow(t.run, assigned, assignments), runId];
    if (!final) {
      const rows = await q.queryText(writeStateText(t, assigned), params);
      return rows.length > 0 ? "written" : "taken";
    }
    let rows: unknown[];
    try {
      rows = await q.queryThenCommit(writeStateText(t, assigned, true), params);
    } catch (error) {
      if (error instanceof AlreadyExistsError && error.constraint === `uq_${t.state.name}__${t.parentColumn}_timestamp_desc`) {
        throw new StateTimestampTakenError(`The run already has a state at ${String(state.timestamp)}.`, error.constraint, { cause: error });
      }
      throw error;
    }
    // The state is inserted or the statement fails (its run missing fails its foreign key).
    if (rows.length === 0) throw new Error(`The state of run ${runId} was not written.`);
    return "written";
  },

  statements: {
    insertRun: (t, withState) => [insertRunText(t, withState)],
    writeState: (t, assigned) => [writeStateText(t, assigned)],
  },
};
