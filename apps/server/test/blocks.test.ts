import { expect, it } from "vitest";
import { PREFECT_BLOCKS, postSchema, registerBlock, registerType } from "./support/blocks.js";
import { describeApi } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

describeApi("block types API", (t) => {
  it("creates a block type (201), escaping its texts as Prefect does, and reads it by id and slug", async () => {
    const created = await t.server.request("POST", "/block_types/", {
      name: "My Block 👍",
      slug: "my-block",
      logo_url: "http://example.com/logo.png",
      description: "Use <b>this</b> & that",
      code_example: "x = 1 > 0",
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "My Block 👍",
      slug: "my-block",
      logo_url: "http://example.com/logo.png",
      documentation_url: null,
      description: "Use &lt;b&gt;this&lt;/b&gt; &amp; that",
      code_example: "x = 1 &gt; 0",
      is_protected: false,
    });
    expect((await t.server.request("GET", `/block_types/${created.body.id}`)).body).toEqual(created.body);
    expect((await t.server.request("GET", "/block_types/slug/my-block")).body).toEqual(created.body);
  });

  it("answers a taken slug with 409, reserved names with 403, bad names and slugs with 422, writing nothing", async () => {
    await t.server.request("POST", "/block_types/", { name: "x", slug: "x" });
    expect(await t.server.request("POST", "/block_types/", { name: "x", slug: "x" })).toMatchObject({
      status: 409,
      body: { detail: 'Block type with name "x" already exists' },
    });
    for (const name of ["PrefectBlockType", "prefect_block_type", "pReFeCt!"]) {
      expect(await t.server.request("POST", "/block_types/", { name, slug: "reserved" })).toMatchObject({
        status: 403,
        body: { detail: "Block type names beginning with 'Prefect' are reserved." },
      });
    }
    const badSlug = await t.server.request("POST", "/block_types/", { name: "bad slug", slug: "bad slug" });
    expect(badSlug.status).toBe(422);
    expect(badSlug.body.detail[0]).toMatchObject({ loc: ["body", "slug"], msg: "Value error, Block type slug must only contain lowercase letters, numbers, and dashes." });
    expect((await t.server.request("POST", "/block_types/", { name: "my/block", slug: "my-block" })).status).toBe(422);
    expect((await t.server.request("POST", "/block_types/", { name: "ok", slug: "ok", is_protected: true })).status).toBe(422);
    expect((await t.server.request("POST", "/block_types/filter", {})).body.map((b: { slug: string }) => b.slug)).toEqual(["x"]);
  });

  it("answers unknown ids and slugs with 404 and malformed ids with Prefect's route 404", async () => {
    expect(await t.server.request("GET", `/block_types/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Block type not found" } });
    expect(await t.server.request("GET", "/block_types/slug/nope")).toMatchObject({ status: 404, body: { detail: "Block type not found" } });
    expect(await t.server.request("GET", "/block_types/not-a-uuid")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
    expect((await t.server.request("PATCH", `/block_types/${UNKNOWN}`, { description: "x" })).status).toBe(404);
    expect((await t.server.request("DELETE", `/block_types/${UNKNOWN}`)).status).toBe(404);
  });

  it("filters by name and by capabilities of their schemas, pages, and refuses a limit over 200", async () => {
    for (const slug of ["a", "b", "c", "d"]) await registerBlock(t.server, PREFECT_BLOCKS[slug]!);
    const names = async (body: unknown) => (await t.server.request("POST", "/block_types/filter", body)).body.map((b: { slug: string }) => b.slug);
    expect(await names({})).toEqual(["a", "b", "c", "d"]);
    expect(await names({ block_schemas: { block_capabilities: { all_: ["fly"] } } })).toEqual(["b", "d"]);
    expect(await names({ block_schemas: { block_capabilities: { all_: ["fly", "swim"] } } })).toEqual(["d"]);
    expect(await names({ block_types: { slug: { any_: ["c", "a"] } } })).toEqual(["a", "c"]);
    expect(await names({ limit: 2, offset: 1 })).toEqual(["b", "c"]);
    expect((await t.server.request("POST", "/block_types/filter", { limit: 201 })).status).toBe(422);
  });

  it("updates only when something changes, protected types included", async () => {
    const { body: type } = await t.server.request("POST", "/block_types/", { name: "x", slug: "x" });
    const full = { logo_url: "http://foo.com/bar.png", documentation_url: "http://foo.com/bar.html", description: "A <block>", code_example: "ok" };
    expect((await t.server.request("PATCH", `/block_types/${type.id}`, full)).status).toBe(204);
    const updated = (await t.server.request("GET", `/block_types/${type.id}`)).body;
    expect(updated).toMatchObject(full);
    expect(updated.updated > type.updated).toBe(true);
    expect((await t.server.request("PATCH", `/block_types/${type.id}`, full)).status).toBe(204);
    expect((await t.server.request("GET", `/block_types/${type.id}`)).body.updated).toBe(updated.updated);
    expect((await t.server.request("PATCH", `/block_types/${type.id}`, { description: "new" })).status).toBe(204);
    expect((await t.server.request("GET", `/block_types/${type.id}`)).body).toMatchObject({ ...full, description: "new" });
    expect((await t.server.request("PATCH", `/block_types/${type.id}`, { name: "renamed" })).status).toBe(422);

    await t.server.request("POST", "/block_types/install_system_block_types");
    const secret = (await t.server.request("GET", "/block_types/slug/secret")).body;
    expect((await t.server.request("PATCH", `/block_types/${secret.id}`, { description: "Hi there!" })).status).toBe(204);
  });

  it("deletes a type with its schemas and documents, but not a protected one", async () => {
    const { typeId, schemaId } = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    await t.server.request("POST", "/block_documents/", { name: "doc", data: { x: 1 }, block_type_id: typeId, block_schema_id: schemaId });
    expect((await t.server.request("DELETE", `/block_types/${typeId}`)).status).toBe(204);
    expect((await t.server.request("GET", `/block_types/${typeId}`)).status).toBe(404);
    expect((await t.server.request("GET", `/block_schemas/${schemaId}`)).status).toBe(404);
    expect((await t.server.request("POST", "/block_documents/count", {})).body).toBe(0);

    await t.server.request("POST", "/block_types/install_system_block_types");
    const secret = (await t.server.request("GET", "/block_types/slug/secret")).body;
    expect(await t.server.request("DELETE", `/block_types/${secret.id}`)).toMatchObject({ status: 403, body: { detail: "protected block types cannot be deleted." } });
    expect((await t.server.request("GET", `/block_types/${secret.id}`)).status).toBe(200);
  });
});

describeApi("block schemas API", (t) => {
  it("creates a schema with Prefect's checksum (201), and returns it again for the same fields and version (200)", async () => {
    const b = PREFECT_BLOCKS.b!;
    const typeId = await registerType(t.server, b);
    const first = await postSchema(t.server, b, typeId);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ checksum: b.block_schema.checksum, block_type_id: typeId, capabilities: ["fly"], version: "non-versioned", block_type: { slug: "b" } });
    expect(first.body.fields).toMatchObject({ title: "B", block_schema_references: {} });
    const again = await postSchema(t.server, b, typeId);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const versioned = await postSchema(t.server, b, typeId, "2.0");
    expect(versioned.status).toBe(201);
    expect(versioned.body).toMatchObject({ checksum: b.block_schema.checksum, version: "2.0" });

    const byChecksum = await t.server.request("GET", `/block_schemas/checksum/${b.block_schema.checksum}`);
    expect(byChecksum.body.id).toBe(versioned.body.id);
    expect((await t.server.request("GET", `/block_schemas/checksum/${b.block_schema.checksum}?version=non-versioned`)).body.id).toBe(first.body.id);
    expect((await t.server.request("GET", `/block_schemas/${first.body.id}`)).body).toEqual({ ...first.body, fields: first.body.fields });
    expect(await t.server.request("GET", "/block_schemas/checksum/sha256:nope")).toMatchObject({ status: 404, body: { detail: "Block schema not found" } });
    expect(await t.server.request("GET", `/block_schemas/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Block schema not found" } });
  });

  it("keeps floats as Python floats for the checksum", async () => {
    const floaty = PREFECT_BLOCKS.floaty!;
    const { schemaId } = await registerBlock(t.server, floaty);
    const read = await t.server.request("GET", `/block_schemas/checksum/${floaty.block_schema.checksum}`);
    expect(read.body.id).toBe(schemaId);
    expect(read.body.fields.properties.timeout.default).toBe(10);
    expect(read.body.fields.definitions.Point).toBeDefined();
  });

  it("creates nested schemas from definitions with Prefect's checksums, and shows references and definitions as Prefect does", async () => {
    const e = PREFECT_BLOCKS.e!;
    const types: Record<string, string> = {};
    for (const slug of ["b", "c", "d", "e"]) types[slug] = await registerType(t.server, PREFECT_BLOCKS[slug]!);
    const created = await postSchema(t.server, e, types.e!);
    expect(created.status).toBe(201);
    expect(created.body.checksum).toBe(e.block_schema.checksum);
    expect(created.body.fields).toEqual(JSON.parse(JSON.stringify(e.block_schema.fields)));

    for (const slug of ["b", "c", "d"]) {
      const nested = await t.server.request("GET", `/block_schemas/checksum/${PREFECT_BLOCKS[slug]!.block_schema.checksum}`);
      expect(nested.status).toBe(200);
      expect(nested.body.block_type_id).toBe(types[slug]);
    }
    const read = await t.server.request("GET", `/block_schemas/${created.body.id}`);
    expect(read.body.fields).toEqual(JSON.parse(JSON.stringify(e.block_schema.fields)));
    const d = await t.server.request("GET", `/block_schemas/checksum/${PREFECT_BLOCKS.d!.block_schema.checksum}`);
    expect(d.body.fields).toEqual(JSON.parse(JSON.stringify(PREFECT_BLOCKS.d!.block_schema.fields)));
    const all = await t.server.request("POST", "/block_schemas/filter", {});
    expect(all.body).toHaveLength(4);
    expect(all.body.find((s: { id: string }) => s.id === created.body.id).fields).toEqual(read.body.fields);
  });

  it("registers a union of nested blocks", async () => {
    for (const slug of ["b", "c"]) await registerType(t.server, PREFECT_BLOCKS[slug]!);
    const union = PREFECT_BLOCKS.unionparent!;
    const created = await postSchema(t.server, union, await registerType(t.server, union));
    expect(created.status).toBe(201);
    expect(created.body.checksum).toBe(union.block_schema.checksum);
    for (const slug of ["b", "c"]) {
      expect((await t.server.request("GET", `/block_schemas/checksum/${PREFECT_BLOCKS[slug]!.block_schema.checksum}`)).status).toBe(200);
    }
    const read = await t.server.request("GET", `/block_schemas/${created.body.id}`);
    expect(read.body.fields.block_schema_references).toEqual(JSON.parse(JSON.stringify(union.block_schema.fields.block_schema_references)));
    expect(Object.keys(read.body.fields.definitions).sort()).toEqual(Object.keys(union.block_schema.fields.definitions as object).sort());
  });

  it("refuses a schema whose nested block type is unknown with Prefect's 409, writing nothing", async () => {
    for (const slug of ["c", "d", "e"]) await registerType(t.server, PREFECT_BLOCKS[slug]!);
    const typeE = (await t.server.request("GET", "/block_types/slug/e")).body.id;
    const refused = await postSchema(t.server, PREFECT_BLOCKS.e!, typeE);
    expect(refused).toMatchObject({
      status: 409,
      body: { detail: "Cannot create block schema because block type 'b' was not found.Did you forget to register the block type?" },
    });
    expect((await t.server.request("POST", "/block_schemas/filter", {})).body).toEqual([]);
  });

  it("answers an unknown block type with 404 and bad bodies with 422", async () => {
    expect(await t.server.request("POST", "/block_schemas/", { fields: {}, block_type_id: UNKNOWN })).toMatchObject({
      status: 404,
      body: { detail: `Block type ${UNKNOWN} not found.` },
    });
    expect((await t.server.request("POST", "/block_schemas/", { fields: [], block_type_id: UNKNOWN })).status).toBe(422);
    expect((await t.server.request("POST", "/block_schemas/", { block_type_id: "nope" })).status).toBe(422);
    const typeId = await registerType(t.server, PREFECT_BLOCKS.a!);
    const missing = await t.server.request("POST", "/block_schemas/", {
      fields: { properties: { x: {} }, block_schema_references: { x: { block_type_slug: "a", block_schema_checksum: "sha256:unknown" } } },
      block_type_id: typeId,
    });
    expect(missing.status).toBe(422);
    expect((await t.server.request("POST", "/block_schemas/filter", {})).body).toEqual([]);
  });

  it("filters schemas, lists capabilities and deletes schemas, but not a protected type's", async () => {
    for (const slug of ["a", "b", "c"]) await registerBlock(t.server, PREFECT_BLOCKS[slug]!);
    const ids = async (body: unknown) => (await t.server.request("POST", "/block_schemas/filter", body)).body.map((s: { block_type: { slug: string } }) => s.block_type.slug);
    expect(await ids({})).toEqual(["c", "b", "a"]);
    expect(await ids({ block_schemas: { block_capabilities: { all_: ["run"] } } })).toEqual(["c"]);
    expect(await ids({ limit: 1, offset: 1 })).toEqual(["b"]);
    expect((await t.server.request("GET", "/block_capabilities/")).body).toEqual(["fly", "run"]);

    const b = (await t.server.request("GET", `/block_schemas/checksum/${PREFECT_BLOCKS.b!.block_schema.checksum}`)).body;
    expect((await t.server.request("DELETE", `/block_schemas/${b.id}`)).status).toBe(204);
    expect((await t.server.request("DELETE", `/block_schemas/${b.id}`)).status).toBe(404);
    expect((await t.server.request("GET", "/block_capabilities/")).body).toEqual(["run"]);

    await t.server.request("POST", "/block_types/install_system_block_types");
    const secretType = (await t.server.request("GET", "/block_types/slug/secret")).body;
    const [secretSchema] = (await t.server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [secretType.id] } } })).body;
    expect(await t.server.request("DELETE", `/block_schemas/${secretSchema.id}`)).toMatchObject({
      status: 403,
      body: { detail: "Block schemas for protected block types cannot be deleted." },
    });
  });
});

