import type { Backend } from "./backends/backend.js";
import { backendFor } from "./backends/index.js";
import { type DatabaseConfig, describeLocation, loadDatabaseConfig } from "./config.js";
import type { Driver } from "./driver/types.js";
import { type MigrationStatus, Migrator } from "./migrations/migrator.js";
import { Bindings, BoundRepositories, type Repositories } from "./repositories/bound.js";
import { sql } from "./sql.js";

export type { Repositories } from "./repositories/bound.js";

export interface DatabaseHealth {
  readonly ok: boolean;
  readonly backend: DatabaseConfig["backend"];
  readonly server: string;
  readonly error?: string;
}

/**
 * The database: every repository, plus `transaction(fn)`, which runs `fn` atomically on one connection
 * (every repository call on `tx`, or on this database from within `fn`, commits together, and a throw
 * rolls all of it back; nested calls use savepoints).
 */
export interface Database extends Repositories {
  readonly config: DatabaseConfig;
  readonly backend: DatabaseConfig["backend"];
  /** Where the database is, with any password hidden. */
  readonly location: string;
  /** Applies pending migrations; returns their names. */
  migrate(): Promise<string[]>;
  migrationStatus(): Promise<MigrationStatus>;
  /** Drops everything and migrates from scratch. */
  reset(): Promise<string[]>;
  health(): Promise<DatabaseHealth>;
  /**
   * Calls `wake` when events may have been appended by another connection or process: at once on
   * PostgreSQL (LISTEN/NOTIFY), never on SQLite, where readers poll `events.readAfter`. `head`: the
   * position of the newest event the append stored, when known (a reader that has read that far has
   * nothing more to read for it). Returns how to stop.
   */
  watchEventAppends(wake: (head?: number) => void): () => Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Overrides `config.migrateOnStart`. */
  readonly migrate?: boolean;
}

class OpenDatabase extends BoundRepositories implements Database {
  readonly backend: DatabaseConfig["backend"];
  readonly location: string;
  readonly #driver: Driver;
  readonly #migrator: Migrator;

  constructor(
    readonly config: DatabaseConfig,
    backend: Backend,
    driver: Driver,
  ) {
    super({ q: driver, backend }, new Bindings(backend));
    this.backend = config.backend;
    this.location = describeLocation(config);
    this.#driver = driver;
    this.#migrator = new Migrator(driver, backend.migrationHooks, backend.migrations);
  }

  readonly migrate = () => this.#migrator.upgrade();
  readonly migrationStatus = () => this.#migrator.status();
  readonly reset = async () => {
    await this.#migrator.dropAll();
    return this.#migrator.upgrade();
  };
  readonly health = async (): Promise<DatabaseHealth> => {
    const { backend } = this.config;
    try {
      await this.#driver.query(sql`SELECT 1 AS ok`);
      return { ok: true, backend, server: await this.#driver.serverVersion() };
    } catch (error) {
      return { ok: false, backend, server: await this.#driver.serverVersion(), error: error instanceof Error ? error.message : String(error) };
    }
  };
  readonly watchEventAppends = (wake: (head?: number) => void) => this.#driver.watchEventAppends(wake);
  readonly close = () => this.#driver.close();
}

/**
 * Opens the configured database (SQLite or PostgreSQL, from the environment unless `config` is
 * given) and, unless turned off, applies pending migrations.
 */
export async function openDatabase(config: DatabaseConfig = loadDatabaseConfig(), options: OpenOptions = {}): Promise<Database> {
  const backend = backendFor(config);
  const driver = await backend.connect(config);
  const db = new OpenDatabase(config, backend, driver);
  if (options.migrate ?? config.migrateOnStart) {
    try {
      await db.migrate();
    } catch (error) {
      await driver.close();
      throw error;
    }
  }
  return db;
}
