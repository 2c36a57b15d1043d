/** SQLite: write transactions are IMMEDIATE, one at a time, so appends are ordered already; readers poll. */
import type { EventLog } from "../../event-log.js";

export const sqliteEventLog: EventLog = {
  async lockAppends() {},
  async announceAppends() {},
};
