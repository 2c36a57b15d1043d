import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidError, NotFoundError, type VariableFilter } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

describeEachBackend("variables", (t) => {
  const vars = () => t.db.variables;

  describe("create and read", () => {
    it("creates a variable and reads it by id and by name", async () => {
      const v = await vars().create({ name: "my_var-1", value: "hello", tags: ["a", "b"] });
      expect(v).toMatchObject({ name: "my_var-1", value: "hello", tags: ["a", "b"] });
      expect(v.created).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      expect(await vars().get(v.id)).toEqual(v);
      expect(await vars().get(v.id.toUpperCase())).toEqual(v);
      expect(await vars().getByName("my_var-1")).toEqual(v);
      expect(await vars().get(randomUUID())).toBeNull();
      expect(await vars().getByName("missing")).toBeNull();
    });

    it("defaults tags to none", async () => {
      expect((await vars().create({ name: "untagged", value: 1 })).tags).toEqual([]);
    });

    it.each([
      ["a string", "text"],
      ["a numeric string", "42"],
      ["an empty string", ""],
      ["an integer", 42],
      ["a float", 3.25],
      ["a negative number", -7],
      ["true", true],
      ["false", false],
      ["null", null],
      ["an object", { nested: { list: [1, "two", null, false] }, unicode: "日本" }],
      ["an empty object", {}],
      ["an array", [1, { a: "b" }, [null]]],
      ["an empty array", []],
    ])("stores %s as the value", async (_, value) => {
      const v = await vars().create({ name: "v", value });
      expect(v.value).toStrictEqual(value);
      expect((await vars().getByName("v"))?.value).toStrictEqual(value);
    });

    it("accepts a value of exactly 5000 bytes of JSON, and refuses a longer one", async () => {
      const fits = "x".repeat(4998); // two quotes make 5000
      await expect(vars().create({ name: "fits", value: fits })).resolves.toMatchObject({ value: fits });
      await expect(vars().create({ name: "too-long", value: `${fits}x` })).rejects.toBeInstanceOf(InvalidError);
      // Multi-byte characters count by their UTF-8 bytes.
      await expect(vars().create({ name: "wide", value: "é".repeat(2500) })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().create({ name: "big-object", value: { data: "y".repeat(5000) } })).rejects.toBeInstanceOf(InvalidError);
    });

    it.each([
      ["upper case", "MyVar"],
      ["a dot", "my.var"],
      ["a space", "my var"],
      ["a slash", "my/var"],
      ["more than 255 characters", "a".repeat(256)],
    ])("refuses a name with %s", async (_, name) => {
      await expect(vars().create({ name, value: 1 })).rejects.toBeInstanceOf(InvalidError);
    });

    it("accepts a name of 255 characters", async () => {
      await expect(vars().create({ name: "a".repeat(255), value: 1 })).resolves.toMatchObject({ name: "a".repeat(255) });
    });

    it.each([
      ["no value", { name: "v" }],
      ["a value that is not JSON", { name: "v", value: () => 1 }],
      ["a non-finite number", { name: "v", value: Number.POSITIVE_INFINITY }],
      ["a date object", { name: "v", value: new Date() }],
      ["tags that are not strings", { name: "v", value: 1, tags: [1] }],
      ["an unknown field", { name: "v", value: 1, colour: "red" }],
    ])("refuses %s", async (_, input) => {
      await expect(vars().create(input as never)).rejects.toBeInstanceOf(InvalidError);
    });

    it("refuses a taken name with a clear message", async () => {
      await vars().create({ name: "dup", value: 1 });
      const error = await vars()
        .create({ name: "dup", value: 2 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyExistsError);
      expect((error as Error).message).toBe("A variable with the name 'dup' already exists.");
    });

    it("gives one winner to concurrent creates of one name", async () => {
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => vars().create({ name: "race", value: i })));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(AlreadyExistsError);
      expect(await vars().count()).toBe(1);
    });

    it("refuses malformed ids", async () => {
      await expect(vars().get("nope")).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().update("nope", { value: 1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("filter, sort and count", () => {
    const seed = async () => {
      const a = await vars().create({ name: "alpha", value: 1, tags: ["prod", "db"] });
      const b = await vars().create({ name: "beta_var", value: 2, tags: ["prod"] });
      const c = await vars().create({ name: "gamma", value: 3, tags: [] });
      return { a, b, c };
    };
    const names = async (variables?: VariableFilter, extra: { sort?: "CREATED_DESC" | "UPDATED_DESC" | "NAME_DESC" | "NAME_ASC"; limit?: number; offset?: number } = {}) =>
      (await vars().read({ variables, ...extra })).map((v) => v.name);

    it("reads every variable by name when unfiltered", async () => {
      await seed();
      expect(await names()).toEqual(["alpha", "beta_var", "gamma"]);
    });

    it("filters by id", async () => {
      const { a, c } = await seed();
      expect(await names({ id: { any_: [c.id, a.id.toUpperCase()] } })).toEqual(["alpha", "gamma"]);
      expect(await names({ id: { any_: [] } })).toEqual([]);
      await expect(vars().read({ variables: { id: { any_: ["nope"] } } })).rejects.toBeInstanceOf(InvalidError);
    });

    it("filters by names and by a case-insensitive substring (with SQL wildcards)", async () => {
      await seed();
      expect(await names({ name: { any_: ["gamma", "beta_var", "zeta"] } })).toEqual(["beta_var", "gamma"]);
      expect(await names({ name: { like_: "MM" } })).toEqual(["gamma"]);
      expect(await names({ name: { like_: "a" } })).toEqual(["alpha", "beta_var", "gamma"]);
      expect(await names({ name: { like_: "b%r" } })).toEqual(["beta_var"]);
      expect(await names({ name: { like_: "" } })).toEqual(["alpha", "beta_var", "gamma"]);
    });

    it("filters by tags: all of them, or untagged", async () => {
      await seed();
      expect(await names({ tags: { all_: ["prod"] } })).toEqual(["alpha", "beta_var"]);
      expect(await names({ tags: { all_: ["prod", "db"] } })).toEqual(["alpha"]);
      expect(await names({ tags: { all_: [] } })).toEqual(["alpha", "beta_var", "gamma"]);
      expect(await names({ tags: { is_null_: true } })).toEqual(["gamma"]);
      expect(await names({ tags: { is_null_: false } })).toEqual(["alpha", "beta_var"]);
      expect(await names({ tags: { operator: "or_", all_: ["db"], is_null_: true } })).toEqual(["alpha", "gamma"]);
    });

    it("combines criteria with and_ by default, or or_", async () => {
      await seed();
      expect(await names({ name: { like_: "a" }, tags: { all_: ["db"] } })).toEqual(["alpha"]);
      expect(await names({ operator: "or_", name: { any_: ["gamma"] }, tags: { all_: ["db"] } })).toEqual(["alpha", "gamma"]);
    });

    it("refuses unknown filter keys and sorts", async () => {
      await expect(vars().read({ variables: { value: { any_: [1] } } as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().read({ variables: { tags: { any_: ["x"] } } as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().read({ sort: "VALUE_ASC" as never })).rejects.toBeInstanceOf(InvalidError);
    });

    it("sorts by name, creation and update, and pages", async () => {
      const { a } = await seed();
      expect(await names(undefined, { sort: "NAME_DESC" })).toEqual(["gamma", "beta_var", "alpha"]);
      expect(await names(undefined, { sort: "CREATED_DESC" })).toEqual(["gamma", "beta_var", "alpha"]);
      await vars().update(a.id, { value: 10 });
      expect(await names(undefined, { sort: "UPDATED_DESC" })).toEqual(["alpha", "gamma", "beta_var"]);
      expect(await names(undefined, { limit: 2 })).toEqual(["alpha", "beta_var"]);
      expect(await names(undefined, { limit: 2, offset: 2 })).toEqual(["gamma"]);
      expect(await names(undefined, { offset: 1 })).toEqual(["beta_var", "gamma"]);
    });

    it("counts, with and without a filter", async () => {
      expect(await vars().count()).toBe(0);
      await seed();
      expect(await vars().count()).toBe(3);
      expect(await vars().count(null)).toBe(3);
      expect(await vars().count({ tags: { all_: ["prod"] } })).toBe(2);
      expect(await vars().count({ name: { any_: ["missing"] } })).toBe(0);
    });
  });

  describe("update and delete", () => {
    it("updates the name, the value and the tags by id, moving `updated`", async () => {
      const v = await vars().create({ name: "old", value: { a: 1 }, tags: ["x"] });
      const renamed = await vars().update(v.id, { name: "new" });
      expect(renamed).toMatchObject({ id: v.id, name: "new", value: { a: 1 }, tags: ["x"] });
      expect(renamed.updated > v.updated).toBe(true);
      expect(renamed.created).toBe(v.created);
      expect(await vars().update(v.id, { value: [1, 2] })).toMatchObject({ name: "new", value: [1, 2], tags: ["x"] });
      expect(await vars().update(v.id, { tags: [] })).toMatchObject({ value: [1, 2], tags: [] });
      expect(await vars().getByName("old")).toBeNull();
    });

    it("updates by name", async () => {
      await vars().create({ name: "by-name", value: 1 });
      expect(await vars().updateByName("by-name", { value: "two", tags: ["t"] })).toMatchObject({ value: "two", tags: ["t"] });
      expect(await vars().updateByName("by-name", { name: "renamed" })).toMatchObject({ name: "renamed", value: "two" });
    });

    it("stores an explicit null value, and leaves what is left out (or null name and tags)", async () => {
      const v = await vars().create({ name: "n", value: "something", tags: ["keep"] });
      expect(await vars().update(v.id, { value: null })).toMatchObject({ value: null, tags: ["keep"] });
      expect(await vars().update(v.id, { name: null, tags: null })).toMatchObject({ name: "n", value: null, tags: ["keep"] });
      expect(await vars().update(v.id, {})).toMatchObject({ name: "n", value: null });
    });

    it("validates updates as creates", async () => {
      const v = await vars().create({ name: "valid", value: 1 });
      await expect(vars().update(v.id, { name: "In Valid" })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().update(v.id, { value: "z".repeat(6000) })).rejects.toBeInstanceOf(InvalidError);
      await expect(vars().updateByName("valid", { other: 1 } as never)).rejects.toBeInstanceOf(InvalidError);
      expect(await vars().get(v.id)).toEqual(v);
    });

    it("refuses renaming onto a taken name", async () => {
      await vars().create({ name: "taken", value: 1 });
      const v = await vars().create({ name: "mine", value: 2 });
      await expect(vars().update(v.id, { name: "taken" })).rejects.toThrow("A variable with the name 'taken' already exists.");
      await expect(vars().updateByName("mine", { name: "taken" })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("throws NotFoundError for unknown variables", async () => {
      await expect(vars().update(randomUUID(), { value: 1 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(vars().updateByName("missing", { value: 1 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(vars().delete(randomUUID())).rejects.toBeInstanceOf(NotFoundError);
      await expect(vars().deleteByName("missing")).rejects.toBeInstanceOf(NotFoundError);
    });

    it("deletes by id and by name", async () => {
      const a = await vars().create({ name: "a", value: 1 });
      await vars().create({ name: "b", value: 2 });
      await vars().create({ name: "c", value: 3 });
      await vars().delete(a.id);
      await vars().deleteByName("b");
      expect((await vars().read()).map((v) => v.name)).toEqual(["c"]);
    });
  });
});
