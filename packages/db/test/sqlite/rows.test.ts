/**
 * Rows on SQLite: the driver takes each row's values as an array and builds the row object with code
 * generated from the statement's columns. The rows must be what better-sqlite3's own row objects
 * would be, on the writer and on the reading connection, and stay right when the table changes under
 * a statement prepared before (by this connection's migration script, or by another process).
 * Statements with a `*` keep better-sqlite3's own rows: their columns follow the table.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../src/backends/sqlite/driver.js";
import { sql } from "../../src/sql.js";

describe("SQLite rows", () => {
  let dir: string;
  let path: string;
  let driver: SqliteDriver;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "prefect-rows-"));
    path = join(dir, "rows.db");
    driver = new SqliteDriver({ path, timeoutSeconds: 5 });
    await driver.execute(sql`CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT)`);
    await driver.execute(sql`INSERT INTO item (name, note) VALUES ('a', NULL), ('b', 'x')`);
  });
  afterEach(async () => {
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("are objects keyed by column name, on the reading connection and in a transaction", async () => {
    const expected = [
      { id: 1, name: "a", note: null },
      { id: 2, name: "b", note: "x" },
    ];
    expect(await driver.query(sql`SELECT * FROM item ORDER BY id`)).toEqual(expected);
    expect(await driver.transaction((tx) => tx.query(sql`SELECT * FROM item ORDER BY id`))).toEqual(expected);
    expect(await driver.query(sql`SELECT * FROM item WHERE id = 0`)).toEqual([]);
  });

  it("keep the last of columns of the same name, as better-sqlite3's rows do", async () => {
    const [row] = await driver.query(sql`SELECT name AS v, note AS v, id FROM item WHERE id = 2`);
    expect(row).toEqual({ v: "x", id: 2 });
  });

  it("take names that are no plain keys as better-sqlite3's rows do", async () => {
    const text = `SELECT name AS "__proto__", id AS "1", note AS "a b" FROM item WHERE id = 2`;
    const own = new Database(path);
    try {
      const [row] = await driver.query<Record<string, unknown>>(sql.raw(text));
      expect(row).toEqual(own.prepare(text).get());
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
      expect(row!["1"]).toBe(2);
      expect(row!["a b"]).toBe("x");
    } finally {
      own.close();
    }
  });

  it("follow the table when another process adds a column under a statement prepared before", async () => {
    const read = () => driver.query(sql`SELECT * FROM item WHERE id = 1`);
    expect(await read()).toEqual([{ id: 1, name: "a", note: null }]);
    const other = new Database(path);
    try {
      other.exec("ALTER TABLE item ADD COLUMN extra TEXT DEFAULT 'e'");
    } finally {
      other.close();
    }
    expect(await read()).toEqual([{ id: 1, name: "a", note: null, extra: "e" }]);
    expect(await driver.transaction((tx) => tx.query(sql`SELECT * FROM item WHERE id = 1`))).toEqual([{ id: 1, name: "a", note: null, extra: "e" }]);
  });

  it("follow the table a script of this connection changed", async () => {
    const read = () => driver.transaction((tx) => tx.query(sql`SELECT * FROM item WHERE id = 2`));
    expect(await read()).toEqual([{ id: 2, name: "b", note: "x" }]);
    await driver.transaction((tx) => driver.executeScript(tx, "ALTER TABLE item RENAME COLUMN note TO remark"));
    expect(await read()).toEqual([{ id: 2, name: "b", remark: "x" }]);
  });
});
