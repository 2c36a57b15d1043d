import { expect, it } from "vitest";
import { PREFECT_BLOCKS, registerBlock } from "./support/blocks.js";
import { describeApi } from "./support/server.js";

const UNKNOWN = "00000000-0000-4000-8000-000000000000";
const W = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZw";
const X = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZx";
const Y = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZy";
const Z = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZz";
const MASK = "********";

describeApi("block documents API", (t) => {
  const createDocument = async (block: { typeId: string; schemaId: string }, body: Record<string, unknown>) =>
    t.server.request("POST", "/block_documents/", { block_type_id: block.typeId, block_schema_id: block.schemaId, ...body });
  const names = (docs: { name: string }[]) => docs.map((d) => d.name);

  it("creates a document (201) with its type and full schema, and reads it by id and by type slug and name", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const created = await createDocument(b, { name: "my-doc", data: { x: 1 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "my-doc",
      data: { x: 1 },
      block_type_id: b.typeId,
      block_type_name: "B",
      block_type: { id: b.typeId, slug: "b" },
      block_schema_id: b.schemaId,
      block_schema: { id: b.schemaId, checksum: PREFECT_BLOCKS.b!.block_schema.checksum, fields: { block_schema_references: {} } },
      block_document_references: {},
      is_anonymous: false,
    });
    expect((await t.server.request("GET", `/block_documents/${created.body.id}`)).body).toEqual(created.body);
    expect((await t.server.request("GET", "/block_types/slug/b/block_documents/name/my-doc")).body).toEqual(created.body);
    expect((await t.server.request("GET", "/block_types/slug/b/block_documents")).body).toEqual([created.body]);
  });

  it("answers unknown and malformed ids and names with 404", async () => {
    await registerBlock(t.server, PREFECT_BLOCKS.b!);
    expect(await t.server.request("GET", `/block_documents/${UNKNOWN}`)).toMatchObject({ status: 404, body: { detail: "Block document not found" } });
    expect((await t.server.request("GET", "/block_documents/not-even")).status).toBe(404);
    expect((await t.server.request("PATCH", "/block_documents/not-even", { data: {} })).status).toBe(404);
    expect((await t.server.request("PATCH", `/block_documents/${UNKNOWN}`, { data: {} })).body).toEqual({ detail: "Block document not found" });
    expect((await t.server.request("DELETE", `/block_documents/${UNKNOWN}`)).status).toBe(404);
    expect((await t.server.request("GET", "/block_types/slug/b/block_documents/name/nope")).body).toEqual({ detail: "Block document not found" });
    expect((await t.server.request("GET", "/block_types/slug/nope/block_documents/name/nope")).status).toBe(404);
    expect(await t.server.request("GET", "/block_types/slug/nope/block_documents")).toMatchObject({ status: 404, body: { detail: "Block type not found" } });
  });

  it("refuses bad documents as Prefect does, writing nothing", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    await createDocument(b, { name: "taken", data: { x: 1 } });
    expect(await createDocument(b, { name: "taken", data: { x: 2 } })).toMatchObject({ status: 409, body: { detail: "Block already exists" } });
    const unnamed = await createDocument(b, { data: {} });
    expect(unnamed.status).toBe(422);
    expect(unnamed.body.detail[0].msg).toBe("Value error, Names must be provided for block documents.");
    for (const name of ["My Block", "my_block", "my/block", "my%block"]) expect((await createDocument(b, { name, data: {} })).status).toBe(422);
    expect((await createDocument(b, { name: "x", data: [] })).status).toBe(422);
    expect((await createDocument(b, { name: "x", data: {}, extra: 1 })).status).toBe(422);
    expect((await createDocument({ ...b, schemaId: UNKNOWN }, { name: "x", data: {} })).status).toBe(409);
    expect(await createDocument(b, { name: "x", data: { a: 1, b: { $ref: {} } } })).toMatchObject({
      status: 400,
      body: { detail: "Received block reference without a block_document_id in key b" },
    });
    expect(await createDocument(b, { name: "x", data: { b: { $ref: { block_document_id: UNKNOWN } } } })).toMatchObject({
      status: 409,
      body: { detail: expect.stringContaining("Data integrity conflict") },
    });
    expect((await t.server.request("POST", "/block_documents/filter", {})).body.map((d: { name: string }) => d.name)).toEqual(["taken"]);
  });

  it("hides anonymous documents unless asked for them, and filters, sorts, pages and counts", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const c = await registerBlock(t.server, PREFECT_BLOCKS.c!);
    for (const name of ["z-doc", "a-doc"]) await createDocument(b, { name, data: { x: 1 } });
    await createDocument(c, { name: "m-doc", data: { y: 1 } });
    const anonymous = await createDocument(c, { data: { y: 2 }, is_anonymous: true });
    expect(anonymous.status).toBe(201);
    expect(anonymous.body.name).toMatch(/^anonymous-/);
    const again = await createDocument(c, { data: { y: 3 }, is_anonymous: true });
    expect(again.body.name).not.toBe(anonymous.body.name);

    const filter = async (body: unknown) => names((await t.server.request("POST", "/block_documents/filter", body)).body);
    expect(await filter({})).toEqual(["a-doc", "m-doc", "z-doc"]);
    expect(await filter(null)).toEqual(["a-doc", "m-doc", "z-doc"]);
    expect(await filter({ block_documents: { name: { like_: "doc" } } })).toEqual(["a-doc", "m-doc", "z-doc"]);
    expect(await filter({ block_documents: { is_anonymous: { eq_: true } } })).toEqual([anonymous.body.name, again.body.name].sort());
    expect(await filter({ block_documents: { is_anonymous: null } })).toHaveLength(5);
    expect(await filter({ block_types: { slug: { any_: ["c"] } } })).toEqual(["m-doc"]);
    expect(await filter({ block_schemas: { block_capabilities: { all_: ["fly"] } } })).toEqual(["a-doc", "z-doc"]);
    expect(await filter({ sort: "NAME_DESC" })).toEqual(["z-doc", "m-doc", "a-doc"]);
    expect(await filter({ sort: "BLOCK_TYPE_AND_NAME_ASC" })).toEqual(["a-doc", "z-doc", "m-doc"]);
    expect(await filter({ limit: 1, offset: 1 })).toEqual(["m-doc"]);
    expect((await t.server.request("POST", "/block_documents/filter", { limit: 201 })).status).toBe(422);
    expect((await t.server.request("POST", "/block_documents/filter", { sort: "NOPE" })).status).toBe(422);

    expect((await t.server.request("POST", "/block_documents/count", {})).body).toBe(3);
    expect((await t.server.request("POST", "/block_documents/count", { block_documents: { is_anonymous: { eq_: true } } })).body).toBe(2);
    expect((await t.server.request("POST", "/block_documents/count", { block_types: { slug: { any_: ["b"] } } })).body).toBe(2);
    expect(names((await t.server.request("GET", "/block_types/slug/c/block_documents")).body)).toEqual(["m-doc"]);
    expect((await t.server.request("GET", `/block_documents/${anonymous.body.id}`)).body.is_anonymous).toBe(true);
    expect((await t.server.request("GET", `/block_types/slug/c/block_documents/name/${anonymous.body.name}`)).body.id).toBe(anonymous.body.id);
  });

  it("masks secret fields on every read unless include_secrets is set", async () => {
    const secret = await registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
    const created = await createDocument(secret, { name: "secret-block", data: { w: { secret: W }, x: X, y: Y, z: Z } });
    const masked = { w: { secret: MASK }, x: MASK, y: MASK, z: Z };
    const clear = { w: { secret: W }, x: X, y: Y, z: Z };
    expect(created.body.data).toEqual(masked);
    const reads = [
      async (secrets: string) => (await t.server.request("GET", `/block_documents/${created.body.id}${secrets}`)).body.data,
      async (secrets: string) => (await t.server.request("GET", `/block_types/slug/secretblockd/block_documents/name/secret-block${secrets}`)).body.data,
      async (secrets: string) => (await t.server.request("GET", `/block_types/slug/secretblockd/block_documents${secrets}`)).body[0].data,
      async (secrets: string) =>
        (await t.server.request("POST", "/block_documents/filter", secrets ? { include_secrets: true } : {})).body[0].data,
    ];
    for (const read of reads) {
      expect(await read("")).toEqual(masked);
      expect(await read("?include_secrets=true")).toEqual(clear);
    }
    expect((await t.server.request("GET", `/block_documents/${created.body.id}?include_secrets=false`)).body.data).toEqual(masked);
    expect((await t.server.request("GET", `/block_documents/${created.body.id}?include_secrets=maybe`)).status).toBe(422);
  });

  it("masks secrets in lists and dicts as wholes", async () => {
    const block = await registerBlock(t.server, PREFECT_BLOCKS.listsecrets!);
    const created = await createDocument(block, { name: "lists", data: { tokens: ["a", "b"], mapping: { k: "v" }, plain: "p" } });
    expect(created.body.data).toEqual({ tokens: MASK, mapping: { k: "v" }, plain: "p" });
  });

  it("keeps a stored secret when an update sends its mask back, and merges or replaces data", async () => {
    const secret = await registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
    const { body: doc } = await createDocument(secret, { name: "secret-block", data: { w: { secret: W }, x: X, y: Y, z: Z } });
    const read = async () => (await t.server.request("GET", `/block_documents/${doc.id}?include_secrets=true`)).body.data;

    expect((await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { ...doc.data, z: "new" } })).status).toBe(204);
    expect(await read()).toEqual({ w: { secret: W }, x: X, y: Y, z: "new" });
    await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { x: "changed" } });
    expect(await read()).toEqual({ w: { secret: W }, x: "changed", y: Y, z: "new" });
    await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { w: { secret: MASK }, x: MASK, z: "z" }, merge_existing_data: false });
    expect(await read()).toEqual({ w: { secret: W }, x: "changed", z: "z" });
    const before = (await t.server.request("GET", `/block_documents/${doc.id}`)).body.updated;
    await t.server.request("PATCH", `/block_documents/${doc.id}`, {});
    expect((await t.server.request("GET", `/block_documents/${doc.id}`)).body.updated).toBe(before);
    await t.server.request("PATCH", `/block_documents/${doc.id}`, { merge_existing_data: false });
    expect(await read()).toEqual({});
    expect((await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { a: 1 }, extra: true })).status).toBe(422);
  });

  it("nests referenced documents as Prefect does, masking their secrets, and follows their updates", async () => {
    const child = await registerBlock(t.server, PREFECT_BLOCKS.childblock!);
    const parent = await registerBlock(t.server, PREFECT_BLOCKS.parentblock!);
    const { body: childDoc } = await createDocument(child, { name: "child", data: { x: X, y: Y, z: { secret: Z } } });
    const created = await createDocument(parent, { name: "nested-test", data: { a: 3, b: "b", child: { $ref: { block_document_id: childDoc.id } } } });
    expect(created.status).toBe(201);
    expect(created.body.data).toEqual({ a: 3, b: MASK, child: { x: MASK, y: Y, z: { secret: MASK } } });
    expect(created.body.block_document_references).toEqual({
      child: { block_document: { id: childDoc.id, name: "child", block_type: childDoc.block_type, is_anonymous: false, block_document_references: {} } },
    });
    expect(created.body.block_schema.fields.block_schema_references).toEqual({
      child: { block_schema_checksum: PREFECT_BLOCKS.childblock!.block_schema.checksum, block_type_slug: "childblock" },
    });
    const clear = await t.server.request("GET", `/block_documents/${created.body.id}?include_secrets=true`);
    expect(clear.body.data).toEqual({ a: 3, b: "b", child: { x: X, y: Y, z: { secret: Z } } });

    await t.server.request("PATCH", `/block_documents/${childDoc.id}`, { data: { y: "changed" } });
    expect((await t.server.request("GET", `/block_documents/${created.body.id}`)).body.data.child.y).toBe("changed");
  });

  it("nests two levels deep and lists references of references", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const c = await registerBlock(t.server, PREFECT_BLOCKS.c!);
    const d = await registerBlock(t.server, PREFECT_BLOCKS.d!);
    const e = await registerBlock(t.server, PREFECT_BLOCKS.e!);
    const { body: bDoc } = await createDocument(b, { name: "b", data: { x: 1 } });
    const { body: cDoc } = await createDocument(c, { name: "c", data: { y: 2 } });
    const { body: dDoc } = await createDocument(d, { data: { b: { $ref: { block_document_id: bDoc.id } }, z: "zz" }, is_anonymous: true });
    const { body: eDoc } = await createDocument(e, { name: "e", data: { c: { $ref: { block_document_id: cDoc.id } }, d: { $ref: { block_document_id: dDoc.id } } } });
    expect(eDoc.data).toEqual({ c: { y: 2 }, d: { b: { x: 1 }, z: "zz" } });
    expect(eDoc.block_document_references.d.block_document).toMatchObject({
      id: dDoc.id,
      is_anonymous: true,
      block_document_references: { b: { block_document: { id: bDoc.id, name: "b", is_anonymous: false, block_document_references: {} } } },
    });
    const filtered = (await t.server.request("POST", "/block_documents/filter", {})).body;
    expect(names(filtered)).toEqual(["b", "c", "e"]);
    expect(filtered[2]).toEqual(eDoc);
  });

  it("replaces references through updates, refusing unknown documents and cycles without writing", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const d = await registerBlock(t.server, PREFECT_BLOCKS.d!);
    const { body: inner } = await createDocument(b, { name: "inner", data: { x: 1 } });
    const { body: other } = await createDocument(b, { name: "other", data: { x: 2 } });
    const { body: outer } = await createDocument(d, { name: "outer", data: { b: { $ref: { block_document_id: inner.id } }, z: "zzzzz" } });
    const get = async (id: string) => (await t.server.request("GET", `/block_documents/${id}`)).body;

    await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { b: { $ref: { block_document_id: other.id } }, z: "zzzzz" } });
    expect((await get(outer.id)).data).toEqual({ b: { x: 2 }, z: "zzzzz" });
    expect((await get(outer.id)).block_document_references.b.block_document.id).toBe(other.id);

    expect(
      await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { b: { $ref: { block_document_id: UNKNOWN } }, z: "changed" } }),
    ).toMatchObject({ status: 409 });
    expect(await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { b: { $ref: {} }, z: "changed" } })).toMatchObject({ status: 400 });
    expect(await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { b: { $ref: { block_document_id: outer.id } } } })).toMatchObject({
      status: 400,
    });
    const cycle = await t.server.request("PATCH", `/block_documents/${other.id}`, { data: { back: { $ref: { block_document_id: outer.id } } } });
    expect(cycle.status).toBe(400);
    expect(cycle.body.detail).toContain("would introduce a cycle");
    expect((await get(outer.id)).data).toEqual({ b: { x: 2 }, z: "zzzzz" });
    expect((await get(other.id)).data).toEqual({ x: 2 });

    await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { b: {}, z: "zzzzz" }, merge_existing_data: false });
    expect(await get(outer.id)).toMatchObject({ data: { b: {}, z: "zzzzz" }, block_document_references: {} });
  });

  it("moves a document to another schema of its type only", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const c = await registerBlock(t.server, PREFECT_BLOCKS.c!);
    const { body: doc } = await createDocument(b, { name: "doc", data: { x: 1 } });
    const v2 = await t.server.request("POST", "/block_schemas/", { fields: { title: "B", properties: {} }, block_type_id: b.typeId, version: "2" });
    await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { x: 2 }, block_schema_id: v2.body.id });
    expect((await t.server.request("GET", `/block_documents/${doc.id}`)).body).toMatchObject({ block_schema_id: v2.body.id, data: { x: 2 } });
    expect(await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { x: 3 }, block_schema_id: c.schemaId })).toMatchObject({
      status: 400,
      body: { detail: "Must migrate block document to a block schema of the same block type." },
    });
    expect((await t.server.request("GET", `/block_documents/${doc.id}`)).body.data).toEqual({ x: 2 });
  });

  it("deletes a document, and the references to it", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const d = await registerBlock(t.server, PREFECT_BLOCKS.d!);
    const { body: inner } = await createDocument(b, { name: "inner", data: { x: 1 } });
    const { body: outer } = await createDocument(d, { name: "outer", data: { b: { $ref: { block_document_id: inner.id } }, z: "z" } });
    expect((await t.server.request("DELETE", `/block_documents/${inner.id}`)).status).toBe(204);
    expect((await t.server.request("GET", `/block_documents/${inner.id}`)).status).toBe(404);
    expect((await t.server.request("GET", `/block_documents/${outer.id}`)).body).toMatchObject({ data: { z: "z" }, block_document_references: {} });
    expect((await t.server.request("DELETE", `/block_documents/${inner.id}`)).status).toBe(404);
  });
});

