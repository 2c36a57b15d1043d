/** Point reads of one turn of the event loop, sent as one load. */
import { describe, expect, it } from "vitest";
import { Coalescer } from "../../src/coalesce.js";

/** A loader that records the keys of each call and finds every key but "missing". */
function recording() {
  const calls: string[][] = [];
  const coalescer = new Coalescer<string, string>(async (keys) => {
    calls.push([...keys]);
    return new Map(keys.filter((k) => k !== "missing").map((k) => [k, `value of ${k}`]));
  });
  return { calls, coalescer };
}

describe("Coalescer", () => {
  it("loads the keys asked for in one turn with one call, each key once, and null for what was not found", async () => {
    const { calls, coalescer } = recording();
    const values = await Promise.all(["a", "b", "a", "missing"].map((k) => coalescer.load(k)));
    expect(values).toEqual(["value of a", "value of b", "value of a", null]);
    expect(calls).toEqual([["a", "b", "missing"]]);
  });

  it("loads keys asked for in later turns with calls of their own", async () => {
    const { calls, coalescer } = recording();
    expect(await coalescer.load("a")).toBe("value of a");
    expect(await coalescer.load("a")).toBe("value of a");
    const later = await Promise.all([coalescer.load("b"), new Promise((resolve) => setImmediate(resolve)).then(() => coalescer.load("c"))]);
    expect(later).toEqual(["value of b", "value of c"]);
    expect(calls).toEqual([["a"], ["a"], ["b"], ["c"]]);
  });

  it("cuts a large turn into calls of at most 100 keys", async () => {
    const { calls, coalescer } = recording();
    const keys = Array.from({ length: 250 }, (_, i) => `k${i}`);
    expect(await Promise.all(keys.map((k) => coalescer.load(k)))).toEqual(keys.map((k) => `value of ${k}`));
    expect(calls.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(calls.flat()).toEqual(keys);
  });

  it("rejects every read of a call that failed, and only those", async () => {
    let call = 0;
    const coalescer = new Coalescer<number, number>(async (keys) => {
      if (call++ === 0) throw new Error("connection lost");
      return new Map(keys.map((k) => [k, k * 2]));
    });
    const first = Promise.allSettled([coalescer.load(1), coalescer.load(2)]);
    expect((await first).map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(await coalescer.load(3)).toBe(6);
  });
});
