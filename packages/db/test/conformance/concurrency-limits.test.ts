import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendFor } from "../../src/backends/index.js";
import type { Driver } from "../../src/driver/types.js";
import { AlreadyExistsError, type ConcurrencyLimitV2, type Database, type DatabaseConfig, InvalidError, NotFoundError } from "../../src/index.js";
import { sql } from "../../src/sql.js";
import { insertSql, tables } from "../../src/tables.js";
import { selectedBackends } from "../../src/testing/backends.js";
import { describeEachBackend, openTestDatabase, type TestDatabase } from "../../src/testing/database.js";
import { now } from "../../src/timestamps.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeEachBackend("concurrency limits (v2)", (t) => {
  const create = (name: string, limit: number, extra: Partial<Omit<ConcurrencyLimitV2, "id" | "created" | "updated">> = {}) =>
    t.db.concurrencyLimits.create({ name, limit, ...extra });
  const byName = async (name: string) => {
    const limit = await t.db.concurrencyLimits.getByName(name);
    if (!limit) throw new Error(`no limit ${name}`);
    return limit;
  };

  describe("create, read, update, delete", () => {
    it("creates a limit with Prefect's defaults", async () => {
      const limit = await create("db", 5);
      expect(limit).toMatchObject({
        name: "db",
        limit: 5,
        active: true,
        active_slots: 0,
        denied_slots: 0,
        slot_decay_per_second: 0,
        avg_slot_occupancy_seconds: 2,
      });
      expect(limit.created).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      expect(await t.db.concurrencyLimits.get(limit.id)).toEqual(limit);
      expect(await t.db.concurrencyLimits.getByName("db")).toEqual(limit);
    });

    it("stores the optional fields given", async () => {
      const limit = await create("api", 10, { active: false, active_slots: 3, denied_slots: 2, slot_decay_per_second: 0.5 });
      expect(await t.db.concurrencyLimits.get(limit.id)).toMatchObject({ active: false, denied_slots: 2, slot_decay_per_second: 0.5 });
      // Reads show active slots after decay: at 0.5/s, none of the 3 has decayed yet (that takes 2 s).
      expect((await t.db.concurrencyLimits.get(limit.id))?.active_slots).toBeLessThanOrEqual(3);
    });

    it.each([
      ["an empty name", { name: "", limit: 1 }],
      ["a name with /", { name: "a/b", limit: 1 }],
      ["a name with %", { name: "a%b", limit: 1 }],
      ["a name with &", { name: "a&b", limit: 1 }],
      ["a name with >", { name: "a>b", limit: 1 }],
      ["a name with <", { name: "a<b", limit: 1 }],
      ["a negative limit", { name: "x", limit: -1 }],
      ["a fractional limit", { name: "x", limit: 1.5 }],
      ["a negative slot decay", { name: "x", limit: 1, slot_decay_per_second: -0.1 }],
      ["negative active slots", { name: "x", limit: 1, active_slots: -1 }],
      ["an unknown field", { name: "x", limit: 1, colour: "red" }],
      ["no limit", { name: "x" }],
    ])("refuses %s", async (_, input) => {
      await expect(t.db.concurrencyLimits.create(input as never)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.concurrencyLimits.read()).toEqual([]);
    });

    it("accepts a limit of 0 and names with other punctuation", async () => {
      await expect(create("tag:my-tag.v1 (beta)", 0)).resolves.toMatchObject({ limit: 0 });
    });

    it("refuses a duplicate name with AlreadyExistsError naming it", async () => {
      await create("shared", 1);
      const error = await create("shared", 2).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyExistsError);
      expect((error as Error).message).toContain('"shared"');
    });

    it("returns null for unknown ids and names, and refuses malformed ids", async () => {
      expect(await t.db.concurrencyLimits.get(randomUUID())).toBeNull();
      expect(await t.db.concurrencyLimits.getByName("missing")).toBeNull();
      await expect(t.db.concurrencyLimits.get("nope")).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.update("nope", { limit: 1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("finds a limit by its id in upper case", async () => {
      const limit = await create("upper", 1);
      expect((await t.db.concurrencyLimits.get(limit.id.toUpperCase()))?.id).toBe(limit.id);
    });

    it("reads every limit by name, with limit and offset", async () => {
      for (const name of ["c", "a", "d", "b"]) await create(name, 1);
      expect((await t.db.concurrencyLimits.read()).map((l) => l.name)).toEqual(["a", "b", "c", "d"]);
      expect((await t.db.concurrencyLimits.read({ limit: 2 })).map((l) => l.name)).toEqual(["a", "b"]);
      expect((await t.db.concurrencyLimits.read({ limit: 2, offset: 1 })).map((l) => l.name)).toEqual(["b", "c"]);
      expect((await t.db.concurrencyLimits.read({ offset: 3 })).map((l) => l.name)).toEqual(["d"]);
    });

    it("reads the limits with given names, ignoring unknown ones", async () => {
      for (const name of ["x", "y", "z"]) await create(name, 1);
      expect((await t.db.concurrencyLimits.readByNames(["z", "missing", "x", "x"])).map((l) => l.name)).toEqual(["x", "z"]);
      expect(await t.db.concurrencyLimits.readByNames([])).toEqual([]);
    });

    it("updates by id and by name, leaving other fields and moving `updated`", async () => {
      const limit = await create("old", 1, { slot_decay_per_second: 0.5 });
      const renamed = await t.db.concurrencyLimits.update(limit.id, { name: "new", limit: 7 });
      expect(renamed).toMatchObject({ id: limit.id, name: "new", limit: 7, slot_decay_per_second: 0.5, active: true });
      expect(renamed.updated > limit.updated).toBe(true);
      expect(renamed.created).toBe(limit.created);
      const deactivated = await t.db.concurrencyLimits.updateByName("new", { active: false, denied_slots: 4, slot_decay_per_second: 0 });
      expect(deactivated).toMatchObject({ id: limit.id, active: false, denied_slots: 4, slot_decay_per_second: 0, limit: 7 });
      // null fields change nothing
      expect(await t.db.concurrencyLimits.update(limit.id, { name: null, limit: null })).toMatchObject({ name: "new", limit: 7 });
      expect(await t.db.concurrencyLimits.getByName("old")).toBeNull();
    });

    it("validates updates as creates", async () => {
      const limit = await create("valid", 1);
      await expect(t.db.concurrencyLimits.update(limit.id, { name: "in/valid" })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.update(limit.id, { limit: -2 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.updateByName("valid", { slot_decay_per_second: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.update(limit.id, { unknown: 1 } as never)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.concurrencyLimits.get(limit.id)).toEqual(limit);
    });

    it("throws NotFoundError updating or deleting an unknown limit", async () => {
      await expect(t.db.concurrencyLimits.update(randomUUID(), { limit: 1 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.concurrencyLimits.updateByName("missing", { limit: 1 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.concurrencyLimits.delete(randomUUID())).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.concurrencyLimits.deleteByName("missing")).rejects.toBeInstanceOf(NotFoundError);
    });

    it("refuses renaming onto a taken name", async () => {
      await create("one", 1);
      const two = await create("two", 1);
      await expect(t.db.concurrencyLimits.update(two.id, { name: "one" })).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(t.db.concurrencyLimits.updateByName("two", { name: "one" })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("deletes by id and by name", async () => {
      const a = await create("a", 1);
      await create("b", 1);
      await t.db.concurrencyLimits.delete(a.id);
      await t.db.concurrencyLimits.deleteByName("b");
      expect(await t.db.concurrencyLimits.read()).toEqual([]);
    });
  });

  describe("incrementing and decrementing slots", () => {
    it("takes slots on every named limit and reports the limits found", async () => {
      await create("a", 3);
      await create("b", 5);
      const result = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["b", "a", "missing"] }, 2);
      expect(result.acquired).toBe(true);
      expect(result.limits.map((l) => l.name)).toEqual(["a", "b"]);
      expect((await byName("a")).active_slots).toBe(2);
      expect((await byName("b")).active_slots).toBe(2);
    });

    it("addresses limits by id as well", async () => {
      const a = await create("a", 2);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ ids: [a.id.toUpperCase()] }, 2)).acquired).toBe(true);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ ids: [a.id] }, 1)).acquired).toBe(false);
      await t.db.concurrencyLimits.decrementActiveSlots({ ids: [a.id] }, 1);
      expect((await byName("a")).active_slots).toBe(1);
      await expect(t.db.concurrencyLimits.incrementActiveSlots({ ids: ["bad"] }, 1)).rejects.toBeInstanceOf(InvalidError);
    });

    it("succeeds with nothing to take when no name has a limit", async () => {
      expect(await t.db.concurrencyLimits.incrementActiveSlots({ names: ["nothing"] }, 1)).toEqual({ acquired: true, limits: [] });
    });

    it("fills a limit exactly, then refuses, counting denied slots", async () => {
      await create("a", 3);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["a"] }, 2)).acquired).toBe(true);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["a"] }, 1)).acquired).toBe(true);
      const refused = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["a"] }, 1);
      expect(refused.acquired).toBe(false);
      const after = await byName("a");
      expect(after.active_slots).toBe(3);
      expect(after.denied_slots).toBeGreaterThanOrEqual(1);
    });

    it("is all or nothing across limits: one full limit leaves every other untouched", async () => {
      await create("free", 5);
      await create("full", 1, { active_slots: 1 });
      const refused = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["free", "full"] }, 1);
      expect(refused.acquired).toBe(false);
      expect(refused.limits.map((l) => l.name)).toEqual(["free", "full"]);
      expect((await byName("free")).active_slots).toBe(0);
      expect((await byName("full")).active_slots).toBe(1);
      // Prefect counts the denied slots on every active limit of the request.
      expect((await byName("free")).denied_slots).toBe(1);
      expect((await byName("full")).denied_slots).toBe(1);
    });

    it("ignores inactive limits: they neither take slots nor block", async () => {
      await create("on", 2);
      await create("off", 1, { active: false, active_slots: 1 });
      const result = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["on", "off"] }, 1);
      expect(result.acquired).toBe(true);
      expect(result.limits.map((l) => l.name)).toEqual(["off", "on"]);
      expect((await byName("off")).active_slots).toBe(1);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["on", "off"] }, 1);
      expect((await byName("off")).active_slots).toBe(1);
      expect((await byName("on")).active_slots).toBe(0);
    });

    it("refuses more slots than an active limit allows, and bad slot counts", async () => {
      await create("small", 2);
      await create("inactive", 1, { active: false });
      await expect(t.db.concurrencyLimits.incrementActiveSlots({ names: ["small"] }, 3)).rejects.toThrow("Slots requested is greater than the limit");
      await expect(t.db.concurrencyLimits.incrementActiveSlots({ names: ["small"] }, 3)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.incrementActiveSlots({ names: ["inactive"] }, 3)).resolves.toMatchObject({ acquired: true });
      for (const bad of [0, -1, 1.5]) {
        await expect(t.db.concurrencyLimits.incrementActiveSlots({ names: ["small"] }, bad)).rejects.toBeInstanceOf(InvalidError);
      }
      await expect(t.db.concurrencyLimits.decrementActiveSlots({ names: ["small"] }, -1)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.concurrencyLimits.incrementActiveSlots({ names: ["small"] }, 1, { mode: "other" } as never)).rejects.toBeInstanceOf(InvalidError);
      expect((await byName("small")).active_slots).toBe(0);
    });

    it("refuses rate_limit mode on limits without decay, naming them", async () => {
      await create("plain", 5);
      await create("rated", 5, { slot_decay_per_second: 0.5 });
      const error = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["plain", "rated"] }, 1, { mode: "rate_limit" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidError);
      expect((error as Error).message).toContain("do not have a decay configured: 'plain'");
      expect((error as Error).message).not.toContain("rated");
      expect(await t.db.concurrencyLimits.incrementActiveSlots({ names: ["rated"] }, 1, { mode: "rate_limit" })).toMatchObject({ acquired: true });
      expect((await byName("plain")).active_slots).toBe(0);
    });

    it("decrements, clamping at zero, and reports the limits found", async () => {
      await create("a", 5, { active_slots: 3 });
      await create("b", 5, { active_slots: 1 });
      const limits = await t.db.concurrencyLimits.decrementActiveSlots({ names: ["a", "b", "missing"] }, 2);
      expect(limits.map((l) => l.name)).toEqual(["a", "b"]);
      expect((await byName("a")).active_slots).toBe(1);
      expect((await byName("b")).active_slots).toBe(0);
      expect(await t.db.concurrencyLimits.decrementActiveSlots({ names: ["missing"] }, 1)).toEqual([]);
    });

    it("folds occupancy into the average over limit * 2 samples", async () => {
      await create("a", 10, { active_slots: 2 });
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["a"] }, 1, { occupancy_seconds: 5 });
      // 2 + 5/20 - 2/20
      expect((await byName("a")).avg_slot_occupancy_seconds).toBeCloseTo(2.15, 10);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["a"] }, 1);
      expect((await byName("a")).avg_slot_occupancy_seconds).toBeCloseTo(2.15, 10);
    });

    it("divides occupancy by the slots and never counts less than 0.1 s per slot", async () => {
      await create("a", 5, { active_slots: 4 });
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["a"] }, 2, { occupancy_seconds: 8 });
      // 4 s per slot: 2 + 4/10 - 2/10
      expect((await byName("a")).avg_slot_occupancy_seconds).toBeCloseTo(2.2, 10);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["a"] }, 2, { occupancy_seconds: 0.001 });
      // 0.1 s per slot: 2.2 + 0.1/10 - 2.2/10
      expect((await byName("a")).avg_slot_occupancy_seconds).toBeCloseTo(1.99, 10);
    });

    it("leaves the average of a limit of 0 alone (no division by zero)", async () => {
      await create("zero", 0);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["zero"] }, 1, { occupancy_seconds: 3 });
      expect(await byName("zero")).toMatchObject({ active_slots: 0, avg_slot_occupancy_seconds: 2 });
    });
  });

  describe("slot decay (rate limits)", () => {
    it("keeps slots of a limit without decay occupied over time", async () => {
      await create("steady", 1);
      await t.db.concurrencyLimits.incrementActiveSlots({ names: ["steady"] }, 1);
      await sleep(300);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["steady"] }, 1)).acquired).toBe(false);
      expect((await byName("steady")).active_slots).toBe(1);
    });

    it("frees slots of a rate limit as time passes", async () => {
      await create("fast", 2, { slot_decay_per_second: 10 });
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["fast"] }, 2, { mode: "rate_limit" })).acquired).toBe(true);
      await sleep(300);
      // At least floor(10 * 0.3) = 3 slots have decayed: reads show 0, and 2 slots fit again.
      expect((await byName("fast")).active_slots).toBe(0);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["fast"] }, 2, { mode: "rate_limit" })).acquired).toBe(true);
      expect((await byName("fast")).active_slots).toBeLessThanOrEqual(2);
    });

    it("does not free a slot before a whole slot has decayed", async () => {
      // 0.2 slots per second: the first slot frees itself only after 5 s.
      await create("slow", 1, { slot_decay_per_second: 0.2 });
      await t.db.concurrencyLimits.incrementActiveSlots({ names: ["slow"] }, 1, { mode: "rate_limit" });
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["slow"] }, 1, { mode: "rate_limit" })).acquired).toBe(false);
      expect((await byName("slow")).active_slots).toBe(1);
    });

    it("decays the slots a refusal would otherwise forget", async () => {
      await create("burst", 3, { slot_decay_per_second: 10 });
      await t.db.concurrencyLimits.incrementActiveSlots({ names: ["burst"] }, 3);
      await sleep(150);
      // At least one slot has decayed, not three: taking 3 is refused, and that refusal keeps the decay.
      const refusal = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["burst"] }, 3);
      if (!refusal.acquired) expect((await byName("burst")).active_slots).toBeLessThanOrEqual(2);
      await sleep(350);
      expect((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["burst"] }, 3)).acquired).toBe(true);
    });

    it("keeps the decay a rate limit earns while callers retry faster than a slot decays", async () => {
      // A slot every 0.5 s, and a refused call every 50 ms: each call must keep the fraction of a
      // slot earned so far (a reset clock would never reach a whole slot).
      await create("hammered", 2, { slot_decay_per_second: 2 });
      await t.db.concurrencyLimits.incrementActiveSlots({ names: ["hammered"] }, 2, { mode: "rate_limit" });
      let acquired = false;
      const deadline = Date.now() + 10_000;
      while (!acquired && Date.now() < deadline) {
        acquired = (await t.db.concurrencyLimits.incrementActiveSlots({ names: ["hammered"] }, 1, { mode: "rate_limit" })).acquired;
        if (!acquired) await sleep(50);
      }
      expect(acquired).toBe(true);
      // The same holds for successful calls: taking the slots that decay one by one never stalls.
      let taken = 0;
      while (taken < 3 && Date.now() < deadline) {
        if ((await t.db.concurrencyLimits.incrementActiveSlots({ names: ["hammered"] }, 1, { mode: "rate_limit" })).acquired) taken += 1;
        else await sleep(50);
      }
      expect(taken).toBe(3);
    });

    it("decays denied slots of a rate limit at its decay rate", async () => {
      await create("rated", 1, { slot_decay_per_second: 10, active_slots: 1 });
      await t.db.concurrencyLimits.update((await byName("rated")).id, { denied_slots: 3 });
      await sleep(450);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["rated"] }, 0);
      expect((await byName("rated")).denied_slots).toBe(0);
    });

    it("decays denied slots of a concurrency limit at one per clamped average occupancy", async () => {
      // Average occupancy 2 s, clamped to the 0.1 s wait bound: 10 denied slots decay per second.
      await create("plain", 1, { denied_slots: 3 });
      await create("tag:t", 1, { denied_slots: 3 });
      await sleep(450);
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["plain"] }, 1, { maximum_slot_wait_seconds: 0.1, tag_slot_wait_seconds: 1000 });
      await t.db.concurrencyLimits.decrementActiveSlots({ names: ["tag:t"] }, 1, { maximum_slot_wait_seconds: 1000, tag_slot_wait_seconds: 0.1 });
      expect((await byName("plain")).denied_slots).toBe(0);
      expect((await byName("tag:t")).denied_slots).toBe(0);
    });
  });

  describe("retry hints", () => {
    it("derive from the average occupancy of a concurrency limit, per slot of limit", async () => {
      await create("pair", 2, { active_slots: 2 });
      const first = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["pair"] }, 1);
      if (first.acquired) throw new Error("expected a refusal");
      // (1 slot + 0 denied) / limit 2 * 2 s
      expect(first.retry.blocking_limit.name).toBe("pair");
      expect(first.retry.average_interval_seconds).toBeCloseTo(1, 10);
      await t.db.concurrencyLimits.update((await byName("pair")).id, { denied_slots: 5 });
      const second = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["pair"] }, 1);
      if (second.acquired) throw new Error("expected a refusal");
      // (1 + 5) / 2 * 2 s = 6 s
      expect(second.retry.average_interval_seconds).toBeCloseTo(6, 10);
      const capped = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["pair"] }, 1, { maximum_slot_wait_seconds: 1.5 });
      if (capped.acquired) throw new Error("expected a refusal");
      // capped at the wait bound
      expect(capped.retry.average_interval_seconds).toBeCloseTo(1.5, 10);
    });

    it("use the tag wait bound for tag limits", async () => {
      await create("tag:etl", 1, { active_slots: 1 });
      const refused = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["tag:etl"] }, 1, { tag_slot_wait_seconds: 0.5, maximum_slot_wait_seconds: 100 });
      if (refused.acquired) throw new Error("expected a refusal");
      // min(min(2, 0.5) * 1, 0.5)
      expect(refused.retry.average_interval_seconds).toBeCloseTo(0.5, 10);
    });

    it("derive from the decay rate of a rate limit, uncapped", async () => {
      await create("rated", 1, { slot_decay_per_second: 0.25, active_slots: 1, denied_slots: 3 });
      const refused = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["rated"] }, 1, { maximum_slot_wait_seconds: 1 });
      if (refused.acquired) throw new Error("expected a refusal");
      // (1 + 3) / 0.25
      expect(refused.retry.average_interval_seconds).toBeCloseTo(16, 10);
    });

    it("name the most contended limit", async () => {
      await create("roomy", 10);
      await create("tight", 1, { active_slots: 1, denied_slots: 1 });
      const refused = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["roomy", "tight"] }, 1);
      if (refused.acquired) throw new Error("expected a refusal");
      expect(refused.retry.blocking_limit.name).toBe("tight");
      // (1 + 1) / 1 * 2 s
      expect(refused.retry.average_interval_seconds).toBeCloseTo(4, 10);
    });
  });

  describe("under concurrent callers", () => {
    it("lets exactly `limit` of 50 concurrent increments through", async () => {
      await create("ten", 10);
      const results = await Promise.all(Array.from({ length: 50 }, () => t.db.concurrencyLimits.incrementActiveSlots({ names: ["ten"] }, 1)));
      expect(results.filter((r) => r.acquired)).toHaveLength(10);
      expect((await byName("ten")).active_slots).toBe(10);
    });

    it("never lets holders exceed the limit with increments and decrements interleaved, and ends at zero", async () => {
      await create("pool", 4);
      let holders = 0;
      let peak = 0;
      let taken = 0;
      const worker = async () => {
        for (let i = 0; i < 6; i++) {
          const result = await t.db.concurrencyLimits.incrementActiveSlots({ names: ["pool"] }, 1);
          if (!result.acquired) continue;
          taken++;
          holders++;
          peak = Math.max(peak, holders);
          await sleep(1);
          holders--;
          await t.db.concurrencyLimits.decrementActiveSlots({ names: ["pool"] }, 1, { occupancy_seconds: 0.5 });
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      expect(taken).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(4);
      expect((await byName("pool")).active_slots).toBe(0);
    });

    it("stays all or nothing across two limits under contention, in any name order", async () => {
      await create("a", 3);
      await create("b", 3);
      const calls = [
        ...Array.from({ length: 15 }, () => ["a", "b"]),
        ...Array.from({ length: 15 }, () => ["b", "a"]),
        ...Array.from({ length: 15 }, () => ["a"]),
      ];
      const results = await Promise.all(calls.map((names) => t.db.concurrencyLimits.incrementActiveSlots({ names }, 1)));
      const both = results.filter((r, i) => r.acquired && calls[i]!.length === 2).length;
      const onlyA = results.filter((r, i) => r.acquired && calls[i]!.length === 1).length;
      // Every caller wants a slot of `a`: exactly 3 got one, and `b` holds exactly the two-limit winners.
      expect(both + onlyA).toBe(3);
      expect((await byName("a")).active_slots).toBe(3);
      expect((await byName("b")).active_slots).toBe(both);
    });

    it("keeps one limit of many busy limits consistent when callers take several", async () => {
      for (const name of ["p", "q", "r"]) await create(name, 6);
      const sets = [["p", "q"], ["q", "r"], ["r", "p"], ["p", "q", "r"]];
      const calls = Array.from({ length: 40 }, (_, i) => sets[i % sets.length]!);
      const results = await Promise.all(calls.map((names, i) => t.db.concurrencyLimits.incrementActiveSlots({ names }, 1 + (i % 2))));
      const expected = { p: 0, q: 0, r: 0 } as Record<string, number>;
      results.forEach((r, i) => {
        if (r.acquired) for (const name of calls[i]!) expected[name]! += 1 + (i % 2);
      });
      for (const name of ["p", "q", "r"]) {
        const limit = await byName(name);
        expect(limit.active_slots).toBe(expected[name]);
        expect(limit.active_slots).toBeLessThanOrEqual(6);
      }
    });
  });
});

