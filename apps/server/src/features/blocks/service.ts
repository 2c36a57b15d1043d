/**
 * Blocks: Prefect's block types, block schemas, block documents and block capabilities. Document data
 * is encrypted at rest and its secrets masked unless asked for; schemas are created idempotently by
 * checksum with their nested schemas; protected (system) block types and their schemas cannot be
 * deleted. Changes to types and (named) documents publish Prefect's lifecycle events once committed.
 */
import {
  AlreadyExistsError,
  type BlockDocumentReadOptions,
  type BlockSchemaReadOptions,
  type BlockType,
  type BlockTypeReadOptions,
  type Repositories,
} from "@prefect/db";
import type { AppContext } from "../../context.js";
import { conflict, forbidden, notFound } from "../../prefect/errors.js";
import { isRecord } from "../../prefect/json.js";
import { storageDefaultFollowing } from "../admin/service.js";
import {
  type BlockDocumentCreateInput,
  type BlockDocumentResponse,
  type BlockDocumentUpdateInput,
  createBlockDocument as createDocument,
  readBlockDocument,
  readBlockDocuments,
  updateBlockDocument as updateDocument,
} from "./documents.js";
import { serverFernet } from "./encryption.js";
import { publishBlockDocumentEvent, publishBlockTypeEvent } from "./events.js";
import { type BlockSchemaCreateInput, type BlockSchemaResponse, createBlockSchema as createSchema, readFullBlockSchemas } from "./schemas.js";
import { htmlEscape, installSystemBlockTypes } from "./system.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;

const TYPE_NOT_FOUND = "Block type not found";
const SCHEMA_NOT_FOUND = "Block schema not found";
const DOCUMENT_NOT_FOUND = "Block document not found";

// ---- Block types ------------------------------------------------------------------------------

export interface BlockTypeCreateInput {
  readonly name: string;
  readonly slug: string;
  readonly logo_url?: string | null | undefined;
  readonly documentation_url?: string | null | undefined;
  readonly description?: string | null | undefined;
  readonly code_example?: string | null | undefined;
}

export async function createBlockType(context: Context, input: BlockTypeCreateInput): Promise<BlockType> {
  if (input.name.toLowerCase().startsWith("prefect")) throw forbidden("Block type names beginning with 'Prefect' are reserved.");
  let type: BlockType;
  try {
    type = await context.db.blocks.createType({
      name: input.name,
      slug: input.slug,
      logo_url: input.logo_url ?? null,
      documentation_url: input.documentation_url ?? null,
      description: htmlEscape(input.description),
      code_example: htmlEscape(input.code_example),
    });
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw conflict(`Block type with name "${input.name}" already exists`);
    throw error;
  }
  publishBlockTypeEvent(context, "created", type);
  return type;
}

async function found<T>(read: Promise<T | null | undefined>, message: string): Promise<T> {
  const row = await read;
  if (!row) throw notFound(message);
  return row;
}

export const readBlockType = (db: Repositories, id: string) => found(db.blocks.getType(id), TYPE_NOT_FOUND);
export const readBlockTypeBySlug = (db: Repositories, slug: string) => found(db.blocks.getTypeBySlug(slug), TYPE_NOT_FOUND);
export const readBlockTypes = (db: Repositories, options: BlockTypeReadOptions) => db.blocks.readTypes(options);

const TYPE_TEXTS = ["logo_url", "documentation_url", "description", "code_example"] as const;
export type BlockTypeUpdateInput = Partial<Record<(typeof TYPE_TEXTS)[number], string | null | undefined>>;

/**
 * Updates a type, only when something changes (Prefect's `_should_update_block_type`: the fields sent
 * against all four stored ones, descriptions and code examples compared unescaped).
 */
