/** The migrator's SQLite side: Prisma's history table, foreign-key checks per migration, and dropping everything. */
import type { MigrationHooks } from "../../migrations/types.js";
import { sql } from "../../sql.js";

export const sqliteMigrationHooks: MigrationHooks = {
  createHistoryTable: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`,

  async historyExists(q) {
    const rows = await q.query(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'`);
    return rows.length > 0;
  },

  async beforeApplying() {},

  // Foreign keys are off while migrations run (so that one may rebuild a table; see the driver's
  // withMigrationLock): each migration checks them itself before it commits.
  async verify(tx) {
    const violations = await tx.query<{ table: string }>(sql.raw("PRAGMA foreign_key_check"));
    if (violations.length > 0) {
      throw new Error(`it leaves rows that break foreign keys in ${[...new Set(violations.map((v) => v.table))].join(", ")}`);
    }
  },

  async dropAll(tx) {
    const objects = await tx.query<{ type: string; name: string }>(
      sql`SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') AND name NOT LIKE 'sqlite_%'`,
    );
    for (const object of objects.filter((o) => o.type !== "table")) {
      await tx.execute(sql`DROP ${sql.raw(object.type.toUpperCase())} IF EXISTS ${sql.ident(object.name)}`);
    }
    for (const table of objects.filter((o) => o.type === "table")) {
      await tx.execute(sql`DROP TABLE IF EXISTS ${sql.ident(table.name)}`);
    }
  },
};