describeApi("system block types", (t) => {
  it("installs Prefect's block types (Webhook, Secret and LocalFileSystem protected), idempotently", async () => {
    expect((await t.server.request("POST", "/block_types/filter", {})).body).toEqual([]);
    for (let i = 0; i < 3; i++) {
      const response = await t.server.request("POST", "/block_types/install_system_block_types");
      expect(response.status).toBe(200);
      expect(response.body).toBeNull();
    }
    const types = (await t.server.request("POST", "/block_types/filter", {})).body;
    expect(types.map((b: { slug: string; is_protected: boolean }) => [b.slug, b.is_protected])).toEqual([
      ["custom-webhook", false],
      ["discord-webhook", false],
      ["local-file-system", true],
      ["mattermost-webhook", false],
      ["ms-teams-webhook", false],
      ["opsgenie-webhook", false],
      ["pager-duty-webhook", false],
      ["remote-file-system", false],
      ["smb", false],
      ["secret", true],
      ["sendgrid-email", false],
      ["slack-webhook", false],
      ["twilio-sms", false],
      ["webhook", true],
    ]);
    const schemas = (await t.server.request("POST", "/block_schemas/filter", {})).body;
    expect(schemas).toHaveLength(14);
    const slack = schemas.find((s: { block_type: { slug: string } }) => s.block_type.slug === "slack-webhook");
    // The checksum Prefect's client computes for its SlackWebhook class, which `SlackWebhook.load` looks up.
    expect(slack).toMatchObject({ capabilities: ["notify"], checksum: "sha256:415bae7e5906d98e387f8848ccdfd3f3b9cdf01624f08ca228709e1193ac005f", version: "3.8.3" });
    expect(slack.fields.secret_fields).toEqual(["url"]);
    const notifying = (await t.server.request("POST", "/block_schemas/filter", { block_schemas: { block_capabilities: { all_: ["notify"] } } })).body;
    expect(notifying.map((s: { block_type: { slug: string } }) => s.block_type.slug).sort()).toEqual([
      "custom-webhook",
      "discord-webhook",
      "mattermost-webhook",
      "ms-teams-webhook",
      "opsgenie-webhook",
      "pager-duty-webhook",
      "sendgrid-email",
      "slack-webhook",
      "twilio-sms",
    ]);
    const lfs = schemas.find((s: { block_type: { slug: string } }) => s.block_type.slug === "local-file-system");
    expect(lfs.version).toBe("3.8.3");
    expect([...lfs.capabilities].sort()).toEqual(["get-directory", "put-directory", "read-path", "write-path"]);
    expect((await t.server.request("GET", "/block_capabilities/")).body).toEqual(["get-directory", "notify", "put-directory", "read-path", "write-path"]);
  });

  it("protects a system type that a client registered before, and stores Secret blocks", async () => {
    const before = await t.server.request("POST", "/block_types/", { name: "Secret", slug: "secret" });
    expect(before.body.is_protected).toBe(false);
    await t.server.request("POST", "/block_types/install_system_block_types");
    const secret = (await t.server.request("GET", "/block_types/slug/secret")).body;
    expect(secret).toMatchObject({ id: before.body.id, is_protected: true, logo_url: expect.stringContaining("https://") });

    const [schema] = (await t.server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [secret.id] } }, limit: 1 })).body;
    const created = await t.server.request("POST", "/block_documents/", {
      name: "my-test-secret",
      data: { value: "sk-1234567890" },
      block_type_id: secret.id,
      block_schema_id: schema.id,
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toEqual({ value: "********" });
    const read = await t.server.request("GET", "/block_types/slug/secret/block_documents/name/my-test-secret?include_secrets=true");
    expect(read.body.data).toEqual({ value: "sk-1234567890" });
  });
});