describeApi("server default result storage", (t) => {
  it("is cleared when its block document goes, with the document, its schema or its type", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const document = async (name: string) =>
      (await t.server.request("POST", "/block_documents/", { name, data: { x: 1 }, block_type_id: b.typeId, block_schema_id: b.schemaId })).body.id as string;
    const setDefault = (id: string) => t.server.db.configuration.set("server-default-result-storage", { default_result_storage_block_id: id });
    const current = () => t.server.db.configuration.get("server-default-result-storage");

    const [kept, removed] = [await document("kept"), await document("removed")];
    await setDefault(kept);
    await t.server.request("DELETE", `/block_documents/${removed}`);
    expect(await current()).toEqual({ default_result_storage_block_id: kept });
    await t.server.request("DELETE", `/block_documents/${kept}`);
    expect(await current()).toBeUndefined();

    await setDefault(await document("by-schema"));
    await t.server.request("DELETE", `/block_schemas/${b.schemaId}`);
    expect(await current()).toBeUndefined();

    const schema = await t.server.request("POST", "/block_schemas/", { fields: { title: "B2" }, block_type_id: b.typeId });
    const byType = await t.server.request("POST", "/block_documents/", { name: "by-type", data: {}, block_type_id: b.typeId, block_schema_id: schema.body.id });
    await setDefault(byType.body.id);
    await t.server.request("DELETE", `/block_types/${b.typeId}`);
    expect(await current()).toBeUndefined();
  });
});

