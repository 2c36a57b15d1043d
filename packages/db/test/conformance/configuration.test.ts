import { expect, it } from "vitest";
import { describeEachBackend } from "../../src/testing/database.js";

describeEachBackend("configuration", (t) => {
  it("returns undefined for a missing key", async () => {
    expect(await t.db.configuration.get("missing")).toBeUndefined();
  });

  it.each([
    ["an object", { telemetry: { enabled: true, level: 2 }, list: [1, "a", null] }],
    ["an array", [1, "two", { three: 3 }]],
    ["an empty object", {}],
    ["a string", "hello"],
    ["a numeric string", "42"],
    ["an integer", 42],
    ["a float", 1.5],
    ["true", true],
    ["false", false],
    ["null", null],
  ])("stores and reads back %s", async (_, value) => {
    await t.db.configuration.set("key", value);
    expect(await t.db.configuration.get("key")).toStrictEqual(value);
  });

  it("overwrites the value on set", async () => {
    await t.db.configuration.set("key", { v: 1 });
    await t.db.configuration.set("key", { v: 2 });
    expect(await t.db.configuration.get("key")).toEqual({ v: 2 });
  });

  it("keeps keys apart", async () => {
    await t.db.configuration.set("a", 1);
    await t.db.configuration.set("b", 2);
    expect(await t.db.configuration.get("a")).toBe(1);
    expect(await t.db.configuration.get("b")).toBe(2);
  });

  it("setIfAbsent stores the value when the key is missing and returns it", async () => {
    expect(await t.db.configuration.setIfAbsent("key", { secret: "s1" })).toEqual({ secret: "s1" });
    expect(await t.db.configuration.get("key")).toEqual({ secret: "s1" });
  });

  it("setIfAbsent keeps and returns the value already stored", async () => {
    await t.db.configuration.set("key", "first");
    expect(await t.db.configuration.setIfAbsent("key", "second")).toBe("first");
    expect(await t.db.configuration.get("key")).toBe("first");
  });

  it("setIfAbsent gives concurrent callers the same winner", async () => {
    const values = Array.from({ length: 10 }, (_, i) => ({ secret: `s${i}` }));
    const results = await Promise.all(values.map((value) => t.db.configuration.setIfAbsent("key", value)));
    const winner = await t.db.configuration.get("key");
    expect(values).toContainEqual(winner);
    for (const result of results) expect(result).toEqual(winner);
  });

  it("deletes a key and says whether there was one", async () => {
    await t.db.configuration.set("key", 1);
    await t.db.configuration.set("other", 2);
    expect(await t.db.configuration.delete("key")).toBe(true);
    expect(await t.db.configuration.get("key")).toBeUndefined();
    expect(await t.db.configuration.delete("key")).toBe(false);
    expect(await t.db.configuration.get("other")).toBe(2);
  });
});