export async function updateBlockType(context: Context, id: string, patch: BlockTypeUpdateInput): Promise<void> {
  const updated = await context.db.transaction(async (tx) => {
    const type = await readBlockType(tx, id);
    const comparable = (key: string, value: unknown) => ((key === "description" || key === "code_example") && typeof value === "string" ? htmlUnescape(value) : value);
    const sent = TYPE_TEXTS.filter((key) => patch[key] !== undefined);
    const same = sent.length === TYPE_TEXTS.length && TYPE_TEXTS.every((key) => comparable(key, patch[key]) === comparable(key, type[key]));
    return same ? undefined : tx.blocks.updateType(type.id, Object.fromEntries(sent.map((key) => [key, patch[key]])));
  });
  if (updated) publishBlockTypeEvent(context, "updated", updated);
}

/** Deletes an unprotected type (its schemas and documents go with it, and the storage default if it was one). */
export async function deleteBlockType(context: Context, id: string): Promise<void> {
  const deleted = await context.db.transaction(async (tx) => {
    const type = await readBlockType(tx, id);
    if (type.is_protected) throw forbidden("protected block types cannot be deleted.");
    const afterwards = await storageDefaultFollowing(tx, (doc) => doc.block_type_id === type.id);
    await tx.blocks.deleteType(type.id);
    await afterwards();
    return type;
  });
  publishBlockTypeEvent(context, "deleted", deleted);
}

/** Installs Prefect's protected system block types, publishing an event for each type created. */
export async function installSystemBlocks(context: Context): Promise<void> {
  for (const type of await installSystemBlockTypes(context.db)) publishBlockTypeEvent(context, "created", type);
}

// ---- Block schemas ----------------------------------------------------------------------------

/** Creates a schema with its nested schemas, or returns the one stored with the same checksum and version. */
export function createBlockSchema(db: AppContext["db"], input: BlockSchemaCreateInput): Promise<{ schema: BlockSchemaResponse; created: boolean }> {
  return db.transaction(async (tx) => {
    if (!(await tx.blocks.getType(input.block_type_id))) throw notFound(`Block type ${input.block_type_id} not found.`);
    return createSchema(tx, input);
  });
}

/** Deletes a schema of an unprotected type (its documents go with it, and the storage default if it was one). */
export async function deleteBlockSchema(db: AppContext["db"], id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const schema = await found(tx.blocks.getSchema(id), SCHEMA_NOT_FOUND);
    if (schema.block_type.is_protected) throw forbidden("Block schemas for protected block types cannot be deleted.");
    const afterwards = await storageDefaultFollowing(tx, (doc) => doc.block_schema_id === schema.id);
    await tx.blocks.deleteSchema(schema.id);
    await afterwards();
  });
}

export async function readBlockSchemas(db: Repositories, options: BlockSchemaReadOptions): Promise<BlockSchemaResponse[]> {
  return readFullBlockSchemas(db, await db.blocks.readSchemas(options));
}

export async function readBlockSchema(db: Repositories, id: string): Promise<BlockSchemaResponse> {
  const schema = await found(db.blocks.getSchema(id), SCHEMA_NOT_FOUND);
  return (await readFullBlockSchemas(db, [schema]))[0]!;
}

export async function readBlockSchemaByChecksum(db: Repositories, checksum: string, version: string | null): Promise<BlockSchemaResponse> {
  const schema = await found(db.blocks.getSchemaByChecksum(checksum, version), SCHEMA_NOT_FOUND);
  return (await readFullBlockSchemas(db, [schema]))[0]!;
}

export const readBlockCapabilities = (db: Repositories) => db.blocks.capabilities();

// ---- Block documents --------------------------------------------------------------------------

/** Prefect's default for document filters: anonymous documents only when asked for. */
export function documentFilter(filter: unknown): BlockDocumentReadOptions["block_documents"] {
  if (!isRecord(filter)) return { is_anonymous: { eq_: false } };
  const criteria = Object.hasOwn(filter, "is_anonymous") ? filter : { ...filter, is_anonymous: { eq_: false } };
  return criteria as BlockDocumentReadOptions["block_documents"];
}

