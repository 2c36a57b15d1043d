import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { afterEach, describe, expect, inject, it } from "vitest";
import { DatabaseError, InvalidError, loadDatabaseConfig, MigrationError, openDatabase } from "../../src/index.js";
import { checkPostgresVersion, parsePostgresTimestamp } from "../../src/backends/postgres/driver.js";
import { openTestDatabase } from "../../src/testing/database.js";
import { withDatabase } from "../../src/testing/postgres.js";

describe("PostgreSQL", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function admin<T>(fn: (client: pg.Client) => Promise<T>, database?: string): Promise<T> {
    const url = inject("postgresUrl");
    const client = new pg.Client({ connectionString: database ? withDatabase(url, database) : url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  it("refuses servers older than 13 with a clear message", () => {
    expect(() => checkPostgresVersion(120015, "12.15")).toThrow(InvalidError);
    expect(() => checkPostgresVersion(120015, "12.15")).toThrow(/PostgreSQL 12\.15 is too old: this server needs PostgreSQL 13 or newer/);
    expect(() => checkPostgresVersion(130000, "13.0")).not.toThrow();
  });

  it("reads timestamps back in UTC with their microseconds", () => {
    expect(parsePostgresTimestamp("2026-11-22 02:34:42.123456+00")).toBe("2026-11-22T02:34:42.123456Z");
    expect(parsePostgresTimestamp("2026-11-22 02:34:42+00")).toBe("2026-11-22T02:34:42.000000Z");
    expect(parsePostgresTimestamp("2026-11-22 02:34:42.5+00")).toBe("2026-11-22T02:34:42.500000Z");
  });

  it("says which statement a superuser must run when the role may not create pg_trgm", async () => {
    const suffix = randomBytes(4).toString("hex");
    const database = `prefect_trgm_${suffix}`;
    const role = `limited_${suffix}`;
    await admin(async (c) => {
      await c.query(`CREATE DATABASE ${database}`);
      await c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'secret'`);
      await c.query(`REVOKE CREATE ON DATABASE ${database} FROM PUBLIC`);
      await c.query(`GRANT CONNECT ON DATABASE ${database} TO ${role}`);
    });
    cleanups.push(() =>
      admin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        await c.query(`DROP ROLE IF EXISTS ${role}`);
      }),
    );
    await admin((c) => c.query(`GRANT ALL ON SCHEMA public TO ${role}`), database);
    const url = new URL(withDatabase(inject("postgresUrl"), database));
    url.username = role;
    url.password = "secret";
    const error = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: url.toString() })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain(`psql -d ${database} -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm;'`);
    expect((error as Error).message).not.toContain("secret");

    // Once a superuser has created it, the same role migrates.
    await admin((c) => c.query("CREATE EXTENSION pg_trgm"), database);
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: url.toString() }));
    expect((await db.migrationStatus()).pending).toEqual([]);
    await db.close();
  });

  it("reads runs by id together only outside transactions: a transaction's reads stay in it, others never see them", async () => {
    const t = await openTestDatabase("postgres");
    cleanups.push(t.cleanup);
    const { row: flow } = await t.db.flows.create({ name: "coalesced" });
    const committed = (await t.db.flowRuns.create({ flow_id: flow.id })).row;
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      release = resolve;
    });
    let uncommitted = "";
    // Asked for from outside the transaction, in the same turn as the transaction's own read of it.
    const outside = (async () => {
      await started;
      return Promise.all([t.db.flowRuns.get(uncommitted), t.db.flowRuns.get(committed.id)]);
    })();
    const inside = await t.db.transaction(async (tx) => {
      uncommitted = (await tx.flowRuns.create({ flow_id: flow.id })).row.id;
      release();
      const own = await Promise.all([tx.flowRuns.get(uncommitted), tx.flowRuns.get(committed.id)]);
      // The outside reads finish while the transaction is still open.
      return { own, theirs: await outside };
    });
    expect(inside.own.map((r) => r?.id)).toEqual([uncommitted, committed.id]);
    expect(inside.theirs.map((r) => r?.id ?? null)).toEqual([null, committed.id]);
  });

  it("wakes event readers for each append with the position of the newest event it stored", async () => {
    const t = await openTestDatabase("postgres");
    cleanups.push(t.cleanup);
    const heads: (number | undefined)[] = [];
    let listening!: () => void;
    const connected = new Promise<void>((resolve) => {
      listening = resolve;
    });
    // The first wake-up comes once LISTEN is in place (notifications may have been missed before).
    const stop = t.db.watchEventAppends((head) => {
      heads.push(head);
      listening();
    });
    cleanups.push(stop);
    await connected;
    const event = (name: string) => ({ id: randomUUID(), occurred: "2026-12-07T10:00:00.000000Z", event: name, resource: { "prefect.resource.id": "test.1" } });
    const [first, second] = [event("test.first"), event("test.second")];
    await t.db.events.createMany([first, second]);
    // Stored already: nothing is appended, nothing is notified.
    await t.db.events.createMany([first]);
    await t.db.events.createMany([event("test.third")]);
    for (let i = 0; i < 200 && heads.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(heads).toEqual([undefined, 2, 3]);
  });

  it("keeps at most the configured number of connections", async () => {
    const database = `prefect_pool_${randomBytes(4).toString("hex")}`;
    await admin((c) => c.query(`CREATE DATABASE ${database} TEMPLATE ${inject("postgresTemplate")}`));
    cleanups.push(async () => {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
    });
    const db = await openDatabase(
      loadDatabaseConfig({ PREFECT_DATABASE_URL: withDatabase(inject("postgresUrl"), database), PREFECT_SQLALCHEMY_POOL_SIZE: "3" }),
      { migrate: false },
    );
    try {
      const { row: flow } = await db.flows.create({ name: "pool" });
      await Promise.all(Array.from({ length: 30 }, () => db.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } })));
      const connections = await admin(async (c) => {
        const r = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [database]);
        return r.rows[0].n as number;
      });
      expect(connections).toBeLessThanOrEqual(3);
      expect(await db.flowRuns.count()).toBe(30);
    } finally {
      await db.close();
    }
  });

  it("survives its connections being terminated, inside a transaction or idle, and reconnects by itself", async () => {
    const database = `prefect_terminate_${randomBytes(4).toString("hex")}`;
    await admin((c) => c.query(`CREATE DATABASE ${database} TEMPLATE ${inject("postgresTemplate")}`));
    cleanups.push(async () => {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
    });
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: withDatabase(inject("postgresUrl"), database) }), { migrate: false });
    const terminate = () =>
      admin((c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database]));
    try {
      for (let round = 0; round < 3; round++) {
        const { row: flow } = await db.flows.create({ name: `before ${round}` });
        // A transaction holds a checked-out connection while its backend is terminated.
        const held = db.transaction(async (tx) => {
          await tx.flows.create({ name: `lost ${round}` });
          await new Promise((resolve) => setTimeout(resolve, 2000));
          return tx.flows.count();
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        await terminate();
        await expect(held).rejects.toBeInstanceOf(DatabaseError);
        // Nothing of the failed transaction was kept; what was committed before is there.
        expect(await db.flows.getByName(`lost ${round}`)).toBeNull();
        expect((await db.flows.getByName(flow.name))?.id).toBe(flow.id);
      }
    } finally {
      await db.close();
    }
  });
});
