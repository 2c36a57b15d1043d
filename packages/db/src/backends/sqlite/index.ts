/** SQLite: one better-sqlite3 connection per process, exclusive IMMEDIATE write transactions. */
import type { DatabaseConfig } from "../../config.js";
import { sqliteMigrations } from "../../generated/migrations.js";
import type { Backend } from "../backend.js";
import { sqliteClaims } from "./claims.js";
import { sqliteDialect } from "./dialect.js";
import { sqliteEventLog } from "./event-log.js";
import { SqliteDriver } from "./driver.js";
import { translateSqliteError } from "./errors.js";
import { sqliteMigrationHooks } from "./migrations.js";
import { sqliteWrites } from "./writes.js";

export const sqliteBackend: Backend = {
  name: "sqlite",
  dialect: sqliteDialect,
  async connect(config: DatabaseConfig) {
    if (config.backend !== "sqlite") throw new Error(`a ${config.backend} configuration cannot open a SQLite database`);
    return new SqliteDriver(config);
  },
  writes: sqliteWrites,
  claims: sqliteClaims,
  eventLog: sqliteEventLog,
  migrations: sqliteMigrations,
  migrationHooks: sqliteMigrationHooks,
  translateError: translateSqliteError,
};
