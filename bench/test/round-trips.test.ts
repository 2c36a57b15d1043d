import { randomUUID } from "node:crypto";
import { openDatabase, type Repositories } from "@prefect/db";
import { createFlowRun, setFlowRunState } from "@prefect/orchestration";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { roundTripCounter, startCountingProxy } from "../src/round-trips.js";

/** A typed frontend message: type byte, length (itself included), body. */
function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

/** A startup-style packet (no type byte): length, then a code, then a body. */
function untyped(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeInt32BE(8 + body.length, 0);
  header.writeInt32BE(code, 4);
  return Buffer.concat([header, body]);
}

const SSL_REQUEST = 80877103;
const PROTOCOL_3 = 196608;

/** Feeds each flight (what the client sends before waiting) cut into chunks, the server answering between flights. */
function count(flights: readonly Buffer[], chunkSize: number): number {
  let trips = 0;
  const counter = roundTripCounter(() => {
    trips += 1;
  });
  for (const flight of flights) {
    for (let i = 0; i < flight.length; i += chunkSize) counter.fromClient(flight.subarray(i, i + chunkSize));
    counter.answered();
  }
  return trips;
}

const extended = (text: string) =>
  Buffer.concat([message("P", Buffer.from(`\0${text}\0\0\0`, "latin1")), message("B", Buffer.alloc(10)), message("E", Buffer.alloc(5)), message("S")]);
const simple = (text: string) => message("Q", Buffer.from(`${text}\0`, "latin1"));

describe("counting round trips from the frontend's messages", () => {
  // The startup, a password message, an extended query (Parse, Bind, Describe, Execute, Sync), a
  // simple Query and another extended query, each waiting for the server's answer.
  const flights = [
    untyped(SSL_REQUEST),
    untyped(PROTOCOL_3, Buffer.from("user\0postgres\0database\0bench\0Q\0\0", "latin1")),
    message("p", Buffer.from("secret S inside the password\0", "latin1")),
    Buffer.concat([message("P", Buffer.from("\0SELECT 'S' AS q\0\0\0", "latin1")), message("B", Buffer.alloc(10)), message("D", Buffer.from("P\0", "latin1")), message("E", Buffer.alloc(5)), message("S")]),
    simple("BEGIN"),
    extended("SELECT 1"),
  ];

  it("counts each Sync and Query message that waits for an answer once, however the stream is cut", () => {
    for (const size of [1, 2, 3, 5, 7, 64, 1000]) expect(count(flights, size)).toBe(3);
  });

  it("counts messages sent without waiting for the answers between them as one round trip", () => {
    const startup = [untyped(PROTOCOL_3, Buffer.from("user\0postgres\0\0", "latin1"))];
    const pipelined = Buffer.concat([simple("BEGIN"), extended("SELECT 1"), extended("SELECT 2")]);
    for (const size of [1, 4, 1000]) {
      expect(count([...startup, pipelined], size)).toBe(1);
      expect(count([...startup, pipelined, simple("COMMIT")], size)).toBe(2);
    }
  });

  it("counts nothing before the startup packet is complete", () => {
    expect(count([untyped(PROTOCOL_3, Buffer.from("user\0S\0\0", "latin1")).subarray(0, 10)], 1)).toBe(0);
  });
});

