import { expect, it } from "vitest";
import { describeApi } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const locs = (body: { detail: { loc: unknown[] }[] }) => body.detail.map((d) => d.loc);
const FILTER = { object: "flow", property: "name", type: "string", operation: "equals", value: "etl" };

describeApi("saved searches API", (t) => {
  it("creates a saved search with 201, then replaces its filters by name with 200", async () => {
    const created = await t.server.request("PUT", "/saved_searches/", { name: "mine", filters: [FILTER] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "mine", filters: [FILTER] });
    expect((await t.server.request("GET", `/saved_searches/${created.body.id}`)).body).toEqual(created.body);

    const replaced = await t.server.request("PUT", "/saved_searches/", { name: "mine", filters: [{ ...FILTER, value: null }, { ...FILTER, value: { any: [1, 2] } }] });
    expect(replaced.status).toBe(200);
    expect(replaced.body.id).toBe(created.body.id);
    expect(replaced.body.filters.map((f: { value: unknown }) => f.value)).toEqual([null, { any: [1, 2] }]);
    expect((await t.server.request("GET", `/saved_searches/${created.body.id}`)).body.filters).toEqual(replaced.body.filters);

    const empty = await t.server.request("PUT", "/saved_searches/", { name: "no filters" });
    expect(empty.status).toBe(201);
    expect(empty.body.filters).toEqual([]);
  });

  it("answers bad bodies with 422 listing each problem and where, writing nothing", async () => {
    const bad = await t.server.request("PUT", "/saved_searches/", { filters: [{ object: "flow", property: 1, type: "string", operation: "equals" }], extra: 1 });
    expect(bad.status).toBe(422);
    expect(locs(bad.body)).toEqual(
      expect.arrayContaining([["body", "name"], ["body", "filters", 0, "property"], ["body", "filters", 0, "value"], ["body", "extra"]]),
    );
    expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[3] === "value")).toMatchObject({ msg: "Field required", type: "missing" });
    expect((await t.server.request("PUT", "/saved_searches/", { name: "x", filters: "nope" })).status).toBe(422);
    expect((await t.server.request("PUT", "/saved_searches/", undefined, { raw: "{" })).status).toBe(422);
    expect((await t.server.request("PUT", "/saved_searches/", undefined)).status).toBe(422);
    expect((await t.server.request("POST", "/saved_searches/filter", {})).body).toEqual([]);
  });

  it("lists by name, pages, and deletes with 204 then 404", async () => {
    const ids: Record<string, string> = {};
    for (const name of ["b", "c", "a"]) ids[name] = (await t.server.request("PUT", "/saved_searches/", { name, filters: [] })).body.id;
    const names = async (body: unknown) => (await t.server.request("POST", "/saved_searches/filter", body)).body.map((s: { name: string }) => s.name);
    expect(await names({})).toEqual(["a", "b", "c"]);
    expect(await names(null)).toEqual(["a", "b", "c"]);
    expect(await names({ limit: 1, offset: 1 })).toEqual(["b"]);
    expect((await t.server.request("POST", "/saved_searches/filter", { limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/saved_searches/filter", { offset: -1 })).status).toBe(422);

    const deleted = await t.server.request("DELETE", `/saved_searches/${ids.b}`);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBeUndefined();
    expect(await names({})).toEqual(["a", "c"]);
    expect(await t.server.request("DELETE", `/saved_searches/${ids.b}`)).toMatchObject({ status: 404, body: { detail: "Saved search not found" } });
    expect(await t.server.request("GET", `/saved_searches/${ids.b}`)).toMatchObject({ status: 404, body: { detail: "Saved search not found" } });
    expect(await t.server.request("GET", `/saved_searches/${MISSING}`)).toMatchObject({ status: 404, body: { detail: "Saved search not found" } });
    expect(await t.server.request("GET", "/saved_searches/not-a-uuid")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
  });
});
