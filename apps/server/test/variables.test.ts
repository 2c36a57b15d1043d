import type { ReceivedEvent } from "@prefect/orchestration";
import { expect, it } from "vitest";
import { describeApi } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const locs = (body: { detail: { loc: unknown[] }[] }) => body.detail.map((d) => d.loc);

describeApi("variables API", (t) => {
  it("creates a variable with 201 and reads it by id and by name", async () => {
    const created = await t.server.request("POST", "/variables/", { name: "my_var-1", value: { a: [1, 2] }, tags: ["x"] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "my_var-1", value: { a: [1, 2] }, tags: ["x"] });
    expect((await t.server.request("GET", `/variables/${created.body.id}`)).body).toEqual(created.body);
    expect((await t.server.request("GET", "/variables/name/my_var-1")).body).toEqual(created.body);

    const bare = await t.server.request("POST", "/variables/", { name: "bare", value: null });
    expect(bare.status).toBe(201);
    expect(bare.body).toMatchObject({ name: "bare", value: null, tags: [] });
  });

  it("keeps every kind of JSON value as sent", async () => {
    const values = ["text", 42, 1.5, true, false, [1, "a", null], { nested: { deep: [true] } }, null, ""];
    for (const [i, value] of values.entries()) {
      const created = await t.server.request("POST", "/variables/", { name: `v${i}`, value });
      expect(created.status).toBe(201);
      expect((await t.server.request("GET", `/variables/name/v${i}`)).body.value).toEqual(value);
    }
  });

  it("answers 409 with Prefect's text for a taken name, leaving the first variable as it was", async () => {
    const first = await t.server.request("POST", "/variables/", { name: "taken", value: 1 });
    const again = await t.server.request("POST", "/variables/", { name: "taken", value: 2 });
    expect(again).toMatchObject({ status: 409, body: { detail: "A variable with the name 'taken' already exists." } });
    expect((await t.server.request("GET", "/variables/name/taken")).body).toEqual(first.body);
    expect((await t.server.request("POST", "/variables/count", {})).body).toBe(1);
  });

  it("answers 404 for unknown ids and names, and for ids that are not UUIDs (no such route)", async () => {
    expect(await t.server.request("GET", `/variables/${MISSING}`)).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("GET", "/variables/name/nope")).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("PATCH", `/variables/${MISSING}`, { value: 1 })).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("PATCH", "/variables/name/nope", { value: 1 })).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("DELETE", `/variables/${MISSING}`)).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("DELETE", "/variables/name/nope")).toMatchObject({ status: 404, body: { detail: "Variable not found." } });
    expect(await t.server.request("GET", "/variables/not-a-uuid")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
  });

  it("answers bad bodies with 422 listing each problem and where, writing nothing", async () => {
    const bad = await t.server.request("POST", "/variables/", { name: "Bad Name", value: "x".repeat(5000), tags: "x", extra: 1 });
    expect(bad.status).toBe(422);
    expect(locs(bad.body)).toEqual(expect.arrayContaining([["body", "name"], ["body", "value"], ["body", "tags"], ["body", "extra"]]));
    expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[1] === "name").msg).toBe(
      "Value error, Variable name must only contain lowercase letters, numbers, and dashes or underscores.",
    );
    expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[1] === "value").msg).toBe("Value error, Variable value must be less than 5000 characters");

    const missing = await t.server.request("POST", "/variables/", {});
    expect(missing.status).toBe(422);
    expect(missing.body.detail).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ loc: ["body", "name"], msg: "Field required", type: "missing" }),
        expect.objectContaining({ loc: ["body", "value"], msg: "Field required", type: "missing" }),
      ]),
    );
    const long = await t.server.request("POST", "/variables/", { name: "a".repeat(256), value: 1 });
    expect(long.status).toBe(422);
    expect(long.body.detail[0]).toMatchObject({ loc: ["body", "name"], msg: "String should have at most 255 characters" });
    expect((await t.server.request("POST", "/variables/", undefined, { raw: "{nope" })).status).toBe(422);
    expect((await t.server.request("POST", "/variables/", undefined)).status).toBe(422);
    // A value of exactly 5000 characters of JSON is allowed (null always is).
    expect((await t.server.request("POST", "/variables/", { name: "edge", value: "x".repeat(4998) })).status).toBe(201);
    expect((await t.server.request("POST", "/variables/count", null)).body).toBe(1);

    const { body: variable } = await t.server.request("GET", "/variables/name/edge");
    const badPatch = await t.server.request("PATCH", `/variables/${variable.id}`, { name: "UPPER", value: "y".repeat(6000), other: true });
    expect(badPatch.status).toBe(422);
    expect(locs(badPatch.body)).toEqual(expect.arrayContaining([["body", "name"], ["body", "value"], ["body", "other"]]));
    expect((await t.server.request("GET", `/variables/${variable.id}`)).body).toEqual(variable);
  });

  it("updates by id and by name (only the fields sent), with 204", async () => {
    const { body: variable } = await t.server.request("POST", "/variables/", { name: "upd", value: "one", tags: ["a"] });
    const patched = await t.server.request("PATCH", `/variables/${variable.id}`, { value: { two: 2 } });
    expect(patched.status).toBe(204);
    expect(patched.body).toBeUndefined();
    const afterValue = (await t.server.request("GET", `/variables/${variable.id}`)).body;
    expect(afterValue).toMatchObject({ name: "upd", value: { two: 2 }, tags: ["a"] });
    expect(afterValue.updated >= variable.updated).toBe(true);

    expect((await t.server.request("PATCH", "/variables/name/upd", { name: "renamed", tags: ["b", "c"] })).status).toBe(204);
    expect((await t.server.request("GET", "/variables/name/upd")).status).toBe(404);
    expect((await t.server.request("GET", "/variables/name/renamed")).body).toMatchObject({ id: variable.id, value: { two: 2 }, tags: ["b", "c"] });

    expect((await t.server.request("PATCH", "/variables/name/renamed", { value: null })).status).toBe(204);
    expect((await t.server.request("GET", `/variables/${variable.id}`)).body.value).toBeNull();
    expect((await t.server.request("PATCH", "/variables/name/renamed", {})).status).toBe(204);
    expect((await t.server.request("GET", `/variables/${variable.id}`)).body).toMatchObject({ name: "renamed", value: null, tags: ["b", "c"] });
  });

  it("answers 409 when a rename runs into a taken name, changing nothing", async () => {
    await t.server.request("POST", "/variables/", { name: "first", value: 1 });
    const { body: second } = await t.server.request("POST", "/variables/", { name: "second", value: 2 });
    const clash = await t.server.request("PATCH", `/variables/${second.id}`, { name: "first", value: 3 });
    expect(clash.status).toBe(409);
    expect(clash.body.detail).toMatch(/^Data integrity conflict/);
    expect((await t.server.request("PATCH", "/variables/name/second", { name: "first" })).status).toBe(409);
    expect((await t.server.request("GET", `/variables/${second.id}`)).body).toEqual(second);
  });

  it("deletes by id and by name with 204, then 404", async () => {
    const { body: a } = await t.server.request("POST", "/variables/", { name: "del-a", value: 1 });
    await t.server.request("POST", "/variables/", { name: "del-b", value: 2 });
    const deleted = await t.server.request("DELETE", `/variables/${a.id}`);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBeUndefined();
    expect((await t.server.request("GET", `/variables/${a.id}`)).status).toBe(404);
    expect((await t.server.request("DELETE", "/variables/name/del-b")).status).toBe(204);
    expect((await t.server.request("DELETE", "/variables/name/del-b")).status).toBe(404);
    expect((await t.server.request("POST", "/variables/count", {})).body).toBe(0);
  });

  it("filters by id, name and tags, sorts, pages and counts", async () => {
    const ids: Record<string, string> = {};
    for (const [name, tags] of [
      ["alpha", ["x", "y"]],
      ["beta", ["x"]],
      ["gamma", []],
      ["alphabet", ["y"]],
    ] as const) {
      ids[name] = (await t.server.request("POST", "/variables/", { name, value: name, tags })).body.id;
    }
    const names = async (body: unknown) => {
      const response = await t.server.request("POST", "/variables/filter", body);
      expect(response.status).toBe(200);
      return response.body.map((v: { name: string }) => v.name);
    };
    expect(await names({})).toEqual(["alpha", "alphabet", "beta", "gamma"]);
    expect(await names(null)).toEqual(["alpha", "alphabet", "beta", "gamma"]);
    expect(await names({ sort: "NAME_DESC" })).toEqual(["gamma", "beta", "alphabet", "alpha"]);
    expect(await names({ sort: "CREATED_DESC" })).toEqual(["alphabet", "gamma", "beta", "alpha"]);
    expect(await names({ limit: 2, offset: 1 })).toEqual(["alphabet", "beta"]);
    expect(await names({ variables: { name: { like_: "alpha" } } })).toEqual(["alpha", "alphabet"]);
    expect(await names({ variables: { name: { any_: ["beta", "gamma", "zzz"] } } })).toEqual(["beta", "gamma"]);
    expect(await names({ variables: { id: { any_: [ids.gamma] } } })).toEqual(["gamma"]);
    expect(await names({ variables: { tags: { all_: ["x", "y"] } } })).toEqual(["alpha"]);
    expect(await names({ variables: { tags: { is_null_: true } } })).toEqual(["gamma"]);
    expect(await names({ variables: { operator: "or_", name: { any_: ["gamma"] }, tags: { all_: ["y"] } } })).toEqual(["alpha", "alphabet", "gamma"]);

    expect((await t.server.request("POST", "/variables/count", { variables: { tags: { all_: ["x"] } } })).body).toBe(2);
    expect((await t.server.request("POST", "/variables/count", undefined)).body).toBe(4);

    expect((await t.server.request("POST", "/variables/filter", { limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/variables/filter", { offset: -1 })).status).toBe(422);
    const badSort = await t.server.request("POST", "/variables/filter", { sort: "SIDEWAYS" });
    expect(badSort.status).toBe(422);
    expect(locs(badSort.body)).toEqual([["body", "sort"]]);
    const badFilter = await t.server.request("POST", "/variables/count", { variables: { name: { nope: 1 } } });
    expect(badFilter.status).toBe(422);
    expect(locs(badFilter.body)).toEqual([["body", "variables", "name", "nope"]]);
  });

  it("publishes Prefect's variable lifecycle events", async () => {
    const seen: ReceivedEvent[] = [];
    t.server.context.events.subscribe((events) => seen.push(...events));
    const { body: variable } = await t.server.request("POST", "/variables/", { name: "evented", value: { a: 1 }, tags: ["t"] });
    await t.server.request("PATCH", `/variables/${variable.id}`, { value: 2 });
    await t.server.request("POST", "/variables/", { name: "evented", value: 3 });
    await t.server.request("DELETE", "/variables/name/evented");
    await t.server.request("DELETE", "/variables/name/evented");
    expect(seen.map((e) => e.event)).toEqual(["prefect.variable.created", "prefect.variable.updated", "prefect.variable.deleted"]);
    for (const event of seen) expect(event.resource).toEqual({ "prefect.resource.id": `prefect.variable.${variable.id}`, "prefect.resource.name": "evented" });
    expect(seen.map((e) => e.payload)).toEqual([
      { name: "evented", value: { a: 1 }, tags: ["t"] },
      { name: "evented", value: 2, tags: ["t"] },
      { name: "evented", value: 2, tags: ["t"] },
    ]);
  });
});
