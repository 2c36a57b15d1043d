/**
 * Event positions and consumer groups: every stored event gets the next position, readers following
 * positions never miss an event (also while several transactions append at once), and each event goes
 * to one consumer of a group, once.
 */
import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { addSeconds, type Database, type EventCreate, EventFilter, openDatabase } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const T0 = "2026-03-01T12:00:00.000000Z";
const event = (name: string, seconds = 0): EventCreate => ({
  id: randomUUID(),
  occurred: addSeconds(T0, seconds),
  event: name,
  resource: { "prefect.resource.id": `prefect.flow-run.${name}` },
});
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describeEachBackend("event positions and consumer groups", (t) => {
  /** Connections of their own (several processes' worth) where the backend can have them. */
  const otherConnections = async (n: number): Promise<Database[]> =>
    t.backend === "sqlite-memory" ? [] : Promise.all(Array.from({ length: n }, () => openDatabase(t.db.config, { migrate: false })));

  it("numbers stored events from 1, in occurred order within a batch, and reads after a position", async () => {
    expect(await t.db.events.head()).toBe(0);
    await t.db.events.createMany([event("b", 2), event("a", 1)]);
    await t.db.events.createMany([event("c", 0)]);
    expect(await t.db.events.head()).toBe(3);
    const all = await t.db.events.readAfter(0, { limit: 10 });
    expect(all.map((e) => [e.position, e.event])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
    expect((await t.db.events.readAfter(1, { limit: 1 })).map((e) => e.event)).toEqual(["b"]);
    expect((await t.db.events.readAfter(0, { limit: 10, filter: EventFilter.parse({ event: { name: ["c"] } }) })).map((e) => e.position)).toEqual([3]);
    expect(await t.db.events.readAfter(3, { limit: 10 })).toEqual([]);
  });

  it("gives an event sent again no new position, leaving no gap", async () => {
    const first = event("a");
    await t.db.events.createMany([first]);
    await t.db.events.createMany([first, event("b")]);
    expect((await t.db.events.readAfter(0, { limit: 10 })).map((e) => [e.position, e.event])).toEqual([
      [1, "a"],
      [2, "b"],
    ]);
  });

  it("shows positions to readers in order while several transactions append at once", async () => {
    const writers = [t.db, ...(await otherConnections(3))];
    try {
      const seen: number[] = [];
      let writing = true;
      const reader = (async () => {
        let cursor = 0;
        for (;;) {
          const done = !writing;
          const batch = await t.db.events.readAfter(cursor, { limit: 1000 });
          for (const e of batch) seen.push(e.position);
          cursor = batch.at(-1)?.position ?? cursor;
          if (done && batch.length === 0) return;
          await sleep(1);
        }
      })();
      // Each transaction appends, then holds on before committing for a random while: a position taken
      // early but committed late would be skipped by a reader already past it.
      await Promise.all(
        writers.flatMap((db, w) =>
          Array.from({ length: 10 }, async (_, i) => {
            await sleep(Math.random() * 20);
            await db.transaction(async (tx) => {
              await tx.events.createMany([event(`w${w}-${i}`), event(`w${w}-${i}-2`)]);
              await sleep(Math.random() * 15);
            });
          }),
        ),
      );
      writing = false;
      await reader;
      const total = writers.length * 20;
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    } finally {
      for (const db of writers.slice(1)) await db.close();
    }
  });

  it("starts a new group at the head and hands out each event once, saving progress with the handler's writes", async () => {
    await t.db.events.createMany([event("before")]);
    expect(await t.db.transaction((tx) => tx.events.claimGroupBatch("recorder", 10))).toEqual([]);
    await t.db.events.createMany([event("x", 1), event("y", 2), event("z", 3)]);

    const claimed = await t.db.transaction(async (tx) => {
      const batch = await tx.events.claimGroupBatch("recorder", 2);
      await tx.events.advanceGroup("recorder", batch.at(-1)!.position);
      return batch.map((e) => e.event);
    });
    expect(claimed).toEqual(["x", "y"]);

    // A handler that fails rolls its progress back: the next claim gets the same events.
    await expect(
      t.db.transaction(async (tx) => {
        const batch = await tx.events.claimGroupBatch("recorder", 10);
        await tx.events.advanceGroup("recorder", batch.at(-1)!.position);
        throw new Error("handler failed");
      }),
    ).rejects.toThrow("handler failed");
    expect(await t.db.transaction(async (tx) => (await tx.events.claimGroupBatch("recorder", 10)).map((e) => e.event))).toEqual(["z"]);

    // Groups are independent; a cursor never moves back.
    expect(await t.db.transaction(async (tx) => (await tx.events.claimGroupBatch("other", 10)).length)).toBe(0);
    await t.db.transaction((tx) => tx.events.advanceGroup("recorder", 4));
    await t.db.transaction((tx) => tx.events.advanceGroup("recorder", 1));
    expect(await t.db.transaction((tx) => tx.events.claimGroupBatch("recorder", 10))).toEqual([]);
  });

  it("refuses to claim outside a transaction", async () => {
    await expect(t.db.events.claimGroupBatch("recorder", 1)).rejects.toThrow(/db.transaction/);
    await expect(t.db.events.claimGroup("recorder", 1)).rejects.toThrow(/db.transaction/);
  });

  it("claims a window of events without reading them, and reads only those a filter selects in it", async () => {
    await t.db.events.createMany([event("before")]);
    expect(await t.db.transaction((tx) => tx.events.claimGroup("window", 10))).toEqual({ cursor: 1, through: 1, count: 0 });
    await t.db.events.createMany(["a", "task.1", "b", "task.2", "c", "task.3"].map((name, i) => event(name, i)));

    const first = await t.db.transaction(async (tx) => {
      const window = await tx.events.claimGroup("window", 4);
      const read = await tx.events.readAfter(window.cursor, { limit: 4, through: window.through, filter: EventFilter.parse({ event: { prefix: ["task."] } }) });
      await tx.events.advanceGroup("window", window.through);
      return { window, read: read.map((e) => e.event) };
    });
    expect(first).toEqual({ window: { cursor: 1, through: 5, count: 4 }, read: ["task.1", "task.2"] });

    // A window the handler did not finish is claimed again; the rest is what the next window holds.
    await expect(
      t.db.transaction(async (tx) => {
        const window = await tx.events.claimGroup("window", 4);
        await tx.events.advanceGroup("window", window.through);
        throw new Error("handler failed");
      }),
    ).rejects.toThrow("handler failed");
    expect(await t.db.transaction((tx) => tx.events.claimGroup("window", 4))).toEqual({ cursor: 5, through: 7, count: 2 });
    await expect(t.db.transaction((tx) => tx.events.claimGroup("window", 0))).rejects.toThrow(/limit/);
  });

  it("never gives one event to two consumers of a group", async () => {
    const consumers = [t.db, ...(await otherConnections(2))];
    try {
      await t.db.transaction((tx) => tx.events.claimGroupBatch("shared", 1));
      const ids = (await t.db.events.createMany(Array.from({ length: 60 }, (_, i) => event(`e${i}`, i)))).map((e) => e.id);
      const handled = consumers.map(() => [] as string[]);
      await Promise.all(
        consumers.map(async (db, c) => {
          for (;;) {
            const got = await db.transaction(async (tx) => {
              const batch = await tx.events.claimGroupBatch("shared", 7);
              if (batch.length === 0) return 0;
              await sleep(2);
              handled[c]!.push(...batch.map((e) => e.id));
              await tx.events.advanceGroup("shared", batch.at(-1)!.position);
              return batch.length;
            });
            if (got === 0) return;
          }
        }),
      );
      expect(handled.flat().sort()).toEqual([...ids].sort());
    } finally {
      for (const db of consumers.slice(1)) await db.close();
    }
  });
});
