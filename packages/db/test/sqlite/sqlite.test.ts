import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidError, loadDatabaseConfig, openDatabase } from "../../src/index.js";
import { sqliteMigrations } from "../../src/generated/migrations.js";
import { checkSqliteVersion } from "../../src/backends/sqlite/driver.js";

const run = promisify(execFile);
const built = join(import.meta.dirname, "../../dist/index.js");

describe("SQLite", () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "prefect-sqlite-"));
    path = join(dir, "prefect.db");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses SQLite older than it needs (3.35, which implies Prefect's 3.24) with a clear message", () => {
    expect(() => checkSqliteVersion("3.23.1")).toThrow(InvalidError);
    expect(() => checkSqliteVersion("3.23.1")).toThrow(/SQLite 3\.23\.1 is too old: this server needs SQLite 3\.35\.0 or newer/);
    expect(() => checkSqliteVersion("3.34.1")).toThrow(/3\.34\.1 is too old/);
    expect(() => checkSqliteVersion("3.35.0")).not.toThrow();
    expect(() => checkSqliteVersion("3.100.0")).not.toThrow();
    expect(() => checkSqliteVersion("4.0.0")).not.toThrow();
  });

  it("opens the file in WAL mode with foreign keys on and synchronous=NORMAL", async () => {
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: path }));
    await db.close();
    const raw = new Database(path);
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      raw.close();
    }
    // foreign_keys and synchronous are per connection: check them through the package's own connection.
    const again = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: path }));
    try {
      const { row: flow } = await again.flows.create({ name: "f" });
      await expect(again.flowRuns.create({ flow_id: "00000000-0000-4000-8000-000000000000" })).rejects.toBeInstanceOf(InvalidError);
      expect(flow.name).toBe("f");
    } finally {
      await again.close();
    }
  });

  it("creates the directory the database file lives in", async () => {
    const nested = join(dir, "a", "b", "prefect.db");
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: nested }));
    await db.close();
    expect(existsSync(nested)).toBe(true);
  });

  it("lets several processes migrate and write one file at once without losing anything", async () => {
    expect(existsSync(built), "run `pnpm build` first: the writer processes use the built package").toBe(true);
    const processes = 4;
    const runs = 40;
    const outputs = await Promise.all(
      Array.from({ length: processes }, () => run(process.execPath, [join(import.meta.dirname, "writer-process.mjs"), path, String(runs)], { timeout: 120_000 })),
    );
    const written = outputs.map((o) => JSON.parse(o.stdout) as { flow: string; ids: string[] });
    expect(new Set(written.map((w) => w.flow)).size).toBe(1);

    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: path }));
    try {
      const all = written.flatMap((w) => w.ids);
      expect(new Set(all).size).toBe(processes * runs);
      expect(await db.flowRuns.count()).toBe(processes * runs);
      expect(await db.flowRuns.count({ flow_runs: { state: { type: { any_: ["COMPLETED"] } } } })).toBe(processes * runs);
      expect(await db.logs.count()).toBe(processes * runs * 3);
      for (const id of all.slice(0, 10)) expect((await db.flowRuns.readStates(id)).map((s) => s.type)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
      expect((await db.migrationStatus()).applied).toHaveLength(sqliteMigrations.length);
    } finally {
      await db.close();
    }
  });
});
