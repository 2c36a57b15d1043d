import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

/** A block document of one of Prefect's system block types (installed first); returns its id. */
async function systemBlockDocument(server: TestServer, slug: string, name: string, data: Record<string, unknown>): Promise<string> {
  expect((await server.request("POST", "/block_types/install_system_block_types")).status).toBe(200);
  const type = await server.request("GET", `/block_types/slug/${slug}`);
  const schemas = await server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [type.body.id] } } });
  const doc = await server.request("POST", "/block_documents/", { name, data, block_type_id: type.body.id, block_schema_id: schemas.body[0].id });
  expect(doc.status).toBe(201);
  return doc.body.id;
}

describeApi("admin storage API", (t) => {
  it("has no default result storage block until one is set", async () => {
    const read = await t.server.request("GET", "/admin/storage");
    expect(read).toMatchObject({ status: 200, body: { default_result_storage_block_id: null } });
    // Clearing nothing is fine.
    const cleared = await t.server.request("DELETE", "/admin/storage");
    expect(cleared.status).toBe(204);
    expect(cleared.body).toBeUndefined();
  });

  it("sets, replaces, reads and clears the default result storage block", async () => {
    const first = await systemBlockDocument(t.server, "local-file-system", "results", { basepath: "/tmp/results" });
    const second = await systemBlockDocument(t.server, "local-file-system", "other-results", { basepath: "/tmp/other" });
    const set = await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: first.toUpperCase() });
    expect(set).toMatchObject({ status: 200, body: { default_result_storage_block_id: first } });
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: first });
    expect((await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: second })).body).toEqual({ default_result_storage_block_id: second });
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: second });
    expect((await t.server.request("DELETE", "/admin/storage")).status).toBe(204);
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: null });
  });

  it("refuses unknown block documents (404) and blocks that cannot write paths (422), keeping the setting", async () => {
    const storage = await systemBlockDocument(t.server, "local-file-system", "results", {});
    await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: storage });

    const unknown = await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: MISSING });
    expect(unknown).toMatchObject({ status: 404, body: { detail: `Block document ${MISSING} not found.` } });

    const secret = await systemBlockDocument(t.server, "secret", "password", { value: "hunter2" });
    // Prefect answers this 422 with a plain `detail` string, which its OpenAPI document does not describe.
    const refused = await fetch(`${t.server.url}/api/admin/storage`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ default_result_storage_block_id: secret }),
    });
    expect(refused.status).toBe(422);
    expect(await refused.json()).toEqual({ detail: `Block document ${secret} cannot be used for result storage.` });
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: storage });
  });

  it("answers bad bodies with 422 listing each problem and where", async () => {
    const malformed = await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: "not-a-uuid" });
    expect(malformed.status).toBe(422);
    expect(malformed.body.detail.map((d: { loc: unknown[] }) => d.loc)).toEqual([["body", "default_result_storage_block_id"]]);
    const missing = await t.server.request("PUT", "/admin/storage", {});
    expect(missing.status).toBe(422);
    expect(missing.body.detail).toEqual([expect.objectContaining({ loc: ["body", "default_result_storage_block_id"], msg: "Field required" })]);
    expect((await t.server.request("PUT", "/admin/storage", undefined, { raw: "{" })).status).toBe(422);
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: null });
  });

  it("forgets the setting when its block document is deleted", async () => {
    const storage = await systemBlockDocument(t.server, "local-file-system", "results", {});
    await t.server.request("PUT", "/admin/storage", { default_result_storage_block_id: storage });
    expect((await t.server.request("DELETE", `/block_documents/${storage}`)).status).toBe(204);
    expect((await t.server.request("GET", "/admin/storage")).body).toEqual({ default_result_storage_block_id: null });
  });

  it("answers /csrf-token with 422 while CSRF protection is off (Prefect's default)", async () => {
    const response = await fetch(`${t.server.url}/api/csrf-token?client=abc`);
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ detail: "CSRF protection is disabled." });
    const missing = await t.server.request("GET", "/csrf-token");
    expect(missing.status).toBe(422);
    expect(missing.body.detail).toEqual([expect.objectContaining({ loc: ["query", "client"], msg: "Field required" })]);
    // Changes need no token.
    expect((await t.server.request("PUT", "/saved_searches/", { name: "free" })).status).toBe(201);
  });
});
