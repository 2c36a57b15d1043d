import { beforeEach, describe, expect, it } from "vitest";
import { addSeconds, InvalidError, NotFoundError, now, type WorkPool } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

describeEachBackend("workers", (t) => {
  let pool: WorkPool;
  beforeEach(async () => {
    pool = await t.db.workPools.create({ name: "pool", type: "process" });
  });

  describe("heartbeat", () => {
    it("inserts the worker on its first heartbeat, ONLINE", async () => {
      expect(await t.db.workers.read(pool.id)).toEqual([]);
      const before = now();
      const worker = await t.db.workers.heartbeat(pool.id, { name: "process X" });
      expect(worker).toMatchObject({ name: "process X", work_pool_id: pool.id, status: "ONLINE", heartbeat_interval_seconds: null });
      expect(worker.last_heartbeat_time >= before).toBe(true);
      expect(await t.db.workers.read(pool.id)).toEqual([worker]);
    });

    it("updates the same worker on later heartbeats", async () => {
      const first = await t.db.workers.heartbeat(pool.id, { name: "process X", heartbeat_interval_seconds: 30 });
      await t.db.workers.heartbeat(pool.id, { name: "process X" });
      const third = await t.db.workers.heartbeat(pool.id, { name: "process X" });
      expect(third.id).toBe(first.id);
      expect(third.created).toBe(first.created);
      expect(third.last_heartbeat_time > first.last_heartbeat_time).toBe(true);
      // An interval is kept until a heartbeat gives another.
      expect(third.heartbeat_interval_seconds).toBe(30);
      expect((await t.db.workers.heartbeat(pool.id, { name: "process X", heartbeat_interval_seconds: 10 })).heartbeat_interval_seconds).toBe(10);
      expect(await t.db.workers.read(pool.id)).toHaveLength(1);
    });

    it("keeps workers of different names and pools apart", async () => {
      const other = await t.db.workPools.create({ name: "other" });
      await t.db.workers.heartbeat(pool.id, { name: "a" });
      await t.db.workers.heartbeat(pool.id, { name: "b" });
      await t.db.workers.heartbeat(other.id, { name: "a" });
      expect((await t.db.workers.read(pool.id)).map((w) => w.name)).toEqual(["b", "a"]);
      expect(await t.db.workers.read(other.id)).toHaveLength(1);
    });

    it("makes a NOT_READY pool READY, and leaves a PAUSED one PAUSED", async () => {
      expect(pool.status).toBe("NOT_READY");
      await t.db.workers.heartbeat(pool.id, { name: "w" });
      const ready = await t.db.workPools.get(pool.id);
      expect(ready).toMatchObject({ status: "READY" });
      expect(ready?.last_status_event_id).not.toBeNull();
      expect(ready?.last_transitioned_status_at).not.toBeNull();

      const paused = await t.db.workPools.create({ name: "paused", type: "process", is_paused: true });
      await t.db.workers.heartbeat(paused.id, { name: "w" });
      expect((await t.db.workPools.get(paused.id))?.status).toBe("PAUSED");
    });

    it("refuses an unknown pool and a worker without a name", async () => {
      await expect(t.db.workers.heartbeat(MISSING, { name: "w" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.workers.heartbeat(pool.id, { name: "" })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("read", () => {
    it("reads workers most recently heard from first, filtered and paged", async () => {
      for (const name of ["a", "b", "c"]) await t.db.workers.heartbeat(pool.id, { name });
      const [c, b, a] = await t.db.workers.read(pool.id);
      expect([c?.name, b?.name, a?.name]).toEqual(["c", "b", "a"]);
      const names = async (options: Parameters<typeof t.db.workers.read>[1]) => (await t.db.workers.read(pool.id, options)).map((w) => w.name);
      expect(await names({ limit: 1, offset: 1 })).toEqual(["b"]);
      expect(await names({ workers: { last_heartbeat_time: { before_: b!.last_heartbeat_time } } })).toEqual(["b", "a"]);
      expect(await names({ workers: { last_heartbeat_time: { after_: b!.last_heartbeat_time } } })).toEqual(["c", "b"]);
      await t.db.workers.markOffline({ now: addSeconds(now(), 1000) });
      await t.db.workers.heartbeat(pool.id, { name: "a" });
      expect(await names({ workers: { status: { any_: ["ONLINE"] } } })).toEqual(["a"]);
      expect(await names({ workers: { status: { not_any_: ["ONLINE"] } } })).toEqual(["c", "b"]);
      expect(await names({ workers: { operator: "or_", status: { any_: ["ONLINE"] }, last_heartbeat_time: { before_: b!.last_heartbeat_time } } })).toEqual(["a", "b"]);
    });
  });

  describe("delete", () => {
    it("deletes a worker by name", async () => {
      await t.db.workers.heartbeat(pool.id, { name: "a" });
      await t.db.workers.heartbeat(pool.id, { name: "b" });
      await t.db.workers.delete(pool.id, "a");
      expect((await t.db.workers.read(pool.id)).map((w) => w.name)).toEqual(["b"]);
      await expect(t.db.workers.delete(pool.id, "a")).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe("health", () => {
    it("marks workers OFFLINE after the multiple of their interval without a heartbeat", async () => {
      const fast = await t.db.workers.heartbeat(pool.id, { name: "fast", heartbeat_interval_seconds: 10 });
      const silent = await t.db.workers.heartbeat(pool.id, { name: "silent" });

      // 3 x 10 s for the worker that said its interval, 3 x 30 s (the fallback) for the other.
      expect(await t.db.workers.markOffline({ now: addSeconds(fast.last_heartbeat_time, 29) })).toEqual([]);
      expect(await t.db.workers.markOffline({ now: addSeconds(fast.last_heartbeat_time, 31) })).toEqual([fast.id]);
      expect(await t.db.workers.markOffline({ now: addSeconds(silent.last_heartbeat_time, 89) })).toEqual([]);
      expect(await t.db.workers.markOffline({ now: addSeconds(silent.last_heartbeat_time, 91) })).toEqual([silent.id]);
      const statuses = Object.fromEntries((await t.db.workers.read(pool.id)).map((w) => [w.name, w.status]));
      expect(statuses).toEqual({ fast: "OFFLINE", silent: "OFFLINE" });
    });

    it("honours the multiple and the fallback interval given", async () => {
      const worker = await t.db.workers.heartbeat(pool.id, { name: "w" });
      const options = { inactivityHeartbeatMultiple: 1.5, fallbackHeartbeatIntervalSeconds: 5 };
      expect(await t.db.workers.markOffline({ ...options, now: addSeconds(worker.last_heartbeat_time, 7) })).toEqual([]);
      expect(await t.db.workers.markOffline({ ...options, now: addSeconds(worker.last_heartbeat_time, 8) })).toEqual([worker.id]);
    });

    it("marks READY pools without an ONLINE worker NOT_READY; PAUSED pools stay PAUSED", async () => {
      const watched = await t.db.workPools.create({ name: "watched", type: "process" });
      const paused = await t.db.workPools.create({ name: "paused", type: "process", is_paused: true });
      const worker = await t.db.workers.heartbeat(pool.id, { name: "w" });
      await t.db.workers.heartbeat(watched.id, { name: "w" });
      await t.db.workers.heartbeat(paused.id, { name: "w" });

      expect(await t.db.workPools.markNotReady()).toEqual([]);
      // Only `pool`'s worker is still heard from.
      await t.db.workers.markOffline({ now: addSeconds(worker.last_heartbeat_time, 1000) });
      await t.db.workers.heartbeat(pool.id, { name: "w" });
      const before = await t.db.workPools.get(watched.id);
      const marked = await t.db.workPools.markNotReady();
      expect(marked.map((p) => [p.name, p.status])).toEqual([["watched", "NOT_READY"]]);
      expect(marked[0]?.last_status_event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(marked[0]?.last_status_event_id).not.toBe(before?.last_status_event_id);
      expect((await t.db.workPools.get(pool.id))?.status).toBe("READY");
      expect((await t.db.workPools.get(paused.id))?.status).toBe("PAUSED");
      expect(await t.db.workPools.markNotReady()).toEqual([]);
    });
  });
});
