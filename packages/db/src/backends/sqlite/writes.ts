/**
 * Run writes on SQLite: a few synchronous statements in one IMMEDIATE transaction (or savepoint),
 * without yielding to the event loop in between.
 */
import { bindValue, checkIndexedText } from "../../tables.js";
import { quote, type RunTables, type RunWrites, type StateWriteResult, TextCache } from "../../writes.js";
import { sqliteDialect } from "./dialect.js";
import { syncConnection as connection } from "./driver.js";

const texts = new TextCache();

function encodeRow(spec: RunTables["run"], columns: readonly string[], values: Record<string, unknown>): unknown[] {
  return columns.map((c) => {
    checkIndexedText(spec, c, values[c]);
    return sqliteDialect.encode(bindValue(spec.columns[c]!, values[c]));
  });
}

function insertText(spec: RunTables["run"], columns: readonly string[], conflict: string): string {
  return texts.get(`insert:${spec.name}:${columns.join(",")}:${conflict}`, () => {
    const marks = columns.map(() => "?").join(", ");
    return `INSERT INTO ${quote(spec.name)} (${columns.map(quote).join(", ")}) VALUES (${marks}) ${conflict} RETURNING id`;
  });
}

/**
 * The run points at its first state and the state at its run: the run goes in without its pointer,
 * then the state, then the pointer is set, so that every reference is checked at once. (Deferring the
 * checks would outlive the write inside a transaction, and turning the deferral off again would
 * discard violations already counted.)
 */
function insertRunTexts(t: RunTables): { run: string; state: string; pointer: string } {
  return {
    run: insertText(t.run, Object.keys(t.run.columns), `ON CONFLICT (${t.upsertKey.map(quote).join(", ")}) DO NOTHING`),
    state: insertText(t.state, Object.keys(t.state.columns), ""),
    pointer: texts.get(`pointer:${t.run.name}`, () => `UPDATE ${quote(t.run.name)} SET "state_id" = ? WHERE id = ?`),
  };
}

function writeStateTexts(t: RunTables, assigned: readonly string[]): { state: string; run: string } {
  return {
    state: insertText(t.state, Object.keys(t.state.columns), `ON CONFLICT (${quote(t.parentColumn)}, "timestamp") DO NOTHING`),
    run: texts.get(`update:${t.run.name}:${assigned.join(",")}`, () => {
      const sets = assigned.map((c) => `${quote(c)} = ?`).join(", ");
      return `UPDATE ${quote(t.run.name)} SET ${sets} WHERE id = ?`;
    }),
  };
}

export const sqliteWrites: RunWrites = {
  insertRun(q, t, run, state) {
    const { driver, atomic } = connection(q);
    const { run: runText, state: stateText, pointer: pointerText } = insertRunTexts(t);
    const runParams = encodeRow(t.run, Object.keys(t.run.columns), state ? { ...run, state_id: null } : run);
    const stateParams = state ? encodeRow(t.state, Object.keys(t.state.columns), state) : null;
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
    const assigned = Object.keys(assignments);
    const { state: stateText, run: updateText } = writeStateTexts(t, assigned);
    const stateParams = encodeRow(t.state, Object.keys(t.state.columns), state);
    const updateParams = [...encodeRow(t.run, assigned, assignments), runId];
    return atomic(() => {
      if (driver.runQuery(stateText, stateParams).length === 0) return "taken";
      driver.runExecute(updateText, updateParams);
      return "written";
    });
  },

  statements: {
    insertRun(t, withState) {
      const texts = insertRunTexts(t);
      return withState ? [texts.run, texts.state, texts.pointer] : [texts.run];
    },
    writeState(t, assigned) {
      const texts = writeStateTexts(t, assigned);
      return [texts.state, texts.run];
    },
  },
};
