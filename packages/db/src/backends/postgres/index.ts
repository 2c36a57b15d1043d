/** PostgreSQL: a node-postgres pool, READ COMMITTED transactions, row locks for claims. */
import type { DatabaseConfig } from "../../config.js";
import { postgresMigrations } from "../../generated/migrations.js";
import type { Backend } from "../backend.js";
import { postgresClaims } from "./claims.js";
import { postgresDialect } from "./dialect.js";
import { postgresEventLog } from "./event-log.js";
import { PostgresDriver } from "./driver.js";
import { translatePostgresError } from "./errors.js";
import { postgresMigrationHooks } from "./migrations.js";
import { postgresWrites } from "./writes.js";

export const postgresBackend: Backend = {
  name: "postgres",
  dialect: postgresDialect,
  connect(config: DatabaseConfig) {
    if (config.backend !== "postgres") throw new Error(`a ${config.backend} configuration cannot open a PostgreSQL database`);
    return PostgresDriver.open(config);
  },
  writes: postgresWrites,
  claims: postgresClaims,
  eventLog: postgresEventLog,
  migrations: postgresMigrations,
  migrationHooks: postgresMigrationHooks,
  translateError: translatePostgresError,
};
