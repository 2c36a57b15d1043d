import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { startLoops as startServices } from "../src/loops/index.js";
import { loadServerSettings } from "../src/settings.js";
import { describeApi, type TestServer } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const INTEGRITY = "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.";
const LEASE_GONE = "Lease not found - it may have expired or been revoked";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const locs = (body: { detail: { loc: unknown[] }[] }) => body.detail.map((d) => d.loc);

/** A request whose answer Prefect's OpenAPI document does not describe (its plain-detail 422s). */
async function raw(server: TestServer, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}/api${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: await response.json() };
}

/** Polls `read` until `done` holds, for at most `timeoutMs`; returns the last value read. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(50);
  }
}

/** Bounds of Prefect's clamped Poisson jitter (clamping factor 0.3) around an average interval. */
const jitterBounds = (average: number) => [average * Math.log2(2 ** 1.3 / (2 ** 1.3 - 1)) - 1e-9, average * 1.3 + 1e-9] as const;

function helpers(server: () => TestServer) {
  const create = (body: Record<string, unknown>) => server().request("POST", "/v2/concurrency_limits/", body);
  const read = async (idOrName: string) => (await server().request("GET", `/v2/concurrency_limits/${encodeURIComponent(idOrName)}`)).body;
  const increment = (names: string[], slots = 1, extra: Record<string, unknown> = {}) =>
    server().request("POST", "/v2/concurrency_limits/increment", { names, slots, ...extra });
  const decrement = (names: string[], slots = 1, extra: Record<string, unknown> = {}) =>
    server().request("POST", "/v2/concurrency_limits/decrement", { names, slots, ...extra });
  const withLease = (names: string[], slots = 1, extra: Record<string, unknown> = {}) =>
    server().request("POST", "/v2/concurrency_limits/increment-with-lease", { names, slots, ...extra });
  const release = (leaseId: string) => server().request("POST", "/v2/concurrency_limits/decrement-with-lease", { lease_id: leaseId });
  const renew = (leaseId: string, body: Record<string, unknown> = {}) => server().request("POST", `/v2/concurrency_limits/leases/${leaseId}/renew`, body);
  const slotsOf = async (name: string) => (await read(name)).active_slots as number;
  return { create, read, increment, decrement, withLease, release, renew, slotsOf };
}

