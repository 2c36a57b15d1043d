import type { Queryable } from "../driver/types.js";
import { bindValue } from "../tables.js";
import { quote, type RunTables, type RunWrites, type StateWriteResult, TextCache } from "../writes.js";
import { sqliteDialect } from "./dialect.js";
import { SqliteDriver, SqliteTransaction } from "./driver.js";

const texts = new TextCache();

function encodeRow(spec: RunTables["run"], columns: readonly string[], values: Record<string, unknown>): unknown[] {
  return columns.map((c) => sqliteDialect.encode(bindValue(spec.columns[c]!, values[c])));
}

function connection(q: Queryable): { driver: SqliteDriver; atomic: <T>(work: () => T) => Promise<T> } {
  if (q instanceof SqliteDriver) return { driver: q, atomic: (work) => q.atomic(work) };
  if (q instanceof SqliteTransaction) return { driver: q.driver, atomic: (work) => q.atomic(work) };
  throw new Error("not a SQLite connection");
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
    const runParams = encodeRow(t.run, runColumns, run);
    const stateColumns = Object.keys(t.state.columns);
    const stateText = insertText(t.state, stateColumns, "");
    const stateParams = state ? encodeRow(t.state, stateColumns, state) : null;
    return atomic(() => {
      // The run points at its first state and the state at its run: check both at COMMIT.
      if (stateParams) driver.statement("PRAGMA defer_foreign_keys = ON").run();
      if (driver.runQuery(runText, runParams).length === 0) return false;
      if (stateParams) driver.runQuery(stateText, stateParams);
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
