/** How SQLite statements bind lists of values (IN, NOT IN). */
import { describe, expect, it } from "vitest";
import { paddedList, sqliteDialect } from "../../src/backends/sqlite/dialect.js";
import { sql } from "../../src/sql.js";

describe("SQLite lists", () => {
  it("pad a list to the next power of two with its last value, keeping every value and its order", () => {
    expect(paddedList(["a"])).toEqual(["a"]);
    expect(paddedList(["a", "b", "c"])).toEqual(["a", "b", "c", "c"]);
    expect(paddedList([1, 2, 3, 4, 5])).toEqual([1, 2, 3, 4, 5, 5, 5, 5]);
    const long = Array.from({ length: 1500 }, (_, i) => i);
    expect(paddedList(long)).toBe(long);
  });

  it("render a handful of statement texts for lists of every length", () => {
    const texts = new Set<string>();
    for (let n = 1; n <= 1000; n++) {
      const values = Array.from({ length: n }, (_, i) => `id-${i}`);
      const rendered = sqliteDialect.render(sql`SELECT id FROM events WHERE ${sqliteDialect.inList(sql.raw("id"), values)}`);
      texts.add(rendered.text);
      expect(new Set(rendered.params)).toEqual(new Set(values));
    }
    expect(texts.size).toBe(11);
  });
});
