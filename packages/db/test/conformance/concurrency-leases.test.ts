/**
 * Concurrency leases in the database: created, read, renewed while unexpired, narrowed, listed by
 * limit and by holder, taken out exactly once (one caller of several racing gets a lease), rolled
 * back with the transaction they were written in, and shared by every connection to the database.
 */
import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { type Database, InvalidError, openDatabase } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";
import { now, secondsBetween } from "../../src/timestamps.js";

describeEachBackend("concurrency leases", (t) => {
  const leases = () => t.db.concurrencyLeases;
  const limitIds = [randomUUID(), randomUUID()];
  const holder = { type: "task_run" as const, id: randomUUID() };

  it("creates a lease with its limits, expiration and metadata, and reads it back", async () => {
    const before = now();
    const lease = await leases().createLease(limitIds, 60, { slots: 2, holder });
    expect(lease.resource_ids).toEqual(limitIds);
    expect(lease.metadata).toEqual({ slots: 2, holder });
    expect(secondsBetween(lease.expiration, before)).toBeGreaterThanOrEqual(60);
    expect(await leases().readLease(lease.id)).toEqual(lease);
    const bare = await leases().createLease([limitIds[0]!], 60);
    expect(bare.metadata).toBeNull();
    expect(await leases().readLease(randomUUID())).toBeNull();
  });

  it("refuses metadata that is not Prefect's", async () => {
    await expect(leases().createLease(limitIds, 60, { slots: -1 })).rejects.toBeInstanceOf(InvalidError);
    await expect(leases().createLease(limitIds, 60, { slots: 1, holder: { type: "worker" as never, id: randomUUID() } })).rejects.toBeInstanceOf(InvalidError);
  });

  it("renews an unexpired lease only; an expired one is the repossessor's", async () => {
    const live = await leases().createLease(limitIds, 60, { slots: 1 });
    const lapsed = await leases().createLease(limitIds, -1, { slots: 1 });
    expect(await leases().renewLease(live.id, 600)).toBe(true);
    expect(secondsBetween((await leases().readLease(live.id))!.expiration, live.expiration)).toBeGreaterThan(500);
    expect(await leases().renewLease(lapsed.id, 600)).toBe(false);
    expect(await leases().renewLease(randomUUID(), 600)).toBe(false);
    expect(await leases().readActiveLeaseIds()).toEqual([live.id]);
    expect(await leases().readExpiredLeaseIds()).toEqual([lapsed.id]);
  });

  it("lists the holders of a limit and the leases a holder holds, unexpired ones only", async () => {
    const held = await leases().createLease(limitIds, 60, { slots: 1, holder });
    await leases().createLease([limitIds[0]!], 60, { slots: 1 });
    await leases().createLease([limitIds[1]!], -1, { slots: 1, holder });
    expect(await leases().listHoldersForLimit(limitIds[0]!)).toEqual([{ leaseId: held.id, holder }]);
    expect((await leases().listLeasesForLimit(limitIds[0]!)).length).toBe(2);
    expect((await leases().listLeasesForLimit(limitIds[1]!)).length).toBe(2);
    expect((await leases().listLeasesHeldBy(holder)).map((l) => l.id)).toEqual([held.id]);
    expect(await leases().listLeasesHeldBy({ type: "flow_run", id: holder.id })).toEqual([]);
  });

  it("narrows a lease to the limits it keeps", async () => {
    const lease = await leases().createLease(limitIds, 60, { slots: 1 });
    await leases().narrowLease(lease.id, [limitIds[1]!]);
    expect((await leases().readLease(lease.id))?.resource_ids).toEqual([limitIds[1]]);
  });

  it("gives a lease to one taker only, and revokes", async () => {
    const lease = await leases().createLease(limitIds, 60, { slots: 3 });
    const takes = await Promise.all([leases().takeLease(lease.id), leases().takeLease(lease.id), leases().takeLease(lease.id)]);
    expect(takes.filter((taken) => taken !== null)).toEqual([lease]);
    const other = await leases().createLease(limitIds, 60, { slots: 1 });
    await leases().revokeLease(other.id);
    expect(await leases().readLease(other.id)).toBeNull();
  });

  it("a lease written in a transaction that rolls back is not there, and one taken out comes back", async () => {
    const kept = await leases().createLease(limitIds, 60, { slots: 1 });
    let created = "";
    await expect(
      t.db.transaction(async (tx) => {
        created = (await tx.concurrencyLeases.createLease(limitIds, 60, { slots: 1 })).id;
        expect(await tx.concurrencyLeases.takeLease(kept.id)).toEqual(kept);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await leases().readLease(created)).toBeNull();
    expect(await leases().readLease(kept.id)).toEqual(kept);
  });

  it("takes expired leases out in batches, leaving unexpired ones", async () => {
    const live = await leases().createLease(limitIds, 60, { slots: 1 });
    const lapsed = await Promise.all([1, 2, 3].map(() => leases().createLease(limitIds, -1, { slots: 1 })));
    const first = await leases().takeExpiredLeases(2);
    const second = await leases().takeExpiredLeases(2);
    expect(first).toHaveLength(2);
    expect([...first, ...second].map((l) => l.id).sort()).toEqual(lapsed.map((l) => l.id).sort());
    expect(await leases().takeExpiredLeases(2)).toEqual([]);
    expect(await leases().readActiveLeaseIds()).toEqual([live.id]);
  });

  // An in-memory SQLite database has one connection only: no second server can share it.
  if (t.backend === "sqlite-memory") return;

  it("is shared by every connection: taken through one, renewed and released through another, each expired lease taken once", async () => {
    // A second connection to the test's database, as another server holds.
    const other = await openDatabase(t.config, { migrate: false });
    try {
      const lease = await leases().createLease(limitIds, 60, { slots: 1, holder });
      expect(await other.concurrencyLeases.renewLease(lease.id, 120)).toBe(true);
      expect(await other.concurrencyLeases.listHoldersForLimit(limitIds[0]!)).toEqual([{ leaseId: lease.id, holder }]);
      expect(await other.concurrencyLeases.takeLease(lease.id)).not.toBeNull();
      expect(await leases().takeLease(lease.id)).toBeNull();

      const lapsed = await Promise.all(Array.from({ length: 30 }, () => leases().createLease(limitIds, -1, { slots: 1 })));
      const takeAll = async (db: Database) => {
        const got: string[] = [];
        for (;;) {
          const batch = await db.transaction((tx) => tx.concurrencyLeases.takeExpiredLeases(4));
          if (batch.length === 0) return got;
          got.push(...batch.map((l) => l.id));
        }
      };
      const [mine, theirs] = await Promise.all([takeAll(t.db), takeAll(other)]);
      const all = [...mine, ...theirs];
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort()).toEqual(lapsed.map((l) => l.id).sort());
    } finally {
      await other.close();
    }
  });
});
