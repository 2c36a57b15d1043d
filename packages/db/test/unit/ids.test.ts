/** The ids the library mints for runs, states, logs and event resources. */
import { describe, expect, it } from "vitest";
import { checkId, uuid7 } from "../../src/ids.js";

describe("uuid7", () => {
  it("is a version 7 UUID of the RFC 9562 variant, accepted as an id", () => {
    for (let i = 0; i < 1000; i++) {
      const id = uuid7();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(checkId(id)).toBe(id);
    }
  });

  it("carries the time it was minted in its first 48 bits", () => {
    const before = Date.now();
    const id = uuid7();
    const after = Date.now();
    const millis = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    // The counter may borrow the next millisecond when it runs out within one.
    expect(millis).toBeGreaterThanOrEqual(before);
    expect(millis).toBeLessThanOrEqual(after + 1);
  });

  it("sorts in the order it was minted, also within one millisecond", () => {
    const ids = Array.from({ length: 20_000 }, () => uuid7());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});
