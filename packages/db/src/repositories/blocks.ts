import { randomUUID } from "node:crypto";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../errors.js";
import { blockDocumentFilterSql, blockSchemaFilterSql, blockTypeFilterSql, page, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { Created, Page } from "../schemas/common.js";
import {
  type BlockDocument,
  BlockDocumentCreate,
  type BlockDocumentReference,
  BlockDocumentUpdate,
  type BlockSchema,
  BlockSchemaCreate,
  type BlockSchemaReference,
  type BlockType,
  BlockTypeCreate,
  BlockTypeUpdate,
} from "../schemas/blocks.js";
import type { BlockDocumentFilter, BlockDocumentSort, BlockSchemaFilter, BlockTypeFilter } from "../schemas/filters.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface BlockTypeReadOptions extends Page {
  readonly block_types?: BlockTypeFilter | null | undefined;
  readonly block_schemas?: BlockSchemaFilter | null | undefined;
}

export interface BlockSchemaReadOptions extends Page {
  readonly block_schemas?: BlockSchemaFilter | null | undefined;
}

export interface BlockDocumentReadOptions extends Page {
  readonly block_documents?: BlockDocumentFilter | null | undefined;
  readonly block_types?: BlockTypeFilter | null | undefined;
  readonly block_schemas?: BlockSchemaFilter | null | undefined;
  readonly sort?: BlockDocumentSort | undefined;
}

export interface BlockRepository {
  /** Throws AlreadyExistsError when the slug is taken. */
  createType(input: BlockTypeCreate): Promise<BlockType>;
  getType(id: string): Promise<BlockType | null>;
  getTypeBySlug(slug: string): Promise<BlockType | null>;
  readTypes(options?: BlockTypeReadOptions): Promise<BlockType[]>;
  countTypes(options?: BlockTypeReadOptions): Promise<number>;
  updateType(id: string, patch: BlockTypeUpdate): Promise<BlockType>;
  /** Deletes the type with its schemas and documents. */
  deleteType(id: string): Promise<void>;

  /** Inserts a schema, or returns the one with the same (checksum, version) (Prefect's upsert). */
  createSchema(input: BlockSchemaCreate): Promise<Created<BlockSchema>>;
  getSchema(id: string): Promise<BlockSchema | null>;
  getSchemaByChecksum(checksum: string, version?: string | null): Promise<BlockSchema | null>;
  readSchemas(options?: BlockSchemaReadOptions): Promise<BlockSchema[]>;
  deleteSchema(id: string): Promise<void>;
  /** Every capability some schema declares, sorted. */
  capabilities(): Promise<string[]>;
  addSchemaReference(input: { name: string; parent_block_schema_id: string; reference_block_schema_id: string }): Promise<BlockSchemaReference>;
  readSchemaReferences(parentIds: readonly string[]): Promise<BlockSchemaReference[]>;

  /** Anonymous documents without a name get a generated one. Throws AlreadyExistsError on a duplicate (type, name). */
  createDocument(input: BlockDocumentCreate): Promise<BlockDocument>;
  getDocument(id: string): Promise<BlockDocument | null>;
  getDocumentByName(blockTypeSlug: string, name: string): Promise<BlockDocument | null>;
  readDocuments(options?: BlockDocumentReadOptions): Promise<BlockDocument[]>;
  countDocuments(options?: BlockDocumentReadOptions): Promise<number>;
  updateDocument(id: string, patch: BlockDocumentUpdate): Promise<BlockDocument>;
  deleteDocument(id: string): Promise<void>;
  /**
   * Adds a reference from one document to another, refusing one that would close a cycle (a document
   * reaching itself through references).
   */
  addDocumentReference(input: { name: string; parent_block_document_id: string; reference_block_document_id: string }): Promise<BlockDocumentReference>;
  readDocumentReferences(parentIds: readonly string[]): Promise<BlockDocumentReference[]>;
  /** Removes every reference the document holds. */
  deleteDocumentReferences(parentId: string): Promise<void>;
}

const T = tables;

