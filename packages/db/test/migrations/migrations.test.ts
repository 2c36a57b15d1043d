import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type DatabaseConfig, MigrationError, openDatabase } from "../../src/index.js";
import { postgresMigrations, sqliteMigrations } from "../../src/generated/migrations.js";
import type { Driver } from "../../src/driver/types.js";
import { Migrator } from "../../src/migrations/migrator.js";
import type { EmbeddedMigration } from "../../src/migrations/types.js";
import { PostgresDriver } from "../../src/postgres/driver.js";
import { sql } from "../../src/sql.js";
import { SqliteDriver } from "../../src/sqlite/driver.js";
import { selectedBackends } from "../../src/testing/backends.js";
import { freshConfig } from "../../src/testing/database.js";

async function driverFor(config: DatabaseConfig): Promise<Driver> {
  return config.backend === "sqlite" ? new SqliteDriver(config) : PostgresDriver.open(config);
}

const embedded = (config: DatabaseConfig) => (config.backend === "sqlite" ? sqliteMigrations : postgresMigrations);

async function tables(driver: Driver): Promise<string[]> {
  const rows =
    driver.dialect.name === "sqlite"
      ? await driver.query<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
      : await driver.query<{ name: string }>(sql`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()`);
  return rows.map((r) => r.name).sort();
}

async function history(driver: Driver): Promise<{ migration_name: string; checksum: string; applied_steps_count: number }[]> {
  return driver.query(sql`SELECT migration_name, checksum, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`);
}

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`migrations [${backend}]`, () => {
    let config: DatabaseConfig;
    let remove: () => Promise<void>;
    const drivers: Driver[] = [];
    const open = async () => {
      const driver = await driverFor(config);
      drivers.push(driver);
      return driver;
    };

    beforeEach(async () => {
      ({ config, remove } = await freshConfig(backend, { empty: true }));
    });
    afterEach(async () => {
      await Promise.all(drivers.splice(0).map((d) => d.close()));
      await remove();
    });

    it("migrates an empty database and records every migration as Prisma Migrate does", async () => {
      const db = await openDatabase(config);
      const status = await db.migrationStatus();
      await db.close();
      expect(status.pending).toEqual([]);
      expect(status.applied.map((m) => m.name)).toEqual(embedded(config).map((m) => m.name));
      const driver = await open();
      expect(await history(driver)).toEqual(embedded(config).map((m) => ({ migration_name: m.name, checksum: m.checksum, applied_steps_count: 1 })));
      expect(await tables(driver)).toEqual(expect.arrayContaining(["flow", "flow_run", "task_run", "log", "events", "block_document", "configuration"]));
    });

    it("applies nothing the second time and reports pending migrations before the first", async () => {
      const migrator = new Migrator(await open(), embedded(config));
      expect((await migrator.status()).pending).toEqual(embedded(config).map((m) => m.name));
      expect(await migrator.upgrade()).toEqual(embedded(config).map((m) => m.name));
      expect(await migrator.upgrade()).toEqual([]);
    });

    it("leaves the database alone when migrating on start is turned off", async () => {
      const db = await openDatabase({ ...config, migrateOnStart: false });
      await db.close();
      expect(await tables(await open())).toEqual([]);
    });

    it("lets many processes start at once: each migration is applied exactly once", async () => {
      const migrators = await Promise.all(Array.from({ length: 4 }, async () => new Migrator(await open(), embedded(config))));
      const applied = await Promise.all(migrators.map((m) => m.upgrade()));
      expect(applied.flat().sort()).toEqual(embedded(config).map((m) => m.name));
      expect((await history(drivers[0]!)).length).toBe(embedded(config).length);
    });

    it("rolls a failing migration back whole and names it and the reason", async () => {
      const broken: EmbeddedMigration = {
        name: "29990101000000_broken",
        checksum: "0".repeat(64),
        sql: `CREATE TABLE half_done (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);`,
      };
      const driver = await open();
      const error = await new Migrator(driver, [...embedded(config), broken]).upgrade().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as MigrationError).migration).toBe(broken.name);
      expect((error as Error).message).toMatch(/29990101000000_broken failed: .*no_such_table/);
      expect(await tables(driver)).not.toContain("half_done");
      expect((await history(driver)).map((h) => h.migration_name)).toEqual(embedded(config).map((m) => m.name));
      // The next start retries it, and a fixed migration goes through.
      const fixed = { ...broken, sql: "CREATE TABLE half_done (id INTEGER PRIMARY KEY);" };
      expect(await new Migrator(driver, [...embedded(config), fixed]).upgrade()).toEqual([broken.name]);
    });

    it("refuses to run when an applied migration was edited", async () => {
      const driver = await open();
      await new Migrator(driver, embedded(config)).upgrade();
      const edited = embedded(config).map((m, i) => (i === 0 ? { ...m, checksum: "f".repeat(64) } : m));
      await expect(new Migrator(driver, edited).upgrade()).rejects.toThrow(/was changed after it was applied/);
    });

    it("refuses to run against a database migrated by a newer version", async () => {
      const driver = await open();
      const newer: EmbeddedMigration = { name: "29990101000000_newer", checksum: "a".repeat(64), sql: "CREATE TABLE newer (id INTEGER);" };
      await new Migrator(driver, [...embedded(config), newer]).upgrade();
      const status = await new Migrator(driver, embedded(config)).status();
      expect(status.unknown).toEqual([newer.name]);
      await expect(new Migrator(driver, embedded(config)).upgrade()).rejects.toThrow(/migrated by a newer version/);
    });

    it("resets: drops every table and data, then migrates again", async () => {
      const db = await openDatabase(config);
      await db.flows.create({ name: "gone" });
      expect(await db.reset()).toEqual(embedded(config).map((m) => m.name));
      expect(await db.flows.read()).toEqual([]);
      await db.close();
    });
  });
}