describeApi(
  "concurrency limits v2 API",
  (t) => {
    const { create, read, increment, decrement, withLease, release, renew, slotsOf } = helpers(() => t.server);

    it("creates a limit (201) with Prefect's defaults and reads it by id and by name", async () => {
      const created = await create({ name: "database", limit: 5 });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        name: "database",
        limit: 5,
        active: true,
        active_slots: 0,
        denied_slots: 0,
        slot_decay_per_second: 0,
        avg_slot_occupancy_seconds: 2,
      });
      const expected = { id: created.body.id, created: created.body.created, updated: created.body.updated, active: true, name: "database", limit: 5, active_slots: 0, slot_decay_per_second: 0 };
      expect(await read(created.body.id)).toEqual(expected);
      expect(await read("database")).toEqual(expected);
      // Python's UUID() reads other spellings of the id too.
      expect(await read(created.body.id.replaceAll("-", "").toUpperCase())).toEqual(expected);
      const full = await create({ name: "rated", limit: 3, active: false, active_slots: 2, denied_slots: 1, slot_decay_per_second: 0.25 });
      expect(full.body).toMatchObject({ active: false, active_slots: 2, denied_slots: 1, slot_decay_per_second: 0.25 });
    });

    it("answers 409 for a taken name, on create and on rename, changing nothing", async () => {
      const first = await create({ name: "taken", limit: 1 });
      expect(await create({ name: "taken", limit: 9 })).toMatchObject({ status: 409, body: { detail: INTEGRITY } });
      const other = await create({ name: "other", limit: 2 });
      expect(await t.server.request("PATCH", `/v2/concurrency_limits/${other.body.id}`, { name: "taken", limit: 7 })).toMatchObject({
        status: 409,
        body: { detail: INTEGRITY },
      });
      expect(await read("taken")).toMatchObject({ id: first.body.id, limit: 1 });
      expect(await read("other")).toMatchObject({ id: other.body.id, limit: 2 });
    });

    it("answers 404 'Concurrency Limit not found' for unknown ids and names", async () => {
      const notFound = { status: 404, body: { detail: "Concurrency Limit not found" } };
      expect(await t.server.request("GET", `/v2/concurrency_limits/${MISSING}`)).toMatchObject(notFound);
      expect(await t.server.request("GET", "/v2/concurrency_limits/nope")).toMatchObject(notFound);
      expect(await t.server.request("PATCH", `/v2/concurrency_limits/${MISSING}`, { limit: 1 })).toMatchObject(notFound);
      expect(await t.server.request("PATCH", "/v2/concurrency_limits/nope", { limit: 1 })).toMatchObject(notFound);
      expect(await t.server.request("DELETE", `/v2/concurrency_limits/${MISSING}`)).toMatchObject(notFound);
      expect(await t.server.request("DELETE", "/v2/concurrency_limits/nope")).toMatchObject(notFound);
    });

    it("answers bad bodies with 422 listing each problem, writing nothing", async () => {
      const bad = await create({ name: "a/b", limit: -1, active_slots: 1.5, colour: "red" });
      expect(bad.status).toBe(422);
      expect(locs(bad.body)).toEqual(expect.arrayContaining([["body", "name"], ["body", "limit"], ["body", "active_slots"], ["body", "colour"]]));
      expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[1] === "name").msg).toBe("String should match pattern '^[^/%&><]+$'");
      const missing = await create({ name: "x" });
      expect(missing.status).toBe(422);
      expect(missing.body.detail).toEqual([expect.objectContaining({ loc: ["body", "limit"], msg: "Field required" })]);
      expect((await create({ name: "", limit: 1 })).status).toBe(422);

      const limit = await create({ name: "kept", limit: 3 });
      const badUpdate = await t.server.request("PATCH", "/v2/concurrency_limits/kept", { limit: -2, slot_decay_per_second: -1, extra: true });
      expect(badUpdate.status).toBe(422);
      expect(locs(badUpdate.body)).toEqual(expect.arrayContaining([["body", "limit"], ["body", "slot_decay_per_second"], ["body", "extra"]]));
      expect(await read(limit.body.id)).toMatchObject({ limit: 3, slot_decay_per_second: 0 });

      expect(locs((await increment(["kept"], 0)).body)).toEqual([["body", "slots"]]);
      expect(locs((await t.server.request("POST", "/v2/concurrency_limits/increment", { slots: 1 })).body)).toEqual([["body", "names"]]);
      expect(locs((await increment(["kept"], 1, { mode: "fast" })).body)).toEqual([["body", "mode"]]);
      expect(locs((await decrement(["kept"], -1)).body)).toEqual([["body", "slots"]]);
      expect(locs((await decrement(["kept"], 1, { occupancy_seconds: 0 })).body)).toEqual([["body", "occupancy_seconds"]]);
      expect(locs((await withLease(["kept"], 1, { lease_duration: 59 })).body)).toEqual([["body", "lease_duration"]]);
      expect(locs((await withLease(["kept"], 1, { lease_duration: 86_401 })).body)).toEqual([["body", "lease_duration"]]);
      expect(locs((await withLease(["kept"], 1, { holder: { type: "robot", id: randomUUID() } })).body)).toEqual([["body", "holder", "type"]]);
      expect(locs((await release("not-a-uuid")).body)).toEqual([["body", "lease_id"]]);
      expect(locs((await renew("not-a-uuid")).body)).toEqual([["path", "lease_id"]]);
      expect(locs((await renew(randomUUID(), { lease_duration: 10 })).body)).toEqual([["body", "lease_duration"]]);
      expect(await slotsOf("kept")).toBe(0);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });

    it("updates by id and by name (204), leaving other fields, and deletes by id and by name (204)", async () => {
      const limit = await create({ name: "api", limit: 4, slot_decay_per_second: 0.5 });
      expect((await t.server.request("PATCH", `/v2/concurrency_limits/${limit.body.id}`, { limit: 8, active: false })).status).toBe(204);
      expect(await read("api")).toMatchObject({ limit: 8, active: false, slot_decay_per_second: 0.5 });
      expect((await t.server.request("PATCH", "/v2/concurrency_limits/api", { name: "api-v2", limit: null })).status).toBe(204);
      expect(await read(limit.body.id)).toMatchObject({ name: "api-v2", limit: 8 });
      expect(Date.parse((await read(limit.body.id)).updated)).toBeGreaterThan(Date.parse(limit.body.updated));

      const other = await create({ name: "other", limit: 1 });
      expect((await t.server.request("DELETE", "/v2/concurrency_limits/api-v2")).status).toBe(204);
      expect((await t.server.request("DELETE", `/v2/concurrency_limits/${other.body.id}`)).status).toBe(204);
      expect((await t.server.request("GET", `/v2/concurrency_limits/${limit.body.id}`)).status).toBe(404);
      expect((await t.server.request("POST", "/v2/concurrency_limits/filter", {})).body).toEqual([]);
    });

    it("filters every limit by name, with limit and offset, refusing pages above 200", async () => {
      for (const name of ["c", "a", "b", "tag:z"]) await create({ name, limit: 1 });
      const names = async (body: Record<string, unknown>) => (await t.server.request("POST", "/v2/concurrency_limits/filter", body)).body.map((l: { name: string }) => l.name);
      expect(await names({})).toEqual(["a", "b", "c", "tag:z"]);
      expect(await names({ limit: 2, offset: 1 })).toEqual(["b", "c"]);
      const page = await t.server.request("POST", "/v2/concurrency_limits/filter", { limit: 1 });
      expect(Object.keys(page.body[0]).sort()).toEqual(["active", "active_slots", "created", "id", "limit", "name", "slot_decay_per_second", "updated"]);
      expect((await t.server.request("POST", "/v2/concurrency_limits/filter", { limit: 201 })).status).toBe(422);
      expect((await t.server.request("POST", "/v2/concurrency_limits/filter", { offset: -1 })).status).toBe(422);
    });

    it("publishes Prefect's lifecycle events for created, updated and deleted limits", async () => {
      const seen: ReceivedEvent[] = [];
      t.server.context.events.subscribe((events) => seen.push(...events));
      const limit = await create({ name: "evented", limit: 2 });
      await t.server.request("PATCH", "/v2/concurrency_limits/evented", { limit: 3 });
      await t.server.request("DELETE", "/v2/concurrency_limits/evented");
      await create({ name: "evented", limit: 9 });
      await create({ name: "evented", limit: 9 });
      expect(seen.map((e) => e.event)).toEqual([
        "prefect.concurrency-limit.created",
        "prefect.concurrency-limit.updated",
        "prefect.concurrency-limit.deleted",
        "prefect.concurrency-limit.created",
      ]);
      expect(seen[0]!.resource).toEqual({ "prefect.resource.id": `prefect.concurrency-limit.${limit.body.id}`, "prefect.resource.name": "evented" });
      expect(seen[1]!.payload).toEqual({ name: "evented", limit: 3, active: true, slot_decay_per_second: 0 });
    });

    it("takes slots on every named limit at once, ignoring unknown names and inactive limits, and gives them back", async () => {
      const a = await create({ name: "a", limit: 3 });
      const b = await create({ name: "b", limit: 2 });
      const off = await create({ name: "off", limit: 1, active: false });
      const taken = await increment(["a", "b", "off", "unknown"], 2);
      expect(taken.status).toBe(200);
      expect(taken.body).toEqual(
        expect.arrayContaining([
          { id: a.body.id, name: "a", limit: 3 },
          { id: b.body.id, name: "b", limit: 2 },
          { id: off.body.id, name: "off", limit: 1 },
        ]),
      );
      expect(taken.body).toHaveLength(3);
      expect([await slotsOf("a"), await slotsOf("b"), await slotsOf("off")]).toEqual([2, 2, 0]);
      // No limit named: nothing to take, nothing refused.
      expect(await increment(["unknown"], 5)).toMatchObject({ status: 200, body: [] });
      expect(await increment([], 1)).toMatchObject({ status: 200, body: [] });

      const given = await decrement(["a", "b", "unknown"], 1, { occupancy_seconds: 4 });
      expect(given.status).toBe(200);
      expect(given.body.map((l: { name: string }) => l.name).sort()).toEqual(["a", "b"]);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([1, 1]);
      // Giving back more than is held stops at zero; `create_if_missing` is accepted and ignored.
      expect((await decrement(["a", "b"], 5, { create_if_missing: true })).status).toBe(200);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([0, 0]);
      expect(await decrement(["nothing"], 1)).toMatchObject({ status: 200, body: [] });
      expect((await increment(["ghost"], 1, { create_if_missing: true })).body).toEqual([]);
      expect((await t.server.request("GET", "/v2/concurrency_limits/ghost")).status).toBe(404);
    });

    it("is all or nothing: a full limit refuses the call with 423 Locked and takes nothing from the others", async () => {
      await create({ name: "roomy", limit: 10 });
      await create({ name: "tight", limit: 1 });
      expect((await increment(["tight"])).status).toBe(200);
      const refused = await increment(["roomy", "tight"]);
      expect(refused).toMatchObject({ status: 423, body: { detail: "Locked" } });
      expect(await slotsOf("roomy")).toBe(0);
      expect(await slotsOf("tight")).toBe(1);
      const leased = await withLease(["roomy", "tight"]);
      expect(leased.status).toBe(423);
      expect(await slotsOf("roomy")).toBe(0);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
      // The refusals were counted as denied slots.
      const tight = (await t.server.db.concurrencyLimits.getByName("tight"))!;
      expect(tight.denied_slots).toBeGreaterThanOrEqual(1);
    });

    it("sets Retry-After from the blocking limit's average occupancy, jittered as Prefect does", async () => {
      await create({ name: "busy", limit: 1 });
      await increment(["busy"]);
      const refused = await increment(["busy"]);
      expect(refused.status).toBe(423);
      // One slot wanted, none denied before, 2 s average occupancy: about 2 s.
      const retryAfter = Number(refused.headers.get("retry-after"));
      const [low, high] = jitterBounds(2);
      expect(retryAfter).toBeGreaterThanOrEqual(low);
      expect(retryAfter).toBeLessThanOrEqual(high);

      // A rate limit: one slot per 1 / decay seconds.
      await create({ name: "per-second", limit: 1, slot_decay_per_second: 0.25 });
      await increment(["per-second"], 1, { mode: "rate_limit" });
      const rated = await increment(["per-second"], 1, { mode: "rate_limit" });
      expect(rated.status).toBe(423);
      const [rateLow, rateHigh] = jitterBounds(4);
      expect(Number(rated.headers.get("retry-after"))).toBeGreaterThanOrEqual(rateLow);
      expect(Number(rated.headers.get("retry-after"))).toBeLessThanOrEqual(rateHigh);
    });

    it("caps Retry-After at the server's maximum slot wait for long-held slots", async () => {
      await create({ name: "slow", limit: 1 });
      await increment(["slow"]);
      // Held for an hour: the average occupancy grows far beyond the 30 s bound.
      await decrement(["slow"], 1, { occupancy_seconds: 3600 });
      await increment(["slow"]);
      const refused = await increment(["slow"]);
      expect(refused.status).toBe(423);
      expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(30 * 1.3);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(jitterBounds(30)[0]);
    });

    it("answers Prefect's plain 422 for more slots than a limit has and for rate limiting without decay", async () => {
      await create({ name: "small", limit: 2 });
      await create({ name: "plain", limit: 5 });
      await create({ name: "decaying", limit: 5, slot_decay_per_second: 1 });
      expect(await raw(t.server, "POST", "/v2/concurrency_limits/increment", { names: ["small"], slots: 3 })).toEqual({
        status: 422,
        body: { detail: "Slots requested is greater than the limit" },
      });
      expect(await raw(t.server, "POST", "/v2/concurrency_limits/increment", { names: ["plain", "small", "decaying"], slots: 1, mode: "rate_limit" })).toEqual({
        status: 422,
        body: {
          detail: "Only concurrency limits with slot decay can be used for rate limiting. The following limits do not have a decay configured: 'plain,small'",
        },
      });
      expect((await raw(t.server, "POST", "/v2/concurrency_limits/increment-with-lease", { names: ["small"], slots: 3 })).status).toBe(422);
      expect([await slotsOf("small"), await slotsOf("plain"), await slotsOf("decaying")]).toEqual([0, 0, 0]);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });

    it("frees the slots of a rate limit as they decay", async () => {
      // Two slots a second: the limit refuses a third call at once, then lets calls through again.
      await create({ name: "api-calls", limit: 2, slot_decay_per_second: 2 });
      expect((await increment(["api-calls"], 2, { mode: "rate_limit" })).status).toBe(200);
      const later = await eventually(
        () => increment(["api-calls"], 1, { mode: "rate_limit" }),
        (r) => r.status === 200,
      );
      expect(later.status).toBe(200);
      // Reads show the slots after decay, reaching zero once nothing more is taken.
      expect(await eventually(() => slotsOf("api-calls"), (n) => n === 0)).toBe(0);
    });

    it("keeps a concurrency limit's slots taken as time passes", async () => {
      await create({ name: "held", limit: 1 });
      await increment(["held"]);
      await sleep(1100);
      expect(await slotsOf("held")).toBe(1);
      expect((await increment(["held"])).status).toBe(423);
    });

    it("grants a lease on the slots taken, renews it, and gives the slots back with it once", async () => {
      const a = await create({ name: "a", limit: 4 });
      await create({ name: "b", limit: 4 });
      await create({ name: "idle", limit: 4, active: false });
      const holder = { type: "flow_run", id: randomUUID() };
      const leased = await withLease(["a", "b", "idle"], 2, { lease_duration: 120, holder });
      expect(leased.status).toBe(200);
      expect(leased.body.lease_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(leased.body.limits).toEqual(expect.arrayContaining([{ id: a.body.id, name: "a", limit: 4 }]));
      expect(leased.body.limits).toHaveLength(3);
      expect([await slotsOf("a"), await slotsOf("b"), await slotsOf("idle")]).toEqual([2, 2, 0]);

      const lease = (await t.server.context.db.concurrencyLeases.readLease(leased.body.lease_id))!;
      expect(lease.metadata).toEqual({ slots: 2, holder });
      expect(Date.parse(lease.expiration) - Date.parse(lease.created_at)).toBe(120_000);
      expect(await t.server.context.db.concurrencyLeases.listHoldersForLimit(a.body.id)).toEqual([{ leaseId: leased.body.lease_id, holder }]);

      expect((await renew(leased.body.lease_id, { lease_duration: 600 })).status).toBe(204);
      const renewed = (await t.server.context.db.concurrencyLeases.readLease(leased.body.lease_id))!;
      expect(Date.parse(renewed.expiration)).toBeGreaterThan(Date.now() + 500_000);
      expect((await renew(leased.body.lease_id)).status).toBe(204);

      expect((await release(leased.body.lease_id)).status).toBe(204);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([0, 0]);
      expect(await t.server.context.db.concurrencyLeases.readLease(leased.body.lease_id)).toBeNull();
      // A second release of the same lease frees nothing more.
      await increment(["a"], 3);
      expect((await release(leased.body.lease_id)).status).toBe(204);
      expect(await slotsOf("a")).toBe(3);
      expect(await renew(leased.body.lease_id)).toMatchObject({ status: 410, body: { detail: LEASE_GONE } });
    });

    it("answers a lease it does not know as Prefect does: renew 410, release 204 freeing nothing", async () => {
      await create({ name: "shared", limit: 2 });
      await increment(["shared"]);
      const unknown = randomUUID();
      expect(await renew(unknown)).toMatchObject({ status: 410, body: { detail: LEASE_GONE } });
      expect((await release(unknown)).status).toBe(204);
      expect(await slotsOf("shared")).toBe(1);
    });

    it("refuses to renew a lapsed lease (410) and frees its slots once when it is released", async () => {
      const limit = await create({ name: "lapsing", limit: 3 });
      await increment(["lapsing"], 2);
      // A lease that has already lapsed (the API's shortest lease is a minute).
      const lapsed = await t.server.context.db.concurrencyLeases.createLease([limit.body.id], -1, { slots: 2, holder: null });
      expect(await t.server.context.db.concurrencyLeases.readExpiredLeaseIds()).toEqual([lapsed.id]);
      expect(await renew(lapsed.id)).toMatchObject({ status: 410, body: { detail: LEASE_GONE } });
      expect(await slotsOf("lapsing")).toBe(2);
      expect((await release(lapsed.id)).status).toBe(204);
      expect(await slotsOf("lapsing")).toBe(0);
      expect((await release(lapsed.id)).status).toBe(204);
      expect(await t.server.context.db.concurrencyLeases.readExpiredLeaseIds()).toEqual([]);
    });

    it("never lets more than `limit` of 50 concurrent callers hold slots, round after round, and ends with none held", async () => {
      const LIMIT = 5;
      const CALLERS = 50;
      const ROUNDS = 3;
      await create({ name: "pool", limit: LIMIT });
      let holding = 0;
      let most = 0;
      let acquisitions = 0;
      let refusals = 0;
      let mostSeenByServer = 0;
      let storming = true;

      const caller = async (leased: boolean) => {
        for (let attempt = 0; attempt < 5000; attempt++) {
          const taken = leased ? await withLease(["pool"]) : await increment(["pool"]);
          if (taken.status === 423) {
            refusals += 1;
            await sleep(1 + Math.random() * 10);
            continue;
          }
          expect(taken.status).toBe(200);
          holding += 1;
          acquisitions += 1;
          most = Math.max(most, holding);
          await sleep(Math.random() * 3);
          // Counted out before the slot is given back, so the count never trails the server's.
          holding -= 1;
          const given = leased ? await release(taken.body.lease_id) : await decrement(["pool"]);
          expect(given.status).toBe(leased ? 204 : 200);
          return;
        }
        throw new Error("a caller never got a slot");
      };
      const monitor = (async () => {
        while (storming) {
          mostSeenByServer = Math.max(mostSeenByServer, await slotsOf("pool"));
          await sleep(5);
        }
      })();

      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(Array.from({ length: CALLERS }, (_, i) => caller((i + round) % 2 === 0)));
      }
      storming = false;
      await monitor;

      expect(acquisitions).toBe(CALLERS * ROUNDS);
      expect(refusals).toBeGreaterThan(0);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(LIMIT);
      expect(mostSeenByServer).toBeLessThanOrEqual(LIMIT);
      expect(await slotsOf("pool")).toBe(0);
      expect(await t.server.context.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });
  },
  { PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED: "false" },
);

