/** SQLite: write transactions are IMMEDIATE, one at a time, so appends are ordered already; readers poll. */
import { appendStatements, checkAppend, type EventLog } from "../../event-log.js";

export const sqliteEventLog: EventLog = {
  async append(tx, batch) {
    checkAppend(batch);
    return appendStatements(tx, batch);
  },
};
