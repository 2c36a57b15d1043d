/**
 * Block documents as Prefect keeps and shows them. The data is stored encrypted (see encryption.ts),
 * without the nested blocks it references: a top-level value `{"$ref": {"block_document_id": ...}}`
 * becomes a row of `block_document_reference` instead. Reading a document decrypts it, masks its
 * secrets (unless asked for them), puts each referenced document's data back under its key and lists
 * the references in `block_document_references`; `block_schema` is the full schema.
 */
import { AlreadyExistsError, type BlockDocument, type BlockDocumentReadOptions, type BlockDocumentReference, InvalidError, type Repositories } from "@prefect/db";
import { badRequest, conflict, integrityConflict, internalError, notFound } from "../../prefect/errors.js";
import { canonicalUuid, LOOSE_UUID } from "../../prefect/ids.js";
import { isRecord } from "../../prefect/json.js";
import { decryptData, encryptData, type Fernet, InvalidTokenError } from "./encryption.js";
import { type BlockSchemaResponse, type BlockTypeResponse, blockTypeResponse, readFullBlockSchemas } from "./schemas.js";
import { maskSecrets, restoreMaskedSecrets } from "./secrets.js";

type Data = Record<string, unknown>;

const MAX_REFERENCE_DEPTH = 50;

export interface BlockDocumentResponse {
  id: string;
  created: string;
  updated: string;
  name: string;
  data: Data;
  block_schema_id: string;
  block_schema: BlockSchemaResponse | null;
  block_type_id: string;
  block_type_name: string | null;
  block_type: BlockTypeResponse;
  block_document_references: Record<string, { block_document: Record<string, unknown> }>;
  is_anonymous: boolean;
}

/** The stored data in clear (Prefect stores a Fernet token; a plain object is taken as it is). */
export function decryptStoredData(fernet: Fernet, stored: unknown): Data {
  if (isRecord(stored)) return stored;
  if (typeof stored !== "string") return {};
  try {
    const data = decryptData(fernet, stored);
    return isRecord(data) ? data : {};
  } catch (error) {
    if (error instanceof InvalidTokenError) {
      throw internalError("Block document data could not be decrypted: the encryption key is not the one it was stored with.");
    }
    throw error;
  }
}

function documentResponse(doc: BlockDocument, fernet: Fernet, includeSecrets: boolean): BlockDocumentResponse {
  const data = decryptStoredData(fernet, doc.data);
  return {
    id: doc.id,
    created: doc.created,
    updated: doc.updated,
    name: doc.name,
    data: includeSecrets ? data : maskSecrets(data, doc.block_schema.fields),
    block_schema_id: doc.block_schema_id,
    block_schema: null,
    block_type_id: doc.block_type_id,
    block_type_name: doc.block_type_name,
    block_type: blockTypeResponse(doc.block_type),
    block_document_references: {},
    is_anonymous: doc.is_anonymous,
  };
}

/**
 * Reads documents (Prefect's `read_block_documents`): the filtered ones, each with its referenced
 * documents nested in, and its full schema.
 */
export async function readBlockDocuments(
  repo: Repositories,
  fernet: Fernet,
  options: BlockDocumentReadOptions,
  includeSecrets: boolean,
): Promise<BlockDocumentResponse[]> {
  const roots = await repo.blocks.readDocuments(options);
  if (roots.length === 0) return [];
  const documents = new Map<string, BlockDocument>(roots.map((d) => [d.id, d]));
  const references = new Map<string, BlockDocumentReference[]>();
  let frontier = roots.map((d) => d.id);
  while (frontier.length > 0) {
    const found = await repo.blocks.readDocumentReferences(frontier);
    for (const id of frontier) references.set(id, []);
    for (const reference of found) references.get(reference.parent_block_document_id)!.push(reference);
    const missing = [...new Set(found.map((r) => r.reference_block_document_id))].filter((id) => !documents.has(id));
    if (missing.length > 0) {
      for (const doc of await repo.blocks.readDocuments({ block_documents: { id: { any_: missing } } })) documents.set(doc.id, doc);
    }
    frontier = [...new Set(found.map((r) => r.reference_block_document_id))].filter((id) => !references.has(id));
  }

  const construct = (doc: BlockDocument, depth: number): BlockDocumentResponse => {
    if (depth > MAX_REFERENCE_DEPTH) {
      throw badRequest(`Block document reference graph exceeds max depth ${MAX_REFERENCE_DEPTH}; refusing to recurse further.`);
    }
    const response = documentResponse(doc, fernet, includeSecrets);
    for (const reference of references.get(doc.id) ?? []) {
      const child = documents.get(reference.reference_block_document_id);
      if (!child) continue;
      const full = construct(child, depth + 1);
      response.data[reference.name] = full.data;
      response.block_document_references[reference.name] = {
        block_document: {
          id: full.id,
          name: full.name,
          block_type: full.block_type,
          is_anonymous: full.is_anonymous,
          block_document_references: full.block_document_references,
        },
      };
    }
    return response;
  };
  const constructed = roots.map((root) => construct(root, 0));

  const schemaRoots = [...new Map(roots.map((d) => [d.block_schema.id, d.block_schema])).values()];
  const schemas = new Map((await readFullBlockSchemas(repo, schemaRoots)).map((s) => [s.id, s]));
  for (const doc of constructed) doc.block_schema = schemas.get(doc.block_schema_id) ?? null;
  return constructed;
}

