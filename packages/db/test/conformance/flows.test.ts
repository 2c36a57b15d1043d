import { expect, it } from "vitest";
import { InvalidError, NotFoundError } from "../../src/index.js";
import { describeEachBackend } from "../support/database.js";

describeEachBackend("flows", (t) => {
  it("creates a flow and returns the existing one for the same name, untouched", async () => {
    const first = await t.db.flows.create({ name: "etl", tags: ["a"] });
    expect(first.created).toBe(true);
    expect(first.row).toMatchObject({ name: "etl", tags: ["a"], labels: null });
    const again = await t.db.flows.create({ name: "etl", tags: ["b"] });
    expect(again.created).toBe(false);
    expect(again.row.id).toBe(first.row.id);
    expect(again.row.tags).toEqual(["a"]);
  });

  it("refuses a flow without a name", async () => {
    await expect(t.db.flows.create({ name: "" })).rejects.toBeInstanceOf(InvalidError);
  });

  it("reads, updates and deletes by id", async () => {
    const { row } = await t.db.flows.create({ name: "f" });
    expect(await t.db.flows.get(row.id)).toEqual(row);
    const updated = await t.db.flows.update(row.id, { tags: ["x", "y"] });
    expect(updated.tags).toEqual(["x", "y"]);
    expect(updated.updated > row.updated).toBe(true);
    await t.db.flows.delete(row.id);
    expect(await t.db.flows.get(row.id)).toBeNull();
    await expect(t.db.flows.delete(row.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(t.db.flows.update(row.id, { tags: [] })).rejects.toBeInstanceOf(NotFoundError);
  });
});