export function blockRepository({ q }: RepositoryContext): BlockRepository {
  const d = q.dialect;
  const decodeType = rowDecoder<BlockType>(d, T.block_type);
  const decodeTypeAs = (prefix: string) => rowDecoder<BlockType>(d, T.block_type, prefix);
  const decodeSchemaRow = rowDecoder(d, T.block_schema);
  const decodeSchemaAs = rowDecoder(d, T.block_schema, "bs_");
  const decodeDocRow = rowDecoder(d, T.block_document);
  const decodeSchemaType = decodeTypeAs("bt_");
  const decodeDocType = decodeTypeAs("dt_");
  const decodeDocSchemaType = decodeTypeAs("st_");
  const decodeSchemaRef = rowDecoder<BlockSchemaReference>(d, T.block_schema_reference);
  const decodeDocRef = rowDecoder<BlockDocumentReference>(d, T.block_document_reference);

  const typeSelect = sql`SELECT ${selectList(T.block_type, "t")} FROM block_type t`;
  const schemaSelect = sql`SELECT ${selectList(T.block_schema, "s")}, ${selectList(T.block_type, "bt", "bt_")}
    FROM block_schema s JOIN block_type bt ON bt.id = s.block_type_id`;
  const decodeSchema = (row: Record<string, unknown>) => ({ ...decodeSchemaRow(row), block_type: decodeSchemaType(row) }) as unknown as BlockSchema;
  const docSelect = sql`SELECT ${selectList(T.block_document, "doc")}, ${selectList(T.block_type, "dt", "dt_")},
    ${selectList(T.block_schema, "bs", "bs_")}, ${selectList(T.block_type, "st", "st_")}
    FROM block_document doc JOIN block_type dt ON dt.id = doc.block_type_id
    JOIN block_schema bs ON bs.id = doc.block_schema_id JOIN block_type st ON st.id = bs.block_type_id`;
  const decodeDoc = (row: Record<string, unknown>) =>
    ({
      ...decodeDocRow(row),
      block_type: decodeDocType(row),
      block_schema: { ...decodeSchemaAs(row), block_type: decodeDocSchemaType(row) },
    }) as unknown as BlockDocument;

  const one = async <R>(query: Sql, decode: (row: Record<string, unknown>) => R) => {
    const rows = await q.query(query);
    return rows[0] ? decode(rows[0]) : null;
  };
  const typeConditions = (o: BlockTypeReadOptions) =>
    sql.and([
      blockTypeFilterSql(d, o.block_types, "t"),
      o.block_schemas
        ? sql`EXISTS (SELECT 1 FROM block_schema fs WHERE fs.block_type_id = t.id AND ${sql.and([blockSchemaFilterSql(d, o.block_schemas, "fs")])})`
        : sql.empty,
    ]);
  const documentConditions = (o: BlockDocumentReadOptions) =>
    sql.and([blockDocumentFilterSql(d, o.block_documents, "doc"), blockTypeFilterSql(d, o.block_types, "dt"), blockSchemaFilterSql(d, o.block_schemas, "bs")]);

  const api: BlockRepository = {
    async createType(input) {
      const data = parseInput(BlockTypeCreate, input, "block type");
      const ts = now();
      const row = {
        id: data.id ?? randomUUID(),
        created: ts,
        updated: ts,
        name: data.name,
        slug: data.slug,
        logo_url: data.logo_url ?? null,
        documentation_url: data.documentation_url ?? null,
        description: data.description ?? null,
        code_example: data.code_example ?? null,
        is_protected: data.is_protected,
      };
      try {
        await q.execute(insertSql(T.block_type, row));
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new AlreadyExistsError(`Block type with slug ${data.slug} already exists.`, "slug", { cause: error });
        throw error;
      }
      return row;
    },
    getType: (id) => one(sql`${typeSelect} WHERE t.id = ${checkId(id, "block type id")}`, decodeType),
    getTypeBySlug: (slug) => one(sql`${typeSelect} WHERE t.slug = ${slug}`, decodeType),
    async readTypes(options = {}) {
      const rows = await q.query(sql`${typeSelect}${where(typeConditions(options))} ORDER BY t.name, t.id${page(d, options.limit, options.offset)}`);
      return rows.map(decodeType);
    },
    async countTypes(options = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM block_type t${where(typeConditions(options))}`);
      return Number(rows[0]?.n ?? 0);
    },
    async updateType(id, patch) {
      id = checkId(id, "block type id");
      const data = parseInput(BlockTypeUpdate, patch, "block type update");
      const changed = await q.execute(sql`UPDATE block_type SET ${assignments(T.block_type, { ...data, updated: now() })} WHERE id = ${id}`);
      const updated = changed ? await api.getType(id) : null;
      if (!updated) throw new NotFoundError(`Block type ${id} not found.`);
      return updated;
    },
    async deleteType(id) {
      id = checkId(id, "block type id");
      if ((await q.execute(sql`DELETE FROM block_type WHERE id = ${id}`)) === 0) throw new NotFoundError(`Block type ${id} not found.`);
    },

    async createSchema(input) {
      const data = parseInput(BlockSchemaCreate, input, "block schema");
      const ts = now();
      const row = {
        id: data.id ?? randomUUID(),
        created: ts,
        updated: ts,
        checksum: data.checksum,
        fields: data.fields,
        capabilities: data.capabilities,
        version: data.version,
        block_type_id: data.block_type_id,
      };
      const inserted = await q.query(insertSql(T.block_schema, row, sql` ON CONFLICT (checksum, version) DO NOTHING RETURNING id`));
      const schema = await api.getSchema(inserted.length ? row.id : ((await api.getSchemaByChecksum(data.checksum, data.version))?.id ?? row.id));
      if (!schema) throw new NotFoundError(`Block schema ${data.checksum} was deleted while it was being created; try again.`);
      return { row: schema, created: inserted.length > 0 };
    },
    getSchema: (id) => one(sql`${schemaSelect} WHERE s.id = ${checkId(id, "block schema id")}`, decodeSchema),
    getSchemaByChecksum: (checksum, version) =>
      one(
        sql`${schemaSelect} WHERE s.checksum = ${checksum}${version ? sql` AND s.version = ${version}` : sql.empty} ORDER BY s.created DESC, s.id LIMIT 1`,
        decodeSchema,
      ),
    async readSchemas(options = {}) {
      const rows = await q.query(
        sql`${schemaSelect}${where(blockSchemaFilterSql(d, options.block_schemas, "s"))} ORDER BY s.created DESC, s.id${page(d, options.limit, options.offset)}`,
      );
      return rows.map(decodeSchema);
    },
    async deleteSchema(id) {
      id = checkId(id, "block schema id");
      if ((await q.execute(sql`DELETE FROM block_schema WHERE id = ${id}`)) === 0) throw new NotFoundError(`Block schema ${id} not found.`);
    },
    async capabilities() {
      const rows = await q.query<{ capabilities: unknown }>(sql`SELECT DISTINCT capabilities FROM block_schema`);
      const all = new Set<string>();
      for (const row of rows) for (const c of (d.decodeJson(row.capabilities) as string[]) ?? []) all.add(c);
      return [...all].sort();
    },
    async addSchemaReference(input) {
      const ts = now();
      const row = {
        id: randomUUID(),
        created: ts,
        updated: ts,
        name: input.name,
        parent_block_schema_id: checkId(input.parent_block_schema_id, "parent block schema id"),
        reference_block_schema_id: checkId(input.reference_block_schema_id, "reference block schema id"),
      };
      await q.execute(insertSql(T.block_schema_reference, row));
      return row;
    },
    async readSchemaReferences(ids) {
      const parentIds = ids.map((id) => checkId(id, "block schema id"));
      if (parentIds.length === 0) return [];
      const rows = await q.query(
        sql`SELECT ${selectList(T.block_schema_reference, "r")} FROM block_schema_reference r WHERE ${d.inList(sql.raw("r.parent_block_schema_id"), parentIds)} ORDER BY r.name, r.created, r.id`,
      );
      return rows.map(decodeSchemaRef);
    },

    async createDocument(input) {
      const data = parseInput(BlockDocumentCreate, input, "block document");
      const id = data.id ?? randomUUID();
      if (!data.name && !data.is_anonymous) throw new InvalidError("Names must be provided for block documents.", [{ path: ["name"], message: "required" }]);
      const type = await api.getType(data.block_type_id);
      if (!type) throw new NotFoundError(`Block type ${data.block_type_id} not found.`);
      const ts = now();
      const row = {
        id,
        created: ts,
        updated: ts,
        name: data.name ?? `anonymous-${id}`,
        data: data.data ?? {},
        is_anonymous: data.is_anonymous,
        block_type_name: type.name,
        block_type_id: data.block_type_id,
        block_schema_id: data.block_schema_id,
      };
      try {
        await q.execute(insertSql(T.block_document, row));
      } catch (error) {
        if (error instanceof AlreadyExistsError) {
          throw new AlreadyExistsError(`Block already exists: a ${type.name} block named ${row.name} exists.`, "name", { cause: error });
        }
        throw error;
      }
      const created = await api.getDocument(id);
      if (!created) throw new NotFoundError(`Block document ${id} was deleted while it was being created; try again.`);
      return created;
    },
    getDocument: (id) => one(sql`${docSelect} WHERE doc.id = ${checkId(id, "block document id")}`, decodeDoc),
    getDocumentByName: (slug, name) => one(sql`${docSelect} WHERE dt.slug = ${slug} AND doc.name = ${name}`, decodeDoc),
    async readDocuments(options = {}) {
      const order = { NAME_ASC: "doc.name ASC", NAME_DESC: "doc.name DESC", BLOCK_TYPE_AND_NAME_ASC: "doc.block_type_name ASC, doc.name ASC" }[
        options.sort ?? "NAME_ASC"
      ];
      const rows = await q.query(sql`${docSelect}${where(documentConditions(options))} ORDER BY ${sql.raw(order)}, doc.id${page(d, options.limit, options.offset)}`);
      return rows.map(decodeDoc);
    },
    async countDocuments(options = {}) {
      const rows = await q.query<{ n: number }>(
        sql`SELECT count(*) AS n FROM block_document doc JOIN block_type dt ON dt.id = doc.block_type_id JOIN block_schema bs ON bs.id = doc.block_schema_id${where(documentConditions(options))}`,
      );
      return Number(rows[0]?.n ?? 0);
    },
    async updateDocument(id, patch) {
      id = checkId(id, "block document id");
      const data = parseInput(BlockDocumentUpdate, patch, "block document update");
      const changed = await q.execute(sql`UPDATE block_document SET ${assignments(T.block_document, { ...data, updated: now() })} WHERE id = ${id}`);
      const updated = changed ? await api.getDocument(id) : null;
      if (!updated) throw new NotFoundError(`Block document ${id} not found.`);
      return updated;
    },
    async deleteDocument(id) {
      id = checkId(id, "block document id");
      if ((await q.execute(sql`DELETE FROM block_document WHERE id = ${id}`)) === 0) throw new NotFoundError(`Block document ${id} not found.`);
    },
    async addDocumentReference(input) {
      const parent = checkId(input.parent_block_document_id, "parent block document id");
      const reference = checkId(input.reference_block_document_id, "reference block document id");
      if (parent === reference) throw new InvalidError("A block document cannot reference itself.");
      // Would the parent become reachable from the referenced document?
      const cycle = await q.query(
        sql`WITH RECURSIVE reachable(id) AS (
              SELECT r.reference_block_document_id FROM block_document_reference r WHERE r.parent_block_document_id = ${reference}
              UNION SELECT r.reference_block_document_id FROM block_document_reference r JOIN reachable ON r.parent_block_document_id = reachable.id
            ) SELECT 1 FROM reachable WHERE id = ${parent} LIMIT 1`,
      );
      if (cycle.length > 0) throw new InvalidError(`Referencing block document ${reference} from ${parent} would create a cycle.`);
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, name: input.name, parent_block_document_id: parent, reference_block_document_id: reference };
      await q.execute(insertSql(T.block_document_reference, row));
      return row;
    },
    async readDocumentReferences(ids) {
      const parentIds = ids.map((id) => checkId(id, "block document id"));
      if (parentIds.length === 0) return [];
      const rows = await q.query(
        sql`SELECT ${selectList(T.block_document_reference, "r")} FROM block_document_reference r WHERE ${d.inList(sql.raw("r.parent_block_document_id"), parentIds)} ORDER BY r.name, r.created, r.id`,
      );
      return rows.map(decodeDocRef);
    },
    async deleteDocumentReferences(parentId) {
      parentId = checkId(parentId, "block document id");
      await q.execute(sql`DELETE FROM block_document_reference WHERE parent_block_document_id = ${parentId}`);
    },
  };
  return api;
}
