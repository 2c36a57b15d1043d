import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type DatabaseConfig, MigrationError, openDatabase } from "../../src/index.js";
import { backendFor } from "../../src/backends/index.js";
import type { Driver } from "../../src/driver/types.js";
import { Migrator } from "../../src/migrations/migrator.js";
import type { EmbeddedMigration } from "../../src/migrations/types.js";
import { sql } from "../../src/sql.js";
import { selectedBackends } from "../../src/testing/backends.js";
import { freshConfig } from "../../src/testing/database.js";

const driverFor = (config: DatabaseConfig): Promise<Driver> => backendFor(config).connect(config);
const embedded = (config: DatabaseConfig) => backendFor(config).migrations;
const migrator = (driver: Driver, config: DatabaseConfig, migrations = embedded(config)) => new Migrator(driver, backendFor(config).migrationHooks, migrations);

async function tables(config: DatabaseConfig, driver: Driver): Promise<string[]> {
  const rows =
    config.backend === "sqlite"
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
      expect(await tables(config, driver)).toEqual(expect.arrayContaining(["flow", "flow_run", "task_run", "log", "events", "block_document", "configuration"]));
    });

    it("applies nothing the second time and reports pending migrations before the first", async () => {
      const m = migrator(await open(), config);
      expect((await m.status()).pending).toEqual(embedded(config).map((m) => m.name));
      expect(await m.upgrade()).toEqual(embedded(config).map((x) => x.name));
      expect(await m.upgrade()).toEqual([]);
    });

    it("leaves the database alone when migrating on start is turned off", async () => {
      const db = await openDatabase({ ...config, migrateOnStart: false });
      await db.close();
      expect(await tables(config, await open())).toEqual([]);
    });

    it("lets many processes start at once: each migration is applied exactly once", async () => {
      const migrators = await Promise.all(Array.from({ length: 4 }, async () => migrator(await open(), config)));
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
      const error = await migrator(driver, config, [...embedded(config), broken]).upgrade().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as MigrationError).migration).toBe(broken.name);
      expect((error as Error).message).toMatch(/29990101000000_broken failed: .*no_such_table/);
      expect(await tables(config, driver)).not.toContain("half_done");
      expect((await history(driver)).map((h) => h.migration_name)).toEqual(embedded(config).map((m) => m.name));
      // The next start retries it, and a fixed migration goes through.
      const fixed = { ...broken, sql: "CREATE TABLE half_done (id INTEGER PRIMARY KEY);" };
      expect(await migrator(driver, config, [...embedded(config), fixed]).upgrade()).toEqual([broken.name]);
    });

    it("refuses to run when an applied migration was edited", async () => {
      const driver = await open();
      await migrator(driver, config).upgrade();
      const edited = embedded(config).map((m, i) => (i === 0 ? { ...m, checksum: "f".repeat(64) } : m));
      await expect(migrator(driver, config, edited).upgrade()).rejects.toThrow(/was changed after it was applied/);
    });

    it("refuses to run against a database migrated by a newer version", async () => {
      const driver = await open();
      const newer: EmbeddedMigration = { name: "29990101000000_newer", checksum: "a".repeat(64), sql: "CREATE TABLE newer (id INTEGER);" };
      await migrator(driver, config, [...embedded(config), newer]).upgrade();
      const status = await migrator(driver, config).status();
      expect(status.unknown).toEqual([newer.name]);
      await expect(migrator(driver, config).upgrade()).rejects.toThrow(/migrated by a newer version/);
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