describeApi("block lifecycle events", (t) => {
  it("publishes Prefect's block type and (named) block document events after each change", async () => {
    const seen: { event: string; resource: Record<string, string>; related?: unknown; payload?: Record<string, unknown> }[] = [];
    t.server.context.events.subscribe((events) => seen.push(...events));
    const block = await registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
    const { body: doc } = await t.server.request("POST", "/block_documents/", {
      name: "secret",
      data: { w: { k: "v" }, x: "xx", y: "yy", z: "plain" },
      block_type_id: block.typeId,
      block_schema_id: block.schemaId,
    });
    await t.server.request("POST", "/block_documents/", { is_anonymous: true, data: {}, block_type_id: block.typeId, block_schema_id: block.schemaId });
    await t.server.request("PATCH", `/block_documents/${doc.id}`, { data: { z: "changed" } });
    await t.server.request("DELETE", `/block_documents/${doc.id}`);
    await t.server.request("PATCH", `/block_types/${block.typeId}`, { description: "new" });
    await t.server.request("DELETE", `/block_types/${block.typeId}`);
    await t.server.request("POST", "/block_types/install_system_block_types");
    await t.server.request("POST", "/block_types/install_system_block_types");

    expect(seen.map((e) => e.event)).toEqual([
      "prefect.block-type.created",
      "prefect.block-document.created",
      "prefect.block-document.updated",
      "prefect.block-document.deleted",
      "prefect.block-type.updated",
      "prefect.block-type.deleted",
      // The first install creates the 14 types Prefect registers; the second, none.
      ...Array(14).fill("prefect.block-type.created"),
    ]);
    const created = seen[1]!;
    expect(created.resource).toEqual({ "prefect.resource.id": `prefect.block-document.${doc.id}`, "prefect.resource.name": "secret" });
    expect(created.payload).toEqual({ name: "secret", data: { z: "plain" }, block_schema: { capabilities: [], block_type: { id: block.typeId, name: "SecretBlockD" } } });
    expect(created.related).toEqual([
      { "prefect.resource.id": `prefect.block-type.${block.typeId}`, "prefect.resource.role": "block-type", "prefect.resource.name": "SecretBlockD" },
      { "prefect.resource.id": `prefect.block-schema.${block.schemaId}`, "prefect.resource.role": "block-schema" },
    ]);
    expect(seen[4]!.payload).toMatchObject({ slug: "secretblockd", description: "new", is_protected: false });
  });
});
