import { expect, it } from "vitest";
import { describeApi } from "./support/server.js";

describeApi("flows API", (t) => {
  it("creates a flow with 201, then returns it with 200 for the same name", async () => {
    const first = await t.server.request("POST", "/flows/", { name: "etl", tags: ["a"] });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ name: "etl", tags: ["a"], labels: {} });
    const again = await t.server.request("POST", "/flows/", { name: "etl" });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
  });

  it("reads by id and by name, 404 for an unknown one, 422 for a malformed id", async () => {
    const { body: flow } = await t.server.request("POST", "/flows/", { name: "reader" });
    expect((await t.server.request("GET", `/flows/${flow.id}`)).body).toEqual(flow);
    expect((await t.server.request("GET", "/flows/name/reader")).body).toEqual(flow);
    const missing = await t.server.request("GET", "/flows/00000000-0000-4000-8000-000000000000");
    expect(missing).toMatchObject({ status: 404, body: { detail: "Flow not found" } });
    const malformed = await t.server.request("GET", "/flows/not-a-uuid");
    expect(malformed.status).toBe(422);
    expect(malformed.body.detail[0].loc).toEqual(["path", "id"]);
  });

  it("answers bad bodies with 422 listing each problem and where, writing nothing", async () => {
    const bad = await t.server.request("POST", "/flows/", { name: "a/b", extra: true });
    expect(bad.status).toBe(422);
    expect(bad.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual(expect.arrayContaining([["body", "name"]]));
    const malformed = await t.server.request("POST", "/flows/", undefined, { raw: "{not json" });
    expect(malformed.status).toBe(422);
    expect((await t.server.request("POST", "/flows/count", {})).body).toBe(0);
  });

  it("filters, counts, paginates, updates and deletes", async () => {
    for (const name of ["a", "b", "c"]) await t.server.request("POST", "/flows/", { name, tags: name === "b" ? ["x"] : [] });
    const filtered = await t.server.request("POST", "/flows/filter", { flows: { tags: { all_: ["x"] } } });
    expect(filtered.body.map((f: { name: string }) => f.name)).toEqual(["b"]);
    expect((await t.server.request("POST", "/flows/count", null)).body).toBe(3);
    const page = await t.server.request("POST", "/flows/paginate", { limit: 2, page: 2 });
    expect(page.body).toMatchObject({ count: 3, limit: 2, pages: 2, page: 2 });
    expect(page.body.results.map((f: { name: string }) => f.name)).toEqual(["c"]);
    const b = filtered.body[0];
    const patched = await t.server.request("PATCH", `/flows/${b.id}`, { tags: ["y"] });
    expect(patched.body).toBeUndefined();
    expect(patched.status).toBe(204);
    expect((await t.server.request("GET", `/flows/${b.id}`)).body.tags).toEqual(["y"]);
    expect((await t.server.request("DELETE", `/flows/${b.id}`)).status).toBe(204);
    expect((await t.server.request("DELETE", `/flows/${b.id}`)).status).toBe(404);
    expect((await t.server.request("POST", "/flows/filter", { limit: 201 })).status).toBe(422);
  });
});