describeApi(
  "repossessor service",
  (t) => {
    const { create, increment, withLease, release, renew, slotsOf } = helpers(() => t.server);

    it("gives back the slots of leases that lapsed, and only those", async () => {
      const a = await create({ name: "a", limit: 5 });
      const b = await create({ name: "b", limit: 5 });
      // Slots held under a live lease, and slots taken for a lease that lapses.
      const live = await withLease(["a", "b"], 1);
      await increment(["a", "b"], 2);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([3, 3]);
      // Lapsed from the start: the repossessor may free it at once.
      const lapsed = await t.server.context.db.concurrencyLeases.createLease([a.body.id, b.body.id], -1, { slots: 2, holder: { type: "task_run", id: randomUUID() } });

      expect(await eventually(() => t.server.context.db.concurrencyLeases.readLease(lapsed.id), (lease) => lease === null)).toBeNull();
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([1, 1]);
      expect(await renew(lapsed.id)).toMatchObject({ status: 410 });
      // Its holder's late release frees nothing more.
      expect((await release(lapsed.id)).status).toBe(204);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([1, 1]);

      // The live lease is untouched and still gives its slots back.
      expect((await renew(live.body.lease_id)).status).toBe(204);
      expect((await release(live.body.lease_id)).status).toBe(204);
      expect([await slotsOf("a"), await slotsOf("b")]).toEqual([0, 0]);
    });

    it("runs unless its setting switches it off", async () => {
      const silent = t.server.app.log;
      for (const [env, running] of [
        [{}, true],
        [{ PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED: "false" }, false],
      ] as const) {
        const services = await startServices({ ...t.server.context, settings: { ...loadServerSettings(env), port: 0 } }, silent);
        expect(services.some((s) => s.name === "Repossessor")).toBe(running);
        for (const service of services) await service.stop();
      }
    });
  },
  { PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS: "0.05" },
);