export async function createBlockDocument(context: Context, input: BlockDocumentCreateInput): Promise<BlockDocumentResponse> {
  const key = await serverFernet(context)();
  const doc = await context.db.transaction((tx) => createDocument(tx, key, input));
  publishBlockDocumentEvent(context, "created", doc);
  return doc;
}

export async function readBlockDocumentsOf(context: Context, options: BlockDocumentReadOptions, includeSecrets: boolean): Promise<BlockDocumentResponse[]> {
  return readBlockDocuments(context.db, await serverFernet(context)(), options, includeSecrets);
}

export async function readBlockDocumentById(context: Context, id: string, includeSecrets: boolean): Promise<BlockDocumentResponse> {
  return found(readBlockDocument(context.db, await serverFernet(context)(), id, includeSecrets), DOCUMENT_NOT_FOUND);
}

/** The documents of the type with this slug (404 for an unknown type). */
export async function readBlockDocumentsOfType(context: Context, slug: string, includeSecrets: boolean): Promise<BlockDocumentResponse[]> {
  const key = await serverFernet(context)();
  const type = await readBlockTypeBySlug(context.db, slug);
  return readBlockDocuments(context.db, key, { block_documents: documentFilter({ block_type_id: { any_: [type.id] } }) }, includeSecrets);
}

export async function readBlockDocumentByName(context: Context, slug: string, name: string, includeSecrets: boolean): Promise<BlockDocumentResponse> {
  const key = await serverFernet(context)();
  const [doc] = await readBlockDocuments(
    context.db,
    key,
    { block_documents: { name: { any_: [name] } }, block_types: { slug: { any_: [slug] } }, limit: 1 },
    includeSecrets,
  );
  if (!doc) throw notFound(DOCUMENT_NOT_FOUND);
  return doc;
}

export const countBlockDocuments = (db: Repositories, options: Omit<BlockDocumentReadOptions, "sort" | "limit" | "offset">) => db.blocks.countDocuments(options);

export async function updateBlockDocument(context: Context, id: string, input: BlockDocumentUpdateInput): Promise<void> {
  const key = await serverFernet(context)();
  const updated = await context.db.transaction(async (tx) => ((await updateDocument(tx, key, id, input)) ? readBlockDocument(tx, key, id, false) : undefined));
  if (!updated) throw notFound(DOCUMENT_NOT_FOUND);
  publishBlockDocumentEvent(context, "updated", updated);
}

/** Deletes a document (and the storage default if it was the one). */
export async function deleteBlockDocument(context: Context, id: string): Promise<void> {
  const key = await serverFernet(context)();
  const deleted = await context.db.transaction(async (tx) => {
    const doc = await found(readBlockDocument(tx, key, id, false), DOCUMENT_NOT_FOUND);
    const afterwards = await storageDefaultFollowing(tx, (stored) => stored.id === doc.id);
    await tx.blocks.deleteDocument(doc.id);
    await afterwards();
    return doc;
  });
  publishBlockDocumentEvent(context, "deleted", deleted);
}

/** The data of a block document, secrets masked (for job variable defaults that refer to one). */
export function blockDataLookup(context: Pick<AppContext, "db" | "settings">, tx: Repositories = context.db) {
  const fernet = serverFernet(context);
  return async (id: string) => (await readBlockDocument(tx, await fernet(), id, false))?.data;
}

// ---- Helpers ----------------------------------------------------------------------------------

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/** Python's `html.unescape` for the references Prefect's escaping produces (and numeric ones). */
function htmlUnescape(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (match, ref: string) => {
    const code = ref.startsWith("#x") || ref.startsWith("#X") ? Number.parseInt(ref.slice(2), 16) : ref.startsWith("#") ? Number.parseInt(ref.slice(1), 10) : undefined;
    if (code === undefined) return ENTITIES[ref] ?? match;
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
  });
}

