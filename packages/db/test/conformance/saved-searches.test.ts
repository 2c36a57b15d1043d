import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { InvalidError, NotFoundError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const filter = (value: unknown) => ({ object: "flow_run", property: "state", type: "string", operation: "equals", value });

describeEachBackend("saved searches", (t) => {
  const searches = () => t.db.savedSearches;

  it("creates a saved search and reads it by id and by name", async () => {
    const { row, created } = await searches().create({ name: "failed runs", filters: [filter("FAILED"), filter({ nested: [1, null] })] });
    expect(created).toBe(true);
    expect(row).toMatchObject({ name: "failed runs", filters: [filter("FAILED"), filter({ nested: [1, null] })] });
    expect(await searches().get(row.id)).toEqual(row);
    expect(await searches().get(row.id.toUpperCase())).toEqual(row);
    expect(await searches().getByName("failed runs")).toEqual(row);
  });

  it("defaults to no filters", async () => {
    expect((await searches().create({ name: "everything" })).row.filters).toEqual([]);
  });

  it("replaces the filters of the search with the same name", async () => {
    const first = await searches().create({ name: "mine", filters: [filter("A")] });
    const second = await searches().create({ name: "mine", filters: [filter("B"), filter(null)] });
    expect(second.created).toBe(false);
    expect(second.row).toMatchObject({ id: first.row.id, created: first.row.created, filters: [filter("B"), filter(null)] });
    expect(second.row.updated > first.row.updated).toBe(true);
    expect(await searches().read()).toHaveLength(1);
  });

  it("gives concurrent upserts of one name a single row holding one of their filters", async () => {
    const results = await Promise.all(Array.from({ length: 15 }, (_, i) => searches().create({ name: "busy", filters: [filter(i)] })));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
    const stored = await searches().getByName("busy");
    expect(results.map((r) => r.row.filters)).toContainEqual(stored?.filters);
  });

  it("returns null for unknown ids and names, and refuses malformed ids", async () => {
    expect(await searches().get(randomUUID())).toBeNull();
    expect(await searches().getByName("missing")).toBeNull();
    await expect(searches().get("bad")).rejects.toBeInstanceOf(InvalidError);
    await expect(searches().delete("bad")).rejects.toBeInstanceOf(InvalidError);
  });

  it.each([
    ["no name", { filters: [] }],
    ["a filter without a value", { name: "x", filters: [{ object: "a", property: "b", type: "c", operation: "d" }] }],
    ["a filter without an operation", { name: "x", filters: [{ object: "a", property: "b", type: "c", value: 1 }] }],
    ["filters that are not a list", { name: "x", filters: { object: "a" } }],
    ["an unknown field", { name: "x", colour: "red" }],
  ])("refuses %s", async (_, input) => {
    await expect(searches().create(input as never)).rejects.toBeInstanceOf(InvalidError);
  });

  it("reads every search by name, with limit and offset", async () => {
    for (const name of ["c", "a", "b", "d"]) await searches().create({ name });
    expect((await searches().read()).map((s) => s.name)).toEqual(["a", "b", "c", "d"]);
    expect((await searches().read({ limit: 2 })).map((s) => s.name)).toEqual(["a", "b"]);
    expect((await searches().read({ offset: 3 })).map((s) => s.name)).toEqual(["d"]);
    expect((await searches().read({ limit: 1, offset: 2 })).map((s) => s.name)).toEqual(["c"]);
  });

  it("reads an empty list when there are none", async () => {
    expect(await searches().read()).toEqual([]);
  });

  it("deletes a search, and throws NotFoundError for an unknown one", async () => {
    const { row } = await searches().create({ name: "gone" });
    const { row: kept } = await searches().create({ name: "kept" });
    await searches().delete(row.id);
    expect(await searches().get(row.id)).toBeNull();
    expect(await searches().get(kept.id)).toEqual(kept);
    await expect(searches().delete(row.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});
