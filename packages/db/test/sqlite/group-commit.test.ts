/**
 * Group commit on SQLite: transactions that wait for the connection run inside the open database
 * transaction of the one before them, each in its own savepoint, and share its COMMIT. What callers
 * must be able to rely on: an answer only once the writes are committed, a failure undoing only its
 * own writes, and a failure that loses the whole database transaction failing every member with it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteDriver } from "../../src/backends/sqlite/driver.js";
import { AlreadyExistsError } from "../../src/errors.js";
import { sql } from "../../src/sql.js";

/** A promise with its resolver, to hold a transaction open until the test lets it go. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Lets every queued callback and promise continuation run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe("SQLite group commit", () => {
  let dir: string;
  let path: string;
  let driver: SqliteDriver;
  let other: Database.Database;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "prefect-group-"));
    path = join(dir, "group.db");
    driver = new SqliteDriver({ path, timeoutSeconds: 5 });
    await driver.execute(sql`CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)`);
    // Another connection, as another process would have: it sees only committed rows.
    other = new Database(path);
  });
  afterEach(async () => {
    other.close();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const names = () => (other.prepare("SELECT name FROM item ORDER BY id").all() as { name: string }[]).map((r) => r.name);
  const insert = (name: string) => driver.transaction(async (tx) => void (await tx.execute(sql`INSERT INTO item (name) VALUES (${name})`)));

  it("answers a transaction that waited for no one at once, committed", async () => {
    await insert("a");
    expect(names()).toEqual(["a"]);
  });

  it("answers each transaction of a group only after the group's COMMIT, which the last one makes", async () => {
    const hold = gate();
    const answered: string[] = [];
    // The first holds the connection while the other two queue behind it.
    const first = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('first')`);
      await hold.opened;
    }).then(() => answered.push("first"));
    const secondHold = gate();
    const second = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('second')`);
      await secondHold.opened;
    }).then(() => answered.push("second"));
    const third = insert("third").then(() => answered.push("third"));
    await settle();
    hold.open();
    await settle();
    // The first ended with others waiting: its writes are not committed yet, and it has no answer.
    expect(answered).toEqual([]);
    expect(names()).toEqual([]);
    secondHold.open();
    await Promise.all([first, second, third]);
    expect(answered.sort()).toEqual(["first", "second", "third"]);
    expect(names()).toEqual(["first", "second", "third"]);
  });

  it("rolls back only the failing transaction's writes; the rest of its group commits", async () => {
    const hold = gate();
    const first = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('kept')`);
      await hold.opened;
    });
    const failing = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('undone')`);
      await tx.execute(sql`INSERT INTO item (name) VALUES ('kept')`);
    });
    const last = insert("also kept");
    await settle();
    hold.open();
    await expect(failing).rejects.toBeInstanceOf(AlreadyExistsError);
    await Promise.all([first, last]);
    expect(names()).toEqual(["kept", "also kept"]);
  });

  it("fails every waiting member when a failure takes the whole database transaction with it", async () => {
    // RAISE(ROLLBACK) ends the database transaction, not only the statement.
    await driver.execute(sql`CREATE TRIGGER doom BEFORE INSERT ON item WHEN NEW.name = 'doom' BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END`);
    const hold = gate();
    const first = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('lost')`);
      await hold.opened;
    });
    const doomed = insert("doom");
    const after = insert("after");
    await settle();
    hold.open();
    await expect(first).rejects.toThrow(/doomed/);
    await expect(doomed).rejects.toThrow(/doomed/);
    // The one that queued behind the failure starts a database transaction of its own.
    await after;
    expect(names()).toEqual(["after"]);
  });

  it("commits an open group before a write outside a transaction runs", async () => {
    const hold = gate();
    const first = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('grouped')`);
      await hold.opened;
    });
    const second = insert("grouped too");
    const outside = driver.execute(sql`INSERT INTO item (name) VALUES ('outside')`);
    await settle();
    hold.open();
    await Promise.all([first, second, outside]);
    expect(names()).toEqual(["grouped", "grouped too", "outside"]);
  });

  it("reads outside a transaction at once, from what is committed, while a group is open", async () => {
    await insert("committed");
    const hold = gate();
    const first = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('grouped')`);
      await hold.opened;
    });
    const secondHold = gate();
    const second = driver.transaction(async (tx) => {
      await tx.execute(sql`INSERT INTO item (name) VALUES ('grouped too')`);
      await secondHold.opened;
    });
    await settle();
    hold.open();
    await settle();
    // The group is open (the first waits for the second's end): a read does not wait for it, and
    // sees neither of its writes.
    const read = await driver.query<{ name: string }>(sql`SELECT name FROM item ORDER BY id`);
    expect(read.map((r) => r.name)).toEqual(["committed"]);
    secondHold.open();
    await Promise.all([first, second]);
    expect((await driver.query<{ name: string }>(sql`SELECT name FROM item ORDER BY id`)).map((r) => r.name)).toEqual(["committed", "grouped", "grouped too"]);
  });
});