export async function readBlockDocument(repo: Repositories, fernet: Fernet, id: string, includeSecrets: boolean): Promise<BlockDocumentResponse | undefined> {
  const [doc] = await readBlockDocuments(repo, fernet, { block_documents: { id: { any_: [id] } }, limit: 1 }, includeSecrets);
  return doc;
}

/**
 * Splits top-level `{"$ref": {"block_document_id": ...}}` values off the data (Prefect's
 * `_separate_block_references_from_data`).
 */
export function separateReferences(data: Data): { data: Data; references: [string, string][] } {
  const rest: Data = {};
  const references: [string, string][] = [];
  for (const [key, value] of Object.entries(data)) {
    if (isRecord(value) && Object.hasOwn(value, "$ref")) {
      const ref = value.$ref;
      const id = isRecord(ref) ? ref.block_document_id : undefined;
      if (id === undefined || id === null) throw badRequest(`Received block reference without a block_document_id in key ${key}`);
      if (typeof id !== "string" || !LOOSE_UUID.test(id)) throw integrityConflict();
      references.push([key, id.toLowerCase()]);
    } else rest[key] = value;
  }
  return { data: rest, references };
}

/** Links `parentId` to the documents in `references`, refusing unknown ones and cycles as Prefect does. */
async function addReferences(tx: Repositories, parentId: string, references: readonly [string, string][]) {
  for (const [name, referenceId] of references) {
    const id = canonicalUuid(referenceId);
    if (id === parentId) throw badRequest("`parent_block_document_id` and `reference_block_document_id` cannot be the same");
    if (!(await tx.blocks.getDocument(id))) throw integrityConflict();
    try {
      await tx.blocks.addDocumentReference({ name, parent_block_document_id: parentId, reference_block_document_id: id });
    } catch (error) {
      if (error instanceof InvalidError) {
        throw badRequest(
          `Cannot create block document reference: it would introduce a cycle into the block_document_reference graph (parent=${parentId}, reference=${id}).`,
        );
      }
      throw error;
    }
  }
}

export interface BlockDocumentCreateInput {
  readonly name?: string | null | undefined;
  readonly data?: Data | undefined;
  readonly block_schema_id: string;
  readonly block_type_id: string;
  readonly is_anonymous?: boolean | undefined;
}

/** Creates a document with its references (Prefect's `create_block_document`). Run it in a transaction. */
export async function createBlockDocument(tx: Repositories, fernet: Fernet, input: BlockDocumentCreateInput): Promise<BlockDocumentResponse> {
  if (input.name !== null && input.name !== undefined) {
    const [taken] = await tx.blocks.readDocuments({ block_documents: { name: { any_: [input.name] }, block_type_id: { any_: [input.block_type_id] } }, limit: 1 });
    if (taken) throw conflict("Block already exists");
  }
  if (!(await tx.blocks.getType(input.block_type_id)) || !(await tx.blocks.getSchema(input.block_schema_id))) throw integrityConflict();
  const { data, references } = separateReferences(input.data ?? {});
  let created: BlockDocument;
  try {
    created = await tx.blocks.createDocument({
      name: input.name || null,
      data: encryptData(fernet, data),
      is_anonymous: input.is_anonymous ?? false,
      block_type_id: input.block_type_id,
      block_schema_id: input.block_schema_id,
    });
  } catch (error) {
    // Another request took the name meanwhile.
    if (error instanceof AlreadyExistsError) throw conflict("Block already exists");
    throw error;
  }
  await addReferences(tx, created.id, references);
  const full = await readBlockDocument(tx, fernet, created.id, false);
  if (!full) throw notFound("Block document not found");
  return full;
}

export interface BlockDocumentUpdateInput {
  readonly block_schema_id?: string | null | undefined;
  readonly data?: Data | undefined;
  readonly merge_existing_data?: boolean | undefined;
}

/**
 * Updates a document (Prefect's `update_block_document`): nothing happens without data when merging;
 * masks sent back keep the stored secrets; merging updates the top-level keys sent, replacing
 * (`merge_existing_data: false`) takes the data as sent; references follow the new data. Returns
 * false for an unknown document. Run it in a transaction.
 */
export async function updateBlockDocument(tx: Repositories, fernet: Fernet, id: string, input: BlockDocumentUpdateInput): Promise<boolean> {
  const current = await tx.blocks.getDocument(id);
  if (!current) return false;
  const merge = input.merge_existing_data ?? true;
  const sent = merge ? input.data : (input.data ?? {});
  if (sent === undefined) return true;

  const currentData = decryptStoredData(fernet, current.data);
  let data = restoreMaskedSecrets(sent, currentData, current.block_schema.fields);
  if (merge) data = { ...currentData, ...data };
  const separated = separateReferences(data);

  const proposed = input.block_schema_id;
  let blockSchemaId: string | undefined;
  if (proposed && proposed !== current.block_schema_id) {
    const schema = await tx.blocks.getSchema(proposed);
    if (!schema) throw integrityConflict();
    if (schema.block_type_id !== current.block_type_id) throw badRequest("Must migrate block document to a block schema of the same block type.");
    blockSchemaId = schema.id;
  }
  await tx.blocks.updateDocument(current.id, { data: encryptData(fernet, separated.data), ...(blockSchemaId ? { block_schema_id: blockSchemaId } : {}) });
  await tx.blocks.deleteDocumentReferences(current.id);
  await addReferences(tx, current.id, separated.references);
  return true;
}