for (const backend of selectedBackends().filter((b) => b === "postgres")) {
  describe(`the counting proxy in front of PostgreSQL [${backend}]`, () => {
    it("sees one round trip per query node-postgres makes, simple or with parameters", async () => {
      const { config, remove } = await freshConfig(backend);
      if (config.backend !== "postgres") throw new Error("expected a PostgreSQL database");
      const proxy = await startCountingProxy(config.url);
      const client = new pg.Client({ connectionString: proxy.url });
      try {
        await client.connect();
        const before = proxy.roundTrips();
        await client.query("SELECT 1");
        await client.query("SELECT $1::int AS n", [2]);
        await client.query({ name: "named", text: "SELECT $1::text AS t", values: ["x"] });
        await client.query({ name: "named", text: "SELECT $1::text AS t", values: ["y"] });
        await client.query("BEGIN");
        await client.query("COMMIT");
        expect(proxy.roundTrips() - before).toBe(6);
      } finally {
        await client.end();
        await proxy.close();
        await remove();
      }
    });

    it("sees a transaction of @prefect/db send its BEGIN with its first statement, and nothing for a transaction that sends nothing", async () => {
      const { config, remove } = await freshConfig(backend);
      if (config.backend !== "postgres") throw new Error("expected a PostgreSQL database");
      const proxy = await startCountingProxy(config.url);
      const db = await openDatabase({ ...config, url: proxy.url }, { migrate: false });
      try {
        const trips = async (fn: () => Promise<unknown>) => {
          const before = proxy.roundTrips();
          await fn().catch(() => undefined);
          return proxy.roundTrips() - before;
        };
        // BEGIN and the read in one round trip, COMMIT in another.
        expect(await trips(() => db.transaction((tx) => tx.flows.get(randomUUID())))).toBe(2);
        expect(await trips(() => db.transaction(async () => "nothing sent"))).toBe(0);
        // BEGIN with the insert, then the read; ROLLBACK: nothing of it stays.
        const name = `rolled-back-${randomUUID()}`;
        const rolledBack = () =>
          db.transaction(async (tx) => {
            await tx.flows.create({ name });
            if (await tx.flows.getByName(name)) throw new Error("roll it back");
          });
        expect(await trips(rolledBack)).toBe(3);
        expect(await db.flows.getByName(name)).toBeNull();
        // A nested transaction costs no round trip of its own: SAVEPOINT goes with its first statement, and
        // its RELEASE would go with the next statement (COMMIT releases it here); one that sends nothing sends no SAVEPOINT.
        const nested = () =>
          db.transaction(async (tx) => {
            await tx.flows.get(randomUUID());
            await tx.transaction(async (inner) => inner.flows.get(randomUUID()));
            await tx.transaction(async () => "nothing sent");
          });
        expect(await trips(nested)).toBe(3);
        // A nested transaction that fails rolls back its own writes only (waiting for ROLLBACK TO SAVEPOINT).
        const kept = `kept-${randomUUID()}`;
        const undone = `undone-${randomUUID()}`;
        await db.transaction(async (tx) => {
          await tx.flows.create({ name: kept });
          await tx
            .transaction(async (inner) => {
              await inner.flows.create({ name: undone });
              throw new Error("undo the inner one");
            })
            .catch(() => undefined);
          await tx.transaction(async (inner) => inner.flows.get(randomUUID()));
        });
        expect(await db.flows.getByName(kept)).not.toBeNull();
        expect(await db.flows.getByName(undone)).toBeNull();
        // A transaction whose BEGIN went out with a failing statement is rolled back, and the connection serves the next one.
        const missingFlow = { name: "orphan", flow_id: randomUUID() };
        await expect(db.transaction((tx) => tx.deployments.create(missingFlow))).rejects.toMatchObject({ reason: "missing_reference" });
        await db.transaction((tx) => tx.flows.create({ name }));
        expect((await db.flows.getByName(name))?.name).toBe(name);
      } finally {
        await db.close();
        await proxy.close();
        await remove();
      }
    });

    it("sends a transaction's final write alone when nothing preceded it, and inside the transaction when something did", async () => {
      const { config, remove } = await freshConfig(backend);
      if (config.backend !== "postgres") throw new Error("expected a PostgreSQL database");
      const proxy = await startCountingProxy(config.url);
      const db = await openDatabase({ ...config, url: proxy.url }, { migrate: false });
      try {
        const trips = async (fn: () => Promise<unknown>) => {
          const before = proxy.roundTrips();
          await fn().catch(() => undefined);
          return proxy.roundTrips() - before;
        };
        const flow = (await db.flows.create({ name: `final-${randomUUID()}` })).row;
        const create = (tx: Repositories, id: string) => tx.flowRuns.createWithFirstState({ id, flow_id: flow.id }, async () => null, { lastWrite: true });
        // Alone: one round trip, no BEGIN and no COMMIT; a read after it goes alone too.
        const alone = randomUUID();
        expect(await trips(() => db.transaction((tx) => create(tx, alone)))).toBe(1);
        expect(await db.flowRuns.get(alone)).not.toBeNull();
        expect(await trips(() => db.transaction(async (tx) => [await create(tx, randomUUID()), await tx.flows.get(flow.id)]))).toBe(2);
        // Prefect's create of a flow run, its first state forced through orchestration, with the flow its
        // event names already read (as the API reads it with the run's labels): the insert is the transaction.
        let created = "";
        const createRun = async () => (created = (await createFlowRun(db, { flow_id: flow.id, state: { type: "PENDING" } }, { known: { flow } })).run.id);
        expect(await trips(createRun)).toBe(1);
        expect((await db.flowRuns.get(created))?.state_type).toBe("PENDING");
        // A proposal: the run's lock and read with BEGIN, and what its event names read behind it in the
        // same round trip; the state written with COMMIT.
        const running = await trips(() => setFlowRunState(db, created, { type: "RUNNING" }));
        expect(running).toBe(2);
        expect((await db.flowRuns.get(created))?.state_type).toBe("RUNNING");
        // With the run its caller locked, in a nested transaction: the lock with BEGIN; SAVEPOINT with what
        // the event names (the event is made before the state is written); the state written; COMMIT
        // (which releases the savepoint), on its own: the caller's transaction may go on after the state.
        // Not read again: the lock was the caller's read.
        const locked = () =>
          db.transaction(async (tx) => {
            const run = await tx.flowRuns.getForUpdate(created);
            return setFlowRunState(tx, created, { type: "COMPLETED" }, { locked: run! });
          });
        expect(await trips(locked)).toBe(4);
        expect((await db.flowRuns.get(created))?.state_type).toBe("COMPLETED");
        // Ending the caller's transaction, as the worker's RUNNING does: the lock with BEGIN and what the
        // event names behind it; where the run runs (written without waiting for it) and the state with COMMIT.
        const other = (await createFlowRun(db, { flow_id: flow.id, state: { type: "PENDING" } }, { known: { flow } })).run.id;
        const ending = () =>
          db.transaction(async (tx) => {
            const locking = tx.flowRuns.getForUpdate(other);
            const related = tx.flowRuns.relatedOf(other);
            const run = (await locking)!;
            const written = tx.flowRuns.patch(other, { infrastructure_pid: "bench:1" });
            const result = await setFlowRunState(tx, other, { type: "RUNNING" }, { locked: run, related, endsTransaction: true });
            await written;
            return result;
          });
        expect(await trips(ending)).toBe(2);
        expect(await db.flowRuns.get(other)).toMatchObject({ state_type: "RUNNING", infrastructure_pid: "bench:1" });
        // A failure after a final write that went alone cannot undo it (the contract of a final write),
        // and no nested transaction may follow it.
        const kept = randomUUID();
        await expect(
          db.transaction(async (tx) => {
            await create(tx, kept);
            throw new Error("too late to undo");
          }),
        ).rejects.toThrow("too late to undo");
        expect(await db.flowRuns.get(kept)).not.toBeNull();
        await expect(db.transaction(async (tx) => [await create(tx, randomUUID()), await tx.transaction(async () => null)])).rejects.toThrow(/final write/);
        // After a read, the final write goes inside the transaction (BEGIN with the read, the insert, ROLLBACK here).
        const undone = randomUUID();
        const afterRead = () =>
          db.transaction(async (tx) => {
            await tx.flows.get(flow.id);
            await create(tx, undone);
            throw new Error("roll it back");
          });
        expect(await trips(afterRead)).toBe(3);
        expect(await db.flowRuns.get(undone)).toBeNull();
      } finally {
        await db.close();
        await proxy.close();
        await remove();
      }
    });
  });
}
