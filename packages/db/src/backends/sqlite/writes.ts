/**
 * Run writes on SQLite: a few synchronous statements in one IMMEDIATE transaction (or savepoint),
 * without yielding to the event loop in between.
 */
import { bindValue } from "../../tables.js";
import { quote, type RunTables, type RunWrites, type StateWriteResult, TextCache } from "../../writes.js";
import { sqliteDialect } from "./dialect.js";
import { syncConnection as connection } from "./driver.js";

const texts = new TextCache();

function encodeRow(spec: RunTables["run"], columns: readonly string[], values: Record<string, unknown>): unknown[] {
  return columns.map((c) => sqliteDialect.encode(bindValue(spec.columns[c]!, values[c])));
}

function insertText(spec: RunTables["run"], columns: readonly string[], conflict: string): string {
  return texts.get(`insert:${spec.name}:${columns.join(",")}:${conflict}`, () => {
    const marks = columns.map(() => "?").join(", ");
    return `INSERT INTO ${quote(spec.name)} (${columns.map(quote).join(", ")}) VALUES (${marks}) ${conflict} RETURNING id`;
  });
}

export const sqliteWrites: RunWrites = {
  insertRun(q, t, run, state) {
    const { driver, atomic } = connection(q);
    const runColumns = Object.keys(t.run.columns);
    const runText = insertText(t.run, runColumns, `ON CONFLICT (${t.upsertKey.map(quote).join(", ")}) DO NOTHING`);
    // The run points at its first state and the state at its run: insert the run without its pointer,
    // then the state, then set the pointer, so that every reference is checked at once. (Deferring the
    // checks would outlive this call inside a transaction, and turning the deferral off again would
    // discard violations already counted.)
    const runParams = encodeRow(t.run, runColumns, state ? { ...run, state_id: null } : run);
    const stateColumns = Object.keys(t.state.columns);
    const stateText = insertText(t.state, stateColumns, "");
    const stateParams = state ? encodeRow(t.state, stateColumns, state) : null;
    const pointerText = `UPDATE ${quote(t.run.name)} SET "state_id" = ? WHERE id = ?`;
    return atomic(() => {
      if (driver.runQuery(runText, runParams).length === 0) return false;
      if (stateParams) {
        driver.runQuery(stateText, stateParams);
        driver.runExecute(pointerText, [run.state_id, run.id]);
      }
      return true;
    });
  },

  writeState(q, t, runId, state, assignments): Promise<StateWriteResult> {
    const { driver, atomic } = connection(q);
    const stateColumns = Object.keys(t.state.columns);
    const stateText = insertText(t.state, stateColumns, `ON CONFLICT (${quote(t.parentColumn)}, "timestamp") DO NOTHING`);
    const stateParams = encodeRow(t.state, stateColumns, state);
    const assigned = Object.keys(assignments);
    const updateText = texts.get(`update:${t.run.name}:${assigned.join(",")}`, () => {
      const sets = assigned.map((c) => `${quote(c)} = ?`).join(", ");
      return `UPDATE ${quote(t.run.name)} SET ${sets} WHERE id = ?`;
    });
    const updateParams = [...encodeRow(t.run, assigned, assignments), runId];
    return atomic(() => {
      if (driver.runQuery(stateText, stateParams).length === 0) return "taken";
      driver.runExecute(updateText, updateParams);
      return "written";
    });
  },
};
