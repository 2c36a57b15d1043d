/**
 * Applies the embedded migrations (prisma/<provider>/migrations) and keeps Prisma Migrate's history
 * table, `_prisma_migrations`, exactly as `prisma migrate deploy` would, so Prisma's own tools agree
 * with us about what has been applied.
 *
 * - Each migration runs in its own transaction: it is applied whole or not at all, and a failure says
 *   which migration failed and why, leaving the database as it was before that migration.
 * - Concurrent start-ups are safe: PostgreSQL takes an advisory lock around the whole run; SQLite's
 *   per-migration IMMEDIATE transaction excludes other processes, and each migration is re-checked
 *   inside its transaction before it is applied.
 */
import { randomUUID } from "node:crypto";
import { BusyError, MigrationError } from "../errors.js";
import { sql } from "../sql.js";
import type { Driver, Queryable } from "../driver/types.js";
import { now } from "../timestamps.js";
import type { EmbeddedMigration, MigrationHooks } from "./types.js";

export interface AppliedMigration {
  readonly name: string;
  readonly checksum: string;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly rolledBack: boolean;
}

export interface MigrationStatus {
  /** Migrations recorded as applied, in order. */
  readonly applied: readonly AppliedMigration[];
  /** Migrations this package has that the database lacks, in the order they would be applied. */
  readonly pending: readonly string[];
  /** Migrations recorded in the database that this package does not have (a newer version migrated it). */
  readonly unknown: readonly string[];
  /** Applied migrations whose file changed since they were applied. */
  readonly modified: readonly string[];
  /** Migrations that started but never finished (left by another tool; ours roll back). */
  readonly failed: readonly string[];
}

interface HistoryRow {
  migration_name: string;
  checksum: string;
  started_at: unknown;
  finished_at: unknown;
  rolled_back_at: unknown;
}

export class Migrator {
  constructor(
    private readonly driver: Driver,
    private readonly hooks: MigrationHooks,
    private readonly migrations: readonly EmbeddedMigration[],
  ) {}

  async #history(q: Queryable = this.driver): Promise<HistoryRow[]> {
    return q.query<HistoryRow>(
      sql`SELECT migration_name, checksum, started_at, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at, migration_name`,
    );
  }

  async status(): Promise<MigrationStatus> {
    const history = (await this.hooks.historyExists(this.driver)) ? await this.#history() : [];
    const known = new Map(this.migrations.map((m) => [m.name, m]));
    const live = history.filter((row) => row.rolled_back_at === null);
    const applied = live.filter((row) => row.finished_at !== null);
    const appliedNames = new Set(applied.map((row) => row.migration_name));
    return {
      applied: applied.map((row) => ({
        name: row.migration_name,
        checksum: row.checksum,
        startedAt: String(row.started_at),
        finishedAt: row.finished_at === null ? null : String(row.finished_at),
        rolledBack: false,
      })),
      pending: this.migrations.filter((m) => !appliedNames.has(m.name)).map((m) => m.name),
      unknown: applied.filter((row) => !known.has(row.migration_name)).map((row) => row.migration_name),
      modified: applied
        .filter((row) => known.has(row.migration_name) && known.get(row.migration_name)!.checksum !== row.checksum)
        .map((row) => row.migration_name),
      failed: live.filter((row) => row.finished_at === null).map((row) => row.migration_name),
    };
  }

  /** Applies every pending migration in order; returns the names applied. */
  async upgrade(): Promise<string[]> {
    return this.driver.withMigrationLock(async () => {
      await this.driver.transaction((tx) => tx.execute(sql.raw(this.hooks.createHistoryTable)));
      const status = await this.status();
      if (status.unknown.length > 0) {
        throw new MigrationError(
          status.unknown.at(-1)!,
          `The database was migrated by a newer version (it has ${status.unknown.join(", ")}, which this version does not know). Upgrade this server instead of running it against that database.`,
        );
      }
      if (status.modified.length > 0) {
        throw new MigrationError(
          status.modified[0]!,
          `Migration ${status.modified.join(", ")} was changed after it was applied to this database. Applied migrations must never be edited; restore the original and add a new migration instead.`,
        );
      }
      if (status.failed.length > 0) {
        throw new MigrationError(
          status.failed[0]!,
          `Migration ${status.failed.join(", ")} started but never finished (recorded by another tool). Resolve it with \`prisma migrate resolve\` or reset the database.`,
        );
      }
      if (status.pending.length > 0) await this.hooks.beforeApplying(this.driver, this.migrations[0]!.name);
      const applied: string[] = [];
      for (const migration of this.migrations) {
        if (!status.pending.includes(migration.name)) continue;
        if (await this.#apply(migration)) applied.push(migration.name);
      }
      return applied;
    });
  }

  /** Applies one migration unless another process got there first. */
  async #apply(migration: EmbeddedMigration): Promise<boolean> {
    try {
      return await this.driver.transaction(async (tx) => {
        const done = await tx.query(
          sql`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = ${migration.name} AND finished_at IS NOT NULL AND rolled_back_at IS NULL`,
        );
        if (done.length > 0) return false;
        const id = randomUUID();
        await tx.execute(
          sql`INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES (${id}, ${migration.checksum}, ${migration.name}, ${now()}, 0)`,
        );
        await this.driver.executeScript(tx, migration.sql);
        await this.hooks.verify(tx);
        await tx.execute(
          sql`UPDATE "_prisma_migrations" SET finished_at = ${now()}, applied_steps_count = 1 WHERE id = ${id}`,
        );
        return true;
      });
    } catch (error) {
      if (error instanceof BusyError) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new MigrationError(
        migration.name,
        `Migration ${migration.name} failed: ${reason}. It was rolled back; the database is as it was before this migration.`,
        { cause: error },
      );
    }
  }

  /** Drops every table and type this package created (and the history), leaving an empty database. */
  async dropAll(): Promise<void> {
    await this.driver.withMigrationLock(() => this.driver.transaction((tx) => this.hooks.dropAll(tx)));
  }
}
