import type { Driver, Queryable } from "../driver/types.js";

/** A migration folder from prisma/<provider>/migrations, embedded in the package at build time. */
export interface EmbeddedMigration {
  /** Folder name, `<timestamp>_<description>`, exactly as Prisma Migrate names it. */
  readonly name: string;
  /** SHA-256 (hex) of migration.sql, as Prisma Migrate records it. */
  readonly checksum: string;
  readonly sql: string;
}

/** What the migrator does differently per backend (backends/<name>/migrations.ts). */
export interface MigrationHooks {
  /** Creates Prisma Migrate's history table, `_prisma_migrations`, as Prisma creates it, unless it exists. */
  readonly createHistoryTable: string;
  /** Whether the history table exists yet. */
  historyExists(q: Queryable): Promise<boolean>;
  /**
   * Runs before pending migrations are applied, outside their transactions: whatever they need that
   * a migration cannot create itself. Throws MigrationError (naming `migration`) when that fails.
   */
  beforeApplying(driver: Driver, migration: string): Promise<void>;
  /** Runs inside each migration's transaction after its script; throws to roll the migration back. */
  verify(tx: Queryable): Promise<void>;
  /** Drops every table and type, inside `tx`, leaving an empty database. */
  dropAll(tx: Queryable): Promise<void>;
}
