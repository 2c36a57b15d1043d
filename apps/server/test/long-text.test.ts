/**
 * Same input, same answer on both backends: text stored under an index (names, keys, slugs...) is at
 * most 1024 bytes on SQLite as on PostgreSQL (whose B-tree index entries cannot hold much more), and
 * a longer value is Prefect's 422 naming the field, never a 500.
 */
import { expect, it } from "vitest";
import { describeApi } from "./support/server.js";

const LONG = "x".repeat(40_000);
/** Multi-byte characters: 400 of them are 1200 bytes, over the limit in bytes though not in characters. */
const LONG_UTF8 = "€".repeat(400);

interface Case {
  readonly what: string;
  readonly method: "POST" | "PUT";
  readonly path: string;
  readonly body: (long: string) => Record<string, unknown>;
  readonly field: string;
  /** Prefect's own rule refuses the multi-byte text before its length matters. */
  readonly asciiOnly?: boolean;
}

const CASES: readonly Case[] = [
  { what: "a flow's name", method: "POST", path: "/flows/", body: (name) => ({ name }), field: "name" },
  { what: "a saved search's name", method: "PUT", path: "/saved_searches/", body: (name) => ({ name, filters: [] }), field: "name" },
  { what: "a work pool's name", method: "POST", path: "/work_pools/", body: (name) => ({ name, type: "process" }), field: "name" },
  { what: "a work pool's type", method: "POST", path: "/work_pools/", body: (type) => ({ name: "pool", type }), field: "type" },
  { what: "a work queue's name", method: "POST", path: "/work_queues/", body: (name) => ({ name }), field: "name" },
  { what: "an artifact's key", method: "POST", path: "/artifacts/", body: (key) => ({ key, data: 1 }), field: "key", asciiOnly: true },
  { what: "a global concurrency limit's name", method: "POST", path: "/v2/concurrency_limits/", body: (name) => ({ name, limit: 1 }), field: "name" },
];

describeApi("indexed text longer than both backends index", (t) => {
  for (const c of CASES) {
    it(`refuses ${c.what} over 1024 bytes with a 422 naming it, and stores one at the limit`, async () => {
      for (const long of c.asciiOnly ? [LONG] : [LONG, LONG_UTF8]) {
        const refused = await t.server.request(c.method, c.path, c.body(long));
        expect(refused.status).toBe(422);
        expect(refused.body.exception_detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([["body", c.field]]);
        expect(refused.body.exception_detail[0].msg).toBe("String should have at most 1024 bytes (UTF-8) to be stored and indexed");
      }
      const stored = await t.server.request(c.method, c.path, c.body("y".repeat(1024)));
      expect(stored.status).toBeLessThan(300);
    });
  }
});
