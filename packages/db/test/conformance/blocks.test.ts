import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  AlreadyExistsError,
  type BlockDocument,
  type BlockDocumentCreate,
  BlockDocumentFilter,
  type BlockSchemaCreate,
  BlockSchemaFilter,
  type BlockType,
  type BlockTypeCreate,
  InvalidError,
  NotFoundError,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

/** Filters as the API receives them (parsed: defaults applied, ids lower-cased). */
const schemaFilter = (filter: z.input<typeof BlockSchemaFilter>) => BlockSchemaFilter.parse(filter);
const documentFilter = (filter: z.input<typeof BlockDocumentFilter>) => BlockDocumentFilter.parse(filter);

describeEachBackend("blocks", (t) => {
  const createType = (slug: string, overrides: Partial<BlockTypeCreate> = {}) => t.db.blocks.createType({ name: `Type ${slug}`, slug, ...overrides });
  const createSchema = async (type: BlockType, overrides: Partial<BlockSchemaCreate> = {}) =>
    (await t.db.blocks.createSchema({ checksum: `sha256:${randomUUID()}`, block_type_id: type.id, ...overrides })).row;
  /** A block type with one schema (capabilities as given), ready for documents. */
  const createKind = async (slug: string, capabilities: string[] = []) => {
    const type = await createType(slug);
    return { type, schema: await createSchema(type, { capabilities }) };
  };
  const createDocument = (kind: { type: BlockType; schema: { id: string } }, overrides: Partial<BlockDocumentCreate> = {}) =>
    t.db.blocks.createDocument({ name: "doc", data: {}, block_type_id: kind.type.id, block_schema_id: kind.schema.id, ...overrides });
  const names = (docs: BlockDocument[]) => docs.map((d) => d.name);

  describe("block types", () => {
    it("creates a type with defaults and reads it back by id and by slug", async () => {
      const type = await createType("aws-credentials", { name: "AWS Credentials", description: "Keys" });
      expect(type).toMatchObject({ name: "AWS Credentials", slug: "aws-credentials", description: "Keys", logo_url: null, code_example: null, is_protected: false });
      expect(await t.db.blocks.getType(type.id)).toEqual(type);
      expect(await t.db.blocks.getTypeBySlug("aws-credentials")).toEqual(type);
    });

    it("returns null for an unknown id or slug", async () => {
      expect(await t.db.blocks.getType(randomUUID())).toBeNull();
      expect(await t.db.blocks.getTypeBySlug("nope")).toBeNull();
    });

    it("refuses a duplicate slug", async () => {
      await createType("s3");
      await expect(createType("s3", { name: "Another" })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it.each(["Has Spaces", "UPPER", "under_score", ""])("refuses the invalid slug %j", async (slug) => {
      await expect(createType(slug)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.blocks.countTypes()).toBe(0);
    });

    it("reads types ordered by name, filtered by name like_ and slug any_", async () => {
      await createType("b", { name: "Beta Storage" });
      await createType("a", { name: "Alpha storage" });
      await createType("c", { name: "Gamma" });
      expect((await t.db.blocks.readTypes()).map((bt) => bt.slug)).toEqual(["a", "b", "c"]);
      expect((await t.db.blocks.readTypes({ block_types: { name: { like_: "STORAGE" } } })).map((bt) => bt.slug)).toEqual(["a", "b"]);
      expect((await t.db.blocks.readTypes({ block_types: { slug: { any_: ["c", "a"] } } })).map((bt) => bt.slug)).toEqual(["a", "c"]);
      expect((await t.db.blocks.readTypes({ limit: 1, offset: 1 })).map((bt) => bt.slug)).toEqual(["b"]);
    });

    it("reads the types that have a schema with the given capabilities", async () => {
      await createKind("storage", ["read-path", "write-path"]);
      await createKind("reader", ["read-path"]);
      await createType("bare");
      const slugs = async (all_: string[]) => (await t.db.blocks.readTypes({ block_schemas: schemaFilter({ block_capabilities: { all_ } }) })).map((bt) => bt.slug);
      expect(await slugs(["read-path"])).toEqual(["reader", "storage"]);
      expect(await slugs(["read-path", "write-path"])).toEqual(["storage"]);
    });

    it("counts types with the same filters", async () => {
      await createKind("storage", ["write-path"]);
      await createType("other", { name: "Other storage" });
      expect(await t.db.blocks.countTypes()).toBe(2);
      expect(await t.db.blocks.countTypes({ block_types: { name: { like_: "storage" } } })).toBe(2);
      expect(await t.db.blocks.countTypes({ block_schemas: schemaFilter({ block_capabilities: { all_: ["write-path"] } }) })).toBe(1);
    });

    it("updates a type", async () => {
      const type = await createType("s3");
      const updated = await t.db.blocks.updateType(type.id, { description: "new", logo_url: "https://logo" });
      expect(updated).toMatchObject({ id: type.id, slug: "s3", description: "new", logo_url: "https://logo" });
      expect(updated.updated > type.updated).toBe(true);
      expect(await t.db.blocks.getType(type.id)).toEqual(updated);
    });

    it("updates a type's name and protection (for installing system block types)", async () => {
      const type = await createType("secret");
      const updated = await t.db.blocks.updateType(type.id, { name: "Secret", is_protected: true });
      expect(updated).toMatchObject({ id: type.id, slug: "secret", name: "Secret", is_protected: true });
      expect(await t.db.blocks.getType(type.id)).toEqual(updated);
    });

    it("refuses to update or delete an unknown type", async () => {
      await expect(t.db.blocks.updateType(randomUUID(), { description: "x" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.blocks.deleteType(randomUUID())).rejects.toBeInstanceOf(NotFoundError);
    });

    it("takes type ids in any case", async () => {
      const type = await createType("s3");
      const id = type.id.toUpperCase();
      expect((await t.db.blocks.getType(id))?.id).toBe(type.id);
      expect((await t.db.blocks.updateType(id, { description: "x" })).description).toBe("x");
      await t.db.blocks.deleteType(id);
      expect(await t.db.blocks.getType(type.id)).toBeNull();
    });

    it("deletes a type with its schemas and documents", async () => {
      const kind = await createKind("s3");
      const doc = await createDocument(kind);
      const other = await createKind("gcs");
      await t.db.blocks.deleteType(kind.type.id);
      expect(await t.db.blocks.getType(kind.type.id)).toBeNull();
      expect(await t.db.blocks.getSchema(kind.schema.id)).toBeNull();
      expect(await t.db.blocks.getDocument(doc.id)).toBeNull();
      expect(await t.db.blocks.getSchema(other.schema.id)).not.toBeNull();
    });
  });

  describe("block schemas", () => {
    it("creates a schema with its block type embedded", async () => {
      const type = await createType("s3");
      const { row, created } = await t.db.blocks.createSchema({ checksum: "sha256:1", block_type_id: type.id, fields: { title: "S3", properties: {} }, capabilities: ["read-path"] });
      expect(created).toBe(true);
      expect(row).toMatchObject({ checksum: "sha256:1", version: "non-versioned", fields: { title: "S3", properties: {} }, capabilities: ["read-path"], block_type_id: type.id, block_type: type });
      expect(await t.db.blocks.getSchema(row.id)).toEqual(row);
    });

    it("returns the existing schema, untouched, for the same checksum and version", async () => {
      const type = await createType("s3");
      const first = await t.db.blocks.createSchema({ checksum: "sha256:1", version: "1.0", block_type_id: type.id, fields: { a: 1 } });
      const again = await t.db.blocks.createSchema({ checksum: "sha256:1", version: "1.0", block_type_id: type.id, fields: { b: 2 } });
      expect(again.created).toBe(false);
      expect(again.row).toEqual(first.row);
      expect(await t.db.blocks.readSchemas()).toHaveLength(1);
    });

    it("creates another schema for the same checksum with another version", async () => {
      const type = await createType("s3");
      const v1 = await t.db.blocks.createSchema({ checksum: "sha256:1", version: "1.0", block_type_id: type.id });
      const v2 = await t.db.blocks.createSchema({ checksum: "sha256:1", version: "2.0", block_type_id: type.id });
      expect(v2.created).toBe(true);
      expect(v2.row.id).not.toBe(v1.row.id);
    });

    it("refuses a schema for an unknown block type", async () => {
      await expect(t.db.blocks.createSchema({ checksum: "sha256:1", block_type_id: randomUUID() })).rejects.toBeInstanceOf(InvalidError);
    });

    it("gets a schema by checksum, the newest without a version or the one with it", async () => {
      const type = await createType("s3");
      const v1 = await createSchema(type, { checksum: "sha256:1", version: "1.0" });
      const v2 = await createSchema(type, { checksum: "sha256:1", version: "2.0" });
      expect((await t.db.blocks.getSchemaByChecksum("sha256:1"))?.id).toBe(v2.id);
      expect((await t.db.blocks.getSchemaByChecksum("sha256:1", "1.0"))?.id).toBe(v1.id);
      expect(await t.db.blocks.getSchemaByChecksum("sha256:1", "3.0")).toBeNull();
      expect(await t.db.blocks.getSchemaByChecksum("sha256:2")).toBeNull();
    });

    it("reads schemas newest first, filtered by block type, capabilities, id and version", async () => {
      const s3 = await createType("s3");
      const gcs = await createType("gcs");
      const a = await createSchema(s3, { capabilities: ["read-path", "write-path"], version: "1" });
      const b = await createSchema(s3, { capabilities: ["read-path"], version: "2" });
      const c = await createSchema(gcs, { capabilities: [], version: "1" });
      const ids = async (filter: z.input<typeof BlockSchemaFilter>) => (await t.db.blocks.readSchemas({ block_schemas: schemaFilter(filter) })).map((s) => s.id);
      expect((await t.db.blocks.readSchemas()).map((s) => s.id)).toEqual([c.id, b.id, a.id]);
      expect(await ids({ block_type_id: { any_: [s3.id] } })).toEqual([b.id, a.id]);
      expect(await ids({ block_capabilities: { all_: ["read-path", "write-path"] } })).toEqual([a.id]);
      expect(await ids({ block_capabilities: { all_: ["read-path"] } })).toEqual([b.id, a.id]);
      expect(await ids({ id: { any_: [a.id, c.id] } })).toEqual([c.id, a.id]);
      expect(await ids({ version: { any_: ["1"] } })).toEqual([c.id, a.id]);
      expect(await ids({ version: { any_: ["1"] }, block_type_id: { any_: [s3.id] } })).toEqual([a.id]);
      expect(await ids({ operator: "or_", version: { any_: ["2"] }, block_type_id: { any_: [gcs.id] } })).toEqual([c.id, b.id]);
    });

    it("takes schema ids in any case", async () => {
      const schema = await createSchema(await createType("s3"));
      expect((await t.db.blocks.getSchema(schema.id.toUpperCase()))?.id).toBe(schema.id);
      await t.db.blocks.deleteSchema(schema.id.toUpperCase());
      expect(await t.db.blocks.getSchema(schema.id)).toBeNull();
    });

    it("lists every declared capability once, sorted", async () => {
      const type = await createType("s3");
      await createSchema(type, { capabilities: ["write-path", "read-path"] });
      await createSchema(type, { capabilities: ["read-path", "get-directory"] });
      await createSchema(type, { capabilities: [] });
      expect(await t.db.blocks.capabilities()).toEqual(["get-directory", "read-path", "write-path"]);
    });

    it("adds and reads schema references", async () => {
      const type = await createType("s3");
      const [parent, credentials, other] = [await createSchema(type), await createSchema(type), await createSchema(type)];
      const ref = await t.db.blocks.addSchemaReference({ name: "credentials", parent_block_schema_id: parent.id, reference_block_schema_id: credentials.id });
      await t.db.blocks.addSchemaReference({ name: "aaa", parent_block_schema_id: parent.id, reference_block_schema_id: other.id });
      expect(ref).toMatchObject({ name: "credentials", parent_block_schema_id: parent.id, reference_block_schema_id: credentials.id });
      const refs = await t.db.blocks.readSchemaReferences([parent.id]);
      expect(refs.map((r) => [r.name, r.reference_block_schema_id])).toEqual([
        ["aaa", other.id],
        ["credentials", credentials.id],
      ]);
      expect(await t.db.blocks.readSchemaReferences([credentials.id])).toEqual([]);
      expect(await t.db.blocks.readSchemaReferences([])).toEqual([]);
    });

    it("refuses a schema reference to an unknown schema", async () => {
      const parent = await createSchema(await createType("s3"));
      await expect(t.db.blocks.addSchemaReference({ name: "x", parent_block_schema_id: parent.id, reference_block_schema_id: randomUUID() })).rejects.toBeInstanceOf(
        InvalidError,
      );
    });

    it("deletes a schema with its references and documents", async () => {
      const kind = await createKind("s3");
      const referenced = await createSchema(kind.type);
      await t.db.blocks.addSchemaReference({ name: "r", parent_block_schema_id: kind.schema.id, reference_block_schema_id: referenced.id });
      const doc = await createDocument(kind);
      await t.db.blocks.deleteSchema(referenced.id);
      expect(await t.db.blocks.readSchemaReferences([kind.schema.id])).toEqual([]);
      await t.db.blocks.deleteSchema(kind.schema.id);
      expect(await t.db.blocks.getSchema(kind.schema.id)).toBeNull();
      expect(await t.db.blocks.getDocument(doc.id)).toBeNull();
      await expect(t.db.blocks.deleteSchema(kind.schema.id)).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe("block documents", () => {
    it("creates a named document with its type and schema embedded", async () => {
      const kind = await createKind("s3", ["read-path"]);
      const doc = await createDocument(kind, { name: "prod", data: { bucket: "b", nested: { n: 1, list: [1, "a", null] } } });
      expect(doc).toMatchObject({
        name: "prod",
        data: { bucket: "b", nested: { n: 1, list: [1, "a", null] } },
        is_anonymous: false,
        block_type_name: kind.type.name,
        block_type_id: kind.type.id,
        block_schema_id: kind.schema.id,
        block_type: kind.type,
        block_schema: kind.schema,
      });
      expect(await t.db.blocks.getDocument(doc.id)).toEqual(doc);
    });

    it("names an anonymous document without a name anonymous-<id>", async () => {
      const doc = await createDocument(await createKind("s3"), { name: undefined, is_anonymous: true });
      expect(doc.name).toBe(`anonymous-${doc.id}`);
      expect(doc.is_anonymous).toBe(true);
    });

    it("refuses a document that is neither named nor anonymous", async () => {
      const kind = await createKind("s3");
      await expect(createDocument(kind, { name: undefined })).rejects.toBeInstanceOf(InvalidError);
      await expect(createDocument(kind, { name: null })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.blocks.countDocuments()).toBe(0);
    });

    it("refuses a duplicate name within a block type, but not across types", async () => {
      const s3 = await createKind("s3");
      const gcs = await createKind("gcs");
      await createDocument(s3, { name: "prod" });
      await expect(createDocument(s3, { name: "prod" })).rejects.toBeInstanceOf(AlreadyExistsError);
      expect((await createDocument(gcs, { name: "prod" })).block_type_id).toBe(gcs.type.id);
    });

    it("gets a document by block type slug and name", async () => {
      const s3 = await createKind("s3");
      const gcs = await createKind("gcs");
      const doc = await createDocument(s3, { name: "prod" });
      await createDocument(gcs, { name: "prod" });
      expect(await t.db.blocks.getDocumentByName("s3", "prod")).toEqual(doc);
      expect(await t.db.blocks.getDocumentByName("s3", "dev")).toBeNull();
      expect(await t.db.blocks.getDocumentByName("azure", "prod")).toBeNull();
    });

    it("reads documents filtered by block_documents criteria", async () => {
      const s3 = await createKind("s3");
      const gcs = await createKind("gcs");
      const prod = await createDocument(s3, { name: "prod" });
      await createDocument(s3, { name: "staging" });
      await createDocument(gcs, { name: "gcs-prod" });
      const anon = await createDocument(gcs, { name: undefined, is_anonymous: true });
      const read = async (filter: z.input<typeof BlockDocumentFilter>) => names(await t.db.blocks.readDocuments({ block_documents: documentFilter(filter) }));
      expect(await read({ id: { any_: [prod.id, anon.id] } })).toEqual([anon.name, "prod"]);
      expect(await read({ is_anonymous: { eq_: false } })).toEqual(["gcs-prod", "prod", "staging"]);
      expect(await read({ is_anonymous: { eq_: true } })).toEqual([anon.name]);
      expect(await read({ block_type_id: { any_: [s3.type.id] } })).toEqual(["prod", "staging"]);
      expect(await read({ name: { any_: ["prod", "staging"] } })).toEqual(["prod", "staging"]);
      expect(await read({ name: { like_: "PROD" } })).toEqual(["gcs-prod", "prod"]);
      expect(await read({ operator: "or_", name: { any_: ["staging"] }, block_type_id: { any_: [gcs.type.id] } })).toEqual([anon.name, "gcs-prod", "staging"]);
    });

    it("reads documents filtered by their block type and schema", async () => {
      const s3 = await createKind("s3", ["read-path", "write-path"]);
      const secret = await createKind("secret", []);
      await createDocument(s3, { name: "bucket" });
      await createDocument(secret, { name: "token" });
      expect(names(await t.db.blocks.readDocuments({ block_types: { slug: { any_: ["secret"] } } }))).toEqual(["token"]);
      expect(names(await t.db.blocks.readDocuments({ block_types: { name: { like_: "s3" } } }))).toEqual(["bucket"]);
      expect(names(await t.db.blocks.readDocuments({ block_schemas: schemaFilter({ block_capabilities: { all_: ["write-path"] } }) }))).toEqual(["bucket"]);
      expect(names(await t.db.blocks.readDocuments({ block_schemas: schemaFilter({ id: { any_: [secret.schema.id] } }) }))).toEqual(["token"]);
    });

    it("sorts documents by NAME_ASC (the default), NAME_DESC and BLOCK_TYPE_AND_NAME_ASC", async () => {
      const zeta = await createKind("zeta");
      const alpha = await createKind("alpha");
      await createDocument(zeta, { name: "a" });
      await createDocument(alpha, { name: "c" });
      await createDocument(alpha, { name: "b" });
      expect(names(await t.db.blocks.readDocuments())).toEqual(["a", "b", "c"]);
      expect(names(await t.db.blocks.readDocuments({ sort: "NAME_ASC" }))).toEqual(["a", "b", "c"]);
      expect(names(await t.db.blocks.readDocuments({ sort: "NAME_DESC" }))).toEqual(["c", "b", "a"]);
      expect(names(await t.db.blocks.readDocuments({ sort: "BLOCK_TYPE_AND_NAME_ASC" }))).toEqual(["b", "c", "a"]);
    });

    it("pages documents with limit and offset", async () => {
      const kind = await createKind("s3");
      for (const name of ["d", "a", "c", "b"]) await createDocument(kind, { name });
      expect(names(await t.db.blocks.readDocuments({ limit: 2 }))).toEqual(["a", "b"]);
      expect(names(await t.db.blocks.readDocuments({ limit: 2, offset: 1 }))).toEqual(["b", "c"]);
      expect(names(await t.db.blocks.readDocuments({ offset: 3 }))).toEqual(["d"]);
    });

    it("counts documents with the same filters", async () => {
      const s3 = await createKind("s3", ["read-path"]);
      const secret = await createKind("secret");
      await createDocument(s3, { name: "a" });
      await createDocument(s3, { name: "b" });
      await createDocument(secret, { name: "c", is_anonymous: true });
      expect(await t.db.blocks.countDocuments()).toBe(3);
      expect(await t.db.blocks.countDocuments({ block_documents: documentFilter({ is_anonymous: { eq_: false } }) })).toBe(2);
      expect(await t.db.blocks.countDocuments({ block_types: { slug: { any_: ["secret"] } } })).toBe(1);
      expect(await t.db.blocks.countDocuments({ block_schemas: schemaFilter({ block_capabilities: { all_: ["read-path"] } }) })).toBe(2);
    });

    it("updates a document's data", async () => {
      const doc = await createDocument(await createKind("s3"), { data: { a: 1 } });
      const updated = await t.db.blocks.updateDocument(doc.id, { data: { b: [2] } });
      expect(updated).toMatchObject({ id: doc.id, name: doc.name, data: { b: [2] }, block_schema_id: doc.block_schema_id });
      expect(updated.updated > doc.updated).toBe(true);
      expect(await t.db.blocks.getDocument(doc.id)).toEqual(updated);
    });

    it("moves a document to another schema", async () => {
      const kind = await createKind("s3");
      const doc = await createDocument(kind, { data: { a: 1 } });
      const v2 = await createSchema(kind.type, { version: "2" });
      const updated = await t.db.blocks.updateDocument(doc.id, { block_schema_id: v2.id });
      expect(updated).toMatchObject({ block_schema_id: v2.id, block_schema: { id: v2.id, version: "2" }, data: { a: 1 } });
    });

    it("refuses to move a document to an unknown schema", async () => {
      const doc = await createDocument(await createKind("s3"));
      await expect(t.db.blocks.updateDocument(doc.id, { block_schema_id: randomUUID() })).rejects.toBeInstanceOf(InvalidError);
    });

    it("refuses to update or delete an unknown document", async () => {
      await expect(t.db.blocks.updateDocument(randomUUID(), { data: {} })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.blocks.deleteDocument(randomUUID())).rejects.toBeInstanceOf(NotFoundError);
    });

    it("deletes a document", async () => {
      const kind = await createKind("s3");
      const doc = await createDocument(kind);
      const other = await createDocument(kind, { name: "other" });
      await t.db.blocks.deleteDocument(doc.id);
      expect(await t.db.blocks.getDocument(doc.id)).toBeNull();
      expect(await t.db.blocks.getDocument(other.id)).toEqual(other);
    });

    it("takes document ids in any case", async () => {
      const kind = await createKind("s3");
      const [a, b] = [await createDocument(kind, { name: "a" }), await createDocument(kind, { name: "b" })];
      await t.db.blocks.addDocumentReference({ name: "r", parent_block_document_id: a.id, reference_block_document_id: b.id });
      expect((await t.db.blocks.getDocument(a.id.toUpperCase()))?.id).toBe(a.id);
      expect((await t.db.blocks.updateDocument(a.id.toUpperCase(), { data: { x: 1 } })).data).toEqual({ x: 1 });
      await t.db.blocks.deleteDocumentReferences(a.id.toUpperCase());
      expect(await t.db.blocks.readDocumentReferences([a.id])).toEqual([]);
      await t.db.blocks.deleteDocument(a.id.toUpperCase());
      expect(await t.db.blocks.getDocument(a.id)).toBeNull();
    });
  });

  describe("block document references", () => {
    /** Documents named as given, of one block type. */
    const documents = async (...names: string[]) => {
      const kind = await createKind("s3");
      const docs: BlockDocument[] = [];
      for (const name of names) docs.push(await createDocument(kind, { name }));
      return docs;
    };
    const reference = (parent: BlockDocument, ref: BlockDocument, name = ref.name) =>
      t.db.blocks.addDocumentReference({ name, parent_block_document_id: parent.id, reference_block_document_id: ref.id });

    it("adds, reads and deletes references", async () => {
      const [parent, creds, bucket, other] = await documents("parent", "creds", "bucket", "other");
      const added = await reference(parent!, creds!);
      expect(added).toMatchObject({ name: "creds", parent_block_document_id: parent!.id, reference_block_document_id: creds!.id });
      await reference(parent!, bucket!);
      await reference(other!, creds!);
      const refs = await t.db.blocks.readDocumentReferences([parent!.id]);
      expect(refs.map((r) => [r.name, r.reference_block_document_id])).toEqual([
        ["bucket", bucket!.id],
        ["creds", creds!.id],
      ]);
      expect(await t.db.blocks.readDocumentReferences([parent!.id, other!.id])).toHaveLength(3);
      await t.db.blocks.deleteDocumentReferences(parent!.id);
      expect(await t.db.blocks.readDocumentReferences([parent!.id])).toEqual([]);
      expect(await t.db.blocks.readDocumentReferences([other!.id])).toHaveLength(1);
    });

    it("refuses a reference to an unknown document", async () => {
      const [parent] = await documents("parent");
      await expect(t.db.blocks.addDocumentReference({ name: "x", parent_block_document_id: parent!.id, reference_block_document_id: randomUUID() })).rejects.toBeInstanceOf(
        InvalidError,
      );
    });

    it("refuses a document referencing itself", async () => {
      const [a] = await documents("a");
      await expect(reference(a!, a!)).rejects.toBeInstanceOf(InvalidError);
    });

    it("refuses a reference that closes a cycle of two hops", async () => {
      const [a, b] = await documents("a", "b");
      await reference(a!, b!);
      await expect(reference(b!, a!)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.blocks.readDocumentReferences([b!.id])).toEqual([]);
    });

    it("refuses a reference that closes a cycle of three hops", async () => {
      const [a, b, c] = await documents("a", "b", "c");
      await reference(a!, b!);
      await reference(b!, c!);
      await expect(reference(c!, a!)).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.blocks.readDocumentReferences([c!.id])).toEqual([]);
    });

    it("allows a diamond (two paths to one document)", async () => {
      const [a, b, c, d] = await documents("a", "b", "c", "d");
      await reference(a!, b!);
      await reference(a!, c!);
      await reference(b!, d!);
      await reference(c!, d!);
      await reference(a!, d!, "direct");
      expect(await t.db.blocks.readDocumentReferences([a!.id, b!.id, c!.id])).toHaveLength(5);
    });

    it("removes the references to a deleted document", async () => {
      const [parent, child] = await documents("parent", "child");
      await reference(parent!, child!);
      await t.db.blocks.deleteDocument(child!.id);
      expect(await t.db.blocks.readDocumentReferences([parent!.id])).toEqual([]);
    });

    it("removes the references held by a deleted document", async () => {
      const [parent, child] = await documents("parent", "child");
      await reference(parent!, child!);
      await t.db.blocks.deleteDocument(parent!.id);
      expect(await t.db.blocks.readDocumentReferences([parent!.id])).toEqual([]);
      expect(await t.db.blocks.getDocument(child!.id)).not.toBeNull();
    });
  });
});
