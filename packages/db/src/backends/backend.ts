/**
 * Everything that differs between SQLite and PostgreSQL, as one object per backend
 * (backends/sqlite, backends/postgres), chosen once when the database is opened. The rest of the
 * package is shared code that asks this object, never a backend's name.
 */
import type { RunClaims } from "../claims.js";
import type { BackendName, DatabaseConfig } from "../config.js";
import type { Dialect } from "../dialect.js";
import type { Driver } from "../driver/types.js";
import type { EventLog } from "../event-log.js";
import type { EmbeddedMigration, MigrationHooks } from "../migrations/types.js";
import type { RunWrites } from "../writes.js";

export interface Backend {
  readonly name: BackendName;
  /** The SQL fragments spelled differently, parameter encoding and value decoding. */
  readonly dialect: Dialect;
  /** Opens the connection (SQLite) or the pool (PostgreSQL) that `config` describes. */
  connect(config: DatabaseConfig): Promise<Driver>;
  /** Inserting a run with its first state, and writing a state with the run's pointer. */
  readonly writes: RunWrites;
  /** Claiming and locking workers' scheduled runs. */
  readonly claims: RunClaims;
  /** Appending events in position order. */
  readonly eventLog: EventLog;
  /** This backend's migrations (prisma/<name>/migrations), embedded at build time. */
  readonly migrations: readonly EmbeddedMigration[];
  readonly migrationHooks: MigrationHooks;
  /** A driver error as one of the package's own errors (see errors.ts); anything else unchanged. */
  translateError(error: unknown): unknown;
}
