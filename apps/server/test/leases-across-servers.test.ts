/**
 * Concurrency leases shared by several servers on one database (SQLite file, PostgreSQL): a lease
 * taken through one server is renewed and released through another; the leases of a server killed
 * while holding them come back once they lapse, freed once by the repossessors of the others; and
 * callers spread over two servers never hold more slots than a limit has.
 *
 * An in-memory SQLite database is one connection of one process: nothing to share, so it is left out.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, type Repositories } from "@prefect/db";
import { selectedBackends } from "@prefect/db/testing";
import { afterEach, describe, expect, it } from "vitest";
import { repossessExpiredLeases } from "../src/loops/repossessor.js";
import { waitFor } from "./support/events.js";
import { ServerProcess } from "./support/processes.js";
import { startServer, startServerOn, type TestServer } from "./support/server.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The repossessor looks often, so that the tests wait little for it. */
const QUICK_REPOSSESSOR = { PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS: "0.1" };

/** Moves the expiration of every lease but `keep` into the past: their holder stopped renewing them long ago. */
async function lapseLeasesBut(db: Repositories, keep: string): Promise<void> {
  for (const id of await db.concurrencyLeases.readActiveLeaseIds(1000)) {
    if (id === keep) continue;
    const lease = (await db.concurrencyLeases.readLease(id))!;
    await db.concurrencyLeases.revokeLease(id);
    // Recreated expired, with its metadata and limits (the id changes; nothing here depends on it).
    await db.concurrencyLeases.createLease(lease.resource_ids, -1, lease.metadata);
  }
}

async function post(apiUrl: string, path: string, body: unknown) {
  const response = await fetch(`${apiUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`concurrency leases across servers [${backend}]`, () => {
    const started: { close(): Promise<void> }[] = [];
    const killed: ServerProcess[] = [];
    afterEach(async () => {
      for (const process of killed.splice(0)) await process.kill();
      // The first server started owns the database: it closes last.
      for (const server of started.splice(0).reverse()) await server.close();
    });

    async function servers(env: Record<string, string> = {}): Promise<[TestServer, TestServer]> {
      const a = await startServer(backend, env);
      started.push(a);
      const b = await startServerOn(a.db.config, env);
      started.push(b);
      return [a, b];
    }

    const slotsOf = async (server: TestServer, name: string) => (await server.request("GET", `/v2/concurrency_limits/${name}`)).body.active_slots as number;

    it("a lease taken through one server is renewed and released through the other", async () => {
      const [a, b] = await servers();
      await a.request("POST", "/v2/concurrency_limits/", { name: "shared", limit: 5 });
      const holder = { type: "flow_run", id: randomUUID() };
      const leased = await a.request("POST", "/v2/concurrency_limits/increment-with-lease", { names: ["shared"], slots: 2, lease_duration: 60, holder });
      expect(leased.status).toBe(200);
      const leaseId = leased.body.lease_id as string;

      expect((await b.request("POST", `/v2/concurrency_limits/leases/${leaseId}/renew`, { lease_duration: 600 })).status).toBe(204);
      const renewed = (await a.db.concurrencyLeases.readLease(leaseId))!;
      expect(renewed.expiration > addSeconds(now(), 500)).toBe(true);
      expect(renewed.metadata).toEqual({ slots: 2, holder });
      expect(await slotsOf(b, "shared")).toBe(2);

      expect((await b.request("POST", "/v2/concurrency_limits/decrement-with-lease", { lease_id: leaseId })).status).toBe(204);
      expect(await slotsOf(a, "shared")).toBe(0);
      // Released through B, gone for A too: a renewal there is Prefect's 410, a second release frees nothing.
      expect((await a.request("POST", `/v2/concurrency_limits/leases/${leaseId}/renew`, {})).status).toBe(410);
      await a.request("POST", "/v2/concurrency_limits/increment", { names: ["shared"], slots: 1 });
      expect((await a.request("POST", "/v2/concurrency_limits/decrement-with-lease", { lease_id: leaseId })).status).toBe(204);
      expect(await slotsOf(b, "shared")).toBe(1);
    });

    it("the slots of a killed server's leases come back once they lapse, freed once by the other servers' repossessors", async () => {
      const [b, c] = await servers(QUICK_REPOSSESSOR);
      await b.request("POST", "/v2/concurrency_limits/", { name: "crashy", limit: 10 });
      // B holds 2 slots under a lease it keeps.
      const kept = await b.request("POST", "/v2/concurrency_limits/increment-with-lease", { names: ["crashy"], slots: 2, lease_duration: 600 });
      expect(kept.status).toBe(200);

      // A real server process takes 3 leases of one slot each, then dies without a word.
      const { process: dying, apiUrl } = await ServerProcess.start(b.db.config, { PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED: "false" });
      killed.push(dying);
      for (let i = 0; i < 3; i++) {
        const leased = await post(apiUrl, "/v2/concurrency_limits/increment-with-lease", { names: ["crashy"], slots: 1, lease_duration: 60 });
        expect(leased.status).toBe(200);
      }
      await dying.kill();
      expect(await slotsOf(b, "crashy")).toBe(5);

      // Unexpired, its leases are nobody else's to free.
      expect(await repossessExpiredLeases(c.context)).toBe(0);
      expect(await slotsOf(c, "crashy")).toBe(5);

      // Time passes (its leases are moved past their expiration, as the dead server renews none), except B's.
      await lapseLeasesBut(b.db, kept.body.lease_id);

      // B's and C's repossessors both run; every lapsed lease is freed, each once: B's 2 slots stay.
      await waitFor(async () => (await b.db.concurrencyLeases.readExpiredLeaseIds()).length === 0, "the lapsed leases to be repossessed");
      expect(await slotsOf(c, "crashy")).toBe(2);
      expect(await b.db.concurrencyLeases.readActiveLeaseIds()).toEqual([kept.body.lease_id]);
    });

    it("callers spread over two servers never hold more slots than the limit has", async () => {
      const [a, b] = await servers();
      const LIMIT = 3;
      await a.request("POST", "/v2/concurrency_limits/", { name: "narrow", limit: LIMIT });
      let holding = 0;
      let most = 0;
      let granted = 0;
      const caller = async (server: TestServer) => {
        for (let round = 0; round < 4; round++) {
          for (;;) {
            const leased = await server.request("POST", "/v2/concurrency_limits/increment-with-lease", { names: ["narrow"], slots: 1, lease_duration: 60 });
            if (leased.status === 423) {
              await sleep(5);
              continue;
            }
            expect(leased.status).toBe(200);
            granted += 1;
            holding += 1;
            most = Math.max(most, holding);
            await sleep(2);
            holding -= 1;
            // Released through the other server half the time.
            const releaser = round % 2 === 0 ? server : server === a ? b : a;
            expect((await releaser.request("POST", "/v2/concurrency_limits/decrement-with-lease", { lease_id: leased.body.lease_id })).status).toBe(204);
            break;
          }
        }
      };
      await Promise.all(Array.from({ length: 12 }, (_, i) => caller(i % 2 === 0 ? a : b)));
      expect(granted).toBe(48);
      expect(most).toBeLessThanOrEqual(LIMIT);
      expect(await slotsOf(b, "narrow")).toBe(0);
      expect(await a.db.concurrencyLeases.readActiveLeaseIds()).toEqual([]);
    });
  });
}
