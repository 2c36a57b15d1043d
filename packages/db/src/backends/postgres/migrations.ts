/** The migrator's PostgreSQL side: Prisma's history table, the pg_trgm extension, and dropping everything. */
import { MigrationError } from "../../errors.js";
import type { MigrationHooks } from "../../migrations/types.js";
import { sql } from "../../sql.js";

export const postgresMigrationHooks: MigrationHooks = {
  createHistoryTable: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`,

  async historyExists(q) {
    const rows = await q.query<{ present: boolean }>(sql`SELECT to_regclass('_prisma_migrations') IS NOT NULL AS present`);
    return rows[0]?.present === true;
  },

  /** pg_trgm backs the name-search indexes; creating it may need more rights than the server has. */
  async beforeApplying(driver, migration) {
    const present = await driver.query(sql`SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'`);
    if (present.length > 0) return;
    try {
      await driver.execute(sql`CREATE EXTENSION IF NOT EXISTS pg_trgm`);
    } catch (error) {
      const database = await driver
        .query<{ db: string }>(sql`SELECT current_database() AS db`)
        .then((r) => r[0]?.db ?? "your database")
        .catch(() => "your database");
      throw new MigrationError(
        migration,
        `The pg_trgm extension is missing and this role may not create it (${error instanceof Error ? error.message : String(error)}). ` +
          `Ask a superuser to run, once: psql -d ${database} -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm;' and start again.`,
        { cause: error },
      );
    }
  },

  async verify() {},

  async dropAll(tx) {
    const tables = await tx.query<{ name: string }>(sql`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()`);
    for (const table of tables) await tx.execute(sql`DROP TABLE IF EXISTS ${sql.ident(table.name)} CASCADE`);
    const types = await tx.query<{ name: string }>(
      sql`SELECT t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE n.nspname = current_schema() AND t.typtype = 'e'`,
    );
    for (const type of types) await tx.execute(sql`DROP TYPE IF EXISTS ${sql.ident(type.name)} CASCADE`);
  },
};