describeEachBackend("tag concurrency limits (v1 adapter)", (t) => {
  const limits = () => t.db.concurrencyLimits;

  it("creates a tag limit as the v2 limit `tag:<tag>`, and updates its limit on a second create", async () => {
    const first = await limits().createTagLimit({ tag: "db", concurrency_limit: 2 });
    expect(first.created).toBe(true);
    expect(first.row).toMatchObject({ tag: "db", concurrency_limit: 2, active_slots: [], active: true, source: "v2" });
    const v2 = await limits().getByName("tag:db");
    expect(v2).toMatchObject({ id: first.row.id, limit: 2, active: true, slot_decay_per_second: 0, avg_slot_occupancy_seconds: 2 });
    const second = await limits().createTagLimit({ tag: "db", concurrency_limit: 5 });
    expect(second.created).toBe(false);
    expect(second.row).toMatchObject({ id: first.row.id, concurrency_limit: 5 });
    expect(second.row.updated > first.row.updated).toBe(true);
    expect((await limits().getByName("tag:db"))?.limit).toBe(5);
  });

  it("gives one winner to concurrent creates of the same tag", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => limits().createTagLimit({ tag: "race", concurrency_limit: i + 1 })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
    expect(await limits().readByNames(["tag:race"])).toHaveLength(1);
  });

  it.each([
    ["a tag with /", { tag: "a/b", concurrency_limit: 1 }],
    ["a negative limit", { tag: "a", concurrency_limit: -1 }],
    ["no limit", { tag: "a" }],
    ["an unknown field", { tag: "a", concurrency_limit: 1, extra: true }],
  ])("refuses %s", async (_, input) => {
    await expect(limits().createTagLimit(input as never)).rejects.toBeInstanceOf(InvalidError);
  });

  it("reads tag limits by id and by tag, never other global limits", async () => {
    const { row } = await limits().createTagLimit({ tag: "etl", concurrency_limit: 3 });
    const global = await limits().create({ name: "etl", limit: 1 });
    expect(await limits().getTagLimit(row.id)).toMatchObject({ id: row.id, tag: "etl", concurrency_limit: 3 });
    expect(await limits().getTagLimitByTag("etl")).toMatchObject({ id: row.id });
    expect(await limits().getTagLimit(global.id)).toBeNull();
    expect(await limits().getTagLimit(randomUUID())).toBeNull();
    expect(await limits().getTagLimitByTag("missing")).toBeNull();
    await expect(limits().getTagLimit("bad")).rejects.toBeInstanceOf(InvalidError);
  });

  it("reads every tag limit by tag, with limit and offset", async () => {
    for (const tag of ["c", "a", "b"]) await limits().createTagLimit({ tag, concurrency_limit: 1 });
    await limits().create({ name: "not-a-tag", limit: 1 });
    expect((await limits().readTagLimits()).map((l) => l.tag)).toEqual(["a", "b", "c"]);
    expect((await limits().readTagLimits({ limit: 1, offset: 1 })).map((l) => l.tag)).toEqual(["b"]);
    expect((await limits().readTagLimits()).every((l) => l.source === "v2" && l.active)).toBe(true);
  });

  it("reads the limits on a list of tags, for orchestration", async () => {
    for (const tag of ["x", "y", "z"]) await limits().createTagLimit({ tag, concurrency_limit: 1 });
    expect((await limits().readTagLimitsForTags(["z", "x", "nope", "x"])).map((l) => l.tag)).toEqual(["x", "z"]);
    expect(await limits().readTagLimitsForTags([])).toEqual([]);
  });

  it("resets occupied slots to the override, or to none", async () => {
    await limits().createTagLimit({ tag: "r", concurrency_limit: 5 });
    await limits().incrementActiveSlots({ names: ["tag:r"] }, 4);
    const holders = [randomUUID(), randomUUID()];
    const reset = await limits().resetTagLimit("r", [...holders, holders[0]!.toUpperCase()]);
    expect(reset).toMatchObject({ tag: "r", concurrency_limit: 5 });
    expect((await limits().getByName("tag:r"))?.active_slots).toBe(2);
    await limits().resetTagLimit("r");
    expect((await limits().getByName("tag:r"))?.active_slots).toBe(0);
    expect(await limits().resetTagLimit("missing")).toBeNull();
    await expect(limits().resetTagLimit("r", ["not-a-uuid"])).rejects.toBeInstanceOf(InvalidError);
  });

  it("deletes by id and by tag, and not other global limits", async () => {
    const a = await limits().createTagLimit({ tag: "a", concurrency_limit: 1 });
    await limits().createTagLimit({ tag: "b", concurrency_limit: 1 });
    const global = await limits().create({ name: "global", limit: 1 });
    await limits().deleteTagLimit(a.row.id);
    await limits().deleteTagLimitByTag("b");
    expect(await limits().readTagLimits()).toEqual([]);
    await expect(limits().deleteTagLimit(a.row.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(limits().deleteTagLimitByTag("b")).rejects.toBeInstanceOf(NotFoundError);
    await expect(limits().deleteTagLimit(global.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await limits().get(global.id)).not.toBeNull();
  });

  describe("slots for a task run", () => {
    it("takes one slot on the limit of every tag that has one", async () => {
      await limits().createTagLimit({ tag: "a", concurrency_limit: 2 });
      await limits().createTagLimit({ tag: "b", concurrency_limit: 1 });
      const result = await limits().incrementTagSlots(["a", "b", "untracked"], randomUUID());
      expect(result.status).toBe("acquired");
      if (result.status !== "acquired") return;
      expect(result.limits.map((l) => l.name).sort()).toEqual(["tag:a", "tag:b"]);
      expect(result.legacy).toEqual([]);
      expect((await limits().getByName("tag:a"))?.active_slots).toBe(1);
      expect((await limits().getByName("tag:b"))?.active_slots).toBe(1);
    });

    it("refuses a limit of 0 before taking anything", async () => {
      await limits().createTagLimit({ tag: "open", concurrency_limit: 3 });
      await limits().createTagLimit({ tag: "closed", concurrency_limit: 0 });
      expect(await limits().incrementTagSlots(["open", "closed"], randomUUID())).toEqual({ status: "zero_limit", tag: "closed" });
      expect((await limits().getByName("tag:open"))?.active_slots).toBe(0);
    });

    it("refuses when one tag's limit is full, taking nothing, and names that tag", async () => {
      await limits().createTagLimit({ tag: "open", concurrency_limit: 3 });
      await limits().createTagLimit({ tag: "full", concurrency_limit: 1 });
      await limits().incrementActiveSlots({ names: ["tag:full"] }, 1);
      const result = await limits().incrementTagSlots(["open", "full"], randomUUID());
      expect(result).toMatchObject({ status: "limit_reached", tag: "full" });
      expect((await limits().getByName("tag:open"))?.active_slots).toBe(0);
      expect((await limits().getByName("tag:full"))?.active_slots).toBe(1);
    });

    it("ignores inactive tag limits", async () => {
      await limits().createTagLimit({ tag: "paused", concurrency_limit: 1 });
      await limits().updateByName("tag:paused", { active: false, active_slots: 1 });
      expect(await limits().incrementTagSlots(["paused"], randomUUID())).toEqual({ status: "acquired", limits: [], legacy: [] });
    });

    it("frees the slots of the task run's leases", async () => {
      const a = await limits().createTagLimit({ tag: "a", concurrency_limit: 2 });
      const b = await limits().createTagLimit({ tag: "b", concurrency_limit: 2 });
      const run = randomUUID();
      await limits().incrementTagSlots(["a", "b"], run);
      await limits().incrementTagSlots(["a"], randomUUID());
      const released = await limits().decrementTagSlots(["a", "b"], run, [{ resource_ids: [a.row.id, b.row.id], slots: 1 }]);
      expect(released.limits.map((l) => l.name)).toEqual(["tag:a", "tag:b"]);
      expect(released.legacy).toEqual([]);
      expect((await limits().getByName("tag:a"))?.active_slots).toBe(1);
      expect((await limits().getByName("tag:b"))?.active_slots).toBe(0);
      // Without a lease there is nothing to free.
      await limits().decrementTagSlots(["a"], run, []);
      expect((await limits().getByName("tag:a"))?.active_slots).toBe(1);
      await expect(limits().decrementTagSlots(["a"], run, [{ resource_ids: ["bad"], slots: 1 }])).rejects.toBeInstanceOf(InvalidError);
      await expect(limits().incrementTagSlots(["a"], "bad")).rejects.toBeInstanceOf(InvalidError);
    });

    it("gives a slot to exactly `limit` of many concurrent task runs", async () => {
      await limits().createTagLimit({ tag: "busy", concurrency_limit: 4 });
      await limits().createTagLimit({ tag: "wide", concurrency_limit: 100 });
      const results = await Promise.all(Array.from({ length: 30 }, () => limits().incrementTagSlots(["wide", "busy"], randomUUID())));
      expect(results.filter((r) => r.status === "acquired")).toHaveLength(4);
      expect(results.filter((r) => r.status === "limit_reached" && r.tag === "busy")).toHaveLength(26);
      expect((await limits().getByName("tag:busy"))?.active_slots).toBe(4);
      expect((await limits().getByName("tag:wide"))?.active_slots).toBe(4);
    });
  });
});

/** A second connection to the test database, to write what this package never writes (legacy v1 rows). */
async function openRaw(config: DatabaseConfig): Promise<Driver> {
  return backendFor(config).connect({ ...config, timeoutSeconds: 5 });
}

// Legacy rows need a second connection, which an in-memory SQLite database cannot have.
for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`tag concurrency limits over legacy v1 rows [${backend}]`, () => {
    let test: TestDatabase | undefined;
    let raw: Driver | undefined;
    const db = (): Database => test!.db;
    const legacy = async (tag: string, concurrencyLimit: number, activeSlots: string[] = []) => {
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, tag, concurrency_limit: concurrencyLimit, active_slots: activeSlots };
      await raw!.execute(insertSql(tables.concurrency_limit, row));
      return row;
    };

    beforeEach(async () => {
      test = await openTestDatabase(backend);
      raw = await openRaw(test.config);
    });
    afterEach(async () => {
      await raw?.close();
      await test?.cleanup();
    });

    it("reads legacy rows where no tag: limit exists, preferring the v2 limit", async () => {
      const holder = randomUUID();
      const old = await legacy("old", 3, [holder]);
      const shadowed = await legacy("both", 9);
      const { row: v2 } = await db().concurrencyLimits.createTagLimit({ tag: "both", concurrency_limit: 2 });
      expect(await db().concurrencyLimits.getTagLimit(old.id)).toMatchObject({ tag: "old", concurrency_limit: 3, active_slots: [holder], source: "v1" });
      expect(await db().concurrencyLimits.getTagLimitByTag("old")).toMatchObject({ id: old.id, source: "v1" });
      expect(await db().concurrencyLimits.getTagLimitByTag("both")).toMatchObject({ id: v2.id, source: "v2", concurrency_limit: 2 });
      expect(await db().concurrencyLimits.getTagLimit(shadowed.id)).toMatchObject({ source: "v1", concurrency_limit: 9 });
      await db().concurrencyLimits.createTagLimit({ tag: "new", concurrency_limit: 1 });
      expect((await db().concurrencyLimits.readTagLimits()).map((l) => [l.tag, l.source])).toEqual([
        ["both", "v2"],
        ["new", "v2"],
        ["old", "v1"],
      ]);
      expect((await db().concurrencyLimits.readTagLimits({ offset: 2 }))[0]).toMatchObject({ id: old.id, active_slots: [holder] });
      expect((await db().concurrencyLimits.readTagLimitsForTags(["old", "both"])).map((l) => [l.tag, l.source])).toEqual([
        ["both", "v2"],
        ["old", "v1"],
      ]);
    });

    it("never inserts legacy rows: creating a tag limit makes a v2 limit beside the legacy row", async () => {
      await legacy("tagged", 1);
      const { row } = await db().concurrencyLimits.createTagLimit({ tag: "tagged", concurrency_limit: 4 });
      expect(row.source).toBe("v2");
      const rows = await raw!.query<{ n: number }>(sql`SELECT count(*) AS n FROM concurrency_limit`);
      expect(Number(rows[0]!.n)).toBe(1);
      expect((await db().concurrencyLimits.getByName("tagged"))).toBeNull();
      expect((await db().concurrencyLimits.getByName("tag:tagged"))?.limit).toBe(4);
    });

    it("takes and frees slots of legacy rows for a task run, refusing zero and full limits", async () => {
      const row = await legacy("old", 2);
      const first = randomUUID();
      const second = randomUUID();
      const taken = await db().concurrencyLimits.incrementTagSlots(["old"], first);
      expect(taken).toMatchObject({ status: "acquired", limits: [], legacy: [{ id: row.id, active_slots: [first] }] });
      // The same run again keeps one entry.
      await db().concurrencyLimits.incrementTagSlots(["old"], first);
      expect((await db().concurrencyLimits.getTagLimit(row.id))?.active_slots).toEqual([first]);
      await db().concurrencyLimits.incrementTagSlots(["old"], second);
      expect(await db().concurrencyLimits.incrementTagSlots(["old"], randomUUID())).toMatchObject({ status: "limit_reached", tag: "old" });
      const released = await db().concurrencyLimits.decrementTagSlots(["old"], first, []);
      expect(released.legacy.map((l) => l.active_slots)).toEqual([[second]]);
      expect((await db().concurrencyLimits.getTagLimit(row.id))?.active_slots).toEqual([second]);
      await legacy("zero", 0);
      expect(await db().concurrencyLimits.incrementTagSlots(["old", "zero"], randomUUID())).toEqual({ status: "zero_limit", tag: "zero" });
    });

    it("takes nothing from legacy rows when a v2 tag limit refuses", async () => {
      const row = await legacy("old", 5);
      await db().concurrencyLimits.createTagLimit({ tag: "full", concurrency_limit: 1 });
      await db().concurrencyLimits.incrementActiveSlots({ names: ["tag:full"] }, 1);
      expect(await db().concurrencyLimits.incrementTagSlots(["old", "full"], randomUUID())).toMatchObject({ status: "limit_reached", tag: "full" });
      expect((await db().concurrencyLimits.getTagLimit(row.id))?.active_slots).toEqual([]);
    });

    it("resets and deletes legacy rows", async () => {
      const row = await legacy("old", 5, [randomUUID()]);
      const holder = randomUUID();
      expect(await db().concurrencyLimits.resetTagLimit("old", [holder])).toMatchObject({ id: row.id, active_slots: [holder], source: "v1" });
      expect((await db().concurrencyLimits.getTagLimit(row.id))?.active_slots).toEqual([holder]);
      await db().concurrencyLimits.resetTagLimit("old");
      expect((await db().concurrencyLimits.getTagLimit(row.id))?.active_slots).toEqual([]);
      await db().concurrencyLimits.deleteTagLimit(row.id);
      expect(await db().concurrencyLimits.getTagLimit(row.id)).toBeNull();
      await legacy("other", 1);
      await db().concurrencyLimits.deleteTagLimitByTag("other");
      expect(await db().concurrencyLimits.getTagLimitByTag("other")).toBeNull();
    });
  });
}
