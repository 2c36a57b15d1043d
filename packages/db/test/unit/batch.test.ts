/** How batched writes cut their rows into statements. */
import { describe, expect, it } from "vitest";
import { chunkPlan, chunkSize, planChunks } from "../../src/batch.js";

describe("chunkPlan", () => {
  it("cuts every batch size into chunks that add up to it, none over the table's most rows per statement", () => {
    for (const columns of [9, 14, 300, 40_000]) {
      for (let total = 0; total <= 1000; total++) {
        const plan = chunkPlan(total, columns);
        expect(plan.reduce((a, b) => a + b, 0)).toBe(total);
        expect(Math.max(0, ...plan)).toBeLessThanOrEqual(chunkSize(columns));
      }
    }
  });

  it("uses a handful of row counts whatever the batch sizes, so that each statement is prepared once", () => {
    const sizes = new Set<number>();
    for (let total = 1; total <= 5000; total++) for (const size of chunkPlan(total, 14)) sizes.add(size);
    expect([...sizes].sort((a, b) => a - b)).toEqual([1, 2, 5, 10, 20, 50, 100, 200]);
  });

  it("sends the round batch sizes clients send as one statement", () => {
    expect(chunkPlan(100, 9)).toEqual([100]);
    expect(chunkPlan(50, 14)).toEqual([50]);
    expect(chunkPlan(250, 14)).toEqual([200, 50]);
  });

  it("keeps wide tables under the bound-parameter limit", () => {
    expect(chunkSize(300)).toBe(100);
    expect(chunkSize(40_000)).toBe(1);
  });
});

describe("planChunks", () => {
  it("keeps every item once, in order", () => {
    const items = Array.from({ length: 337 }, (_, i) => i);
    const parts = planChunks(items, 14);
    expect(parts.map((p) => p.length)).toEqual(chunkPlan(337, 14));
    expect(parts.flat()).toEqual(items);
  });
});
