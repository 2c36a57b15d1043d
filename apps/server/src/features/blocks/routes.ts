/**
 * Blocks: Prefect's Block types, Block schemas, Block documents and Block capabilities routes.
 * Document data is encrypted at rest and its secrets masked unless `include_secrets`; schemas are
 * created idempotently by checksum (computed as Prefect's client does) with their nested schemas;
 * protected (system) block types and their schemas cannot be deleted.
 */
import { Readable } from "node:stream";
import { AlreadyExistsError, type BlockDocument, type BlockDocumentReadOptions, InvalidError, type Repositories } from "@prefect/db";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../app.js";
import { createBlockDocument, readBlockDocument, readBlockDocuments, updateBlockDocument } from "../blocks/documents.js";
import { fernetProvider } from "../blocks/encryption.js";
import { publishBlockDocumentEvent, publishBlockTypeEvent } from "../blocks/events.js";
import { isJsonObject, parseJsonLosslessly } from "../blocks/python-json.js";
import { blockTypeResponse, createBlockSchema, readFullBlockSchemas } from "../blocks/schemas.js";
import { htmlEscape, installSystemBlockTypes } from "../blocks/system.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf } from "./common.js";

/** Starlette's `{id:uuid}`: anything else is not a route (404), as Prefect answers. */
const ID = ":id([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

const TRUE = ["1", "on", "t", "true", "y", "yes"];
const FALSE = ["0", "off", "f", "false", "n", "no"];
/** A query-string boolean as pydantic reads one. */
const QueryBool = z.string().transform((value, ctx) => {
  const v = value.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  ctx.addIssue({ code: "custom", message: "Input should be a valid boolean, unable to interpret input" });
  return z.NEVER;
});
const SecretsQuery = z.object({ include_secrets: QueryBool.optional() });

const LOWERCASE_DASHES = /^[a-z0-9-]*$/;

/** A body rule Prefect checks in its models (pydantic answers 422 `value_error`). */
function valueError(path: (string | number)[], message: string): InvalidError {
  return new InvalidError(message, [{ path, message: `Value error, ${message}` }]);
}

/** Prefect's default for document filters: anonymous documents only when asked for. */
function documentFilter(filter: unknown): BlockDocumentReadOptions["block_documents"] {
  if (!isJsonObject(filter)) return { is_anonymous: { eq_: false } };
  const criteria = Object.hasOwn(filter, "is_anonymous") ? filter : { ...filter, is_anonymous: { eq_: false } };
  return criteria as BlockDocumentReadOptions["block_documents"];
}

/** Where Prefect keeps the server's default result storage block (`/admin/storage`). */
const STORAGE_DEFAULT = "server-default-result-storage";

/**
 * Whether the server's default result storage block is one that the deletion about to happen takes
 * with it (Prefect then clears the setting).
 */
async function deletesStorageDefault(tx: Repositories, deleted: (doc: BlockDocument) => boolean): Promise<boolean> {
  const value = await tx.configuration.get(STORAGE_DEFAULT);
  const id = isJsonObject(value) ? value.default_result_storage_block_id : undefined;
  if (typeof id !== "string" || !/^[0-9a-f-]{36}$/i.test(id)) return false;
  const doc = await tx.blocks.getDocument(id);
  return doc !== null && deleted(doc);
}

/** The request body as sent, kept for what must read numbers as Python does (schema checksums). */
const rawBodies = new WeakMap<FastifyRequest, string>();

async function keepRawBody(request: FastifyRequest, _reply: unknown, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of payload) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    // Fastify's own limit, which it would only apply after this hook.
    if (size > request.routeOptions.bodyLimit) throw Object.assign(new Error("Request body is too large"), { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 });
    chunks.push(bytes);
  }
  const body = Buffer.concat(chunks);
  rawBodies.set(request, body.toString("utf8"));
  return Readable.from([body]);
}

/** `fields` with its floats kept (see python-json.ts), or as parsed when the raw body is not at hand. */
function losslessFields(request: FastifyRequest, parsed: Record<string, unknown> | undefined): Record<string, unknown> {
  const raw = rawBodies.get(request);
  if (raw !== undefined) {
    try {
      const body = parseJsonLosslessly(raw);
      if (isJsonObject(body) && isJsonObject(body.fields)) return body.fields;
    } catch {
      // Fastify parsed it, so this cannot fail; fall back to its reading all the same.
    }
  }
  return parsed ?? {};
}

export function blockRoutes(context: AppContext): Routes {
  const { db, settings } = context;
  const fernet = fernetProvider(db, settings.encryptionKey);

  return async (app) => {
    // ---- Block types -------------------------------------------------------------------------
    app.post("/block_types/", { schema: { body: api.BlockTypeCreate } }, async (request, reply) => {
      const body = request.body;
      if (!LOWERCASE_DASHES.test(body.slug)) throw valueError(["slug"], "Block type slug must only contain lowercase letters, numbers, and dashes.");
      if (body.name.toLowerCase().startsWith("prefect")) throw new HttpError(403, "Block type names beginning with 'Prefect' are reserved.");
      try {
        const type = await db.blocks.createType({
          name: body.name,
          slug: body.slug,
          logo_url: body.logo_url ?? null,
          documentation_url: body.documentation_url ?? null,
          description: htmlEscape(body.description),
          code_example: htmlEscape(body.code_example),
        });
        publishBlockTypeEvent(context, "created", type);
        return reply.code(201).send(blockTypeResponse(type));
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new HttpError(409, `Block type with name "${body.name}" already exists`);
        throw error;
      }
    });

    app.get(`/block_types/${ID}`, { schema: { params: IdParams } }, async (request) => {
      const type = await db.blocks.getType(request.params.id);
      if (!type) throw new HttpError(404, "Block type not found");
      return blockTypeResponse(type);
    });

    app.get("/block_types/slug/:slug", { schema: { params: z.object({ slug: z.string() }) } }, async (request) => {
      const type = await db.blocks.getTypeBySlug(request.params.slug);
      if (!type) throw new HttpError(404, "Block type not found");
      return blockTypeResponse(type);
    });

    app.post("/block_types/filter", { schema: { body: api.Body_read_block_types_block_types_filter_post } }, async (request) => {
      const body = request.body;
      const types = await db.blocks.readTypes({
        block_types: (body.block_types ?? null) as BlockDocumentReadOptions["block_types"],
        block_schemas: (body.block_schemas ?? null) as BlockDocumentReadOptions["block_schemas"],
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return types.map(blockTypeResponse);
    });

    app.patch(`/block_types/${ID}`, { schema: { params: IdParams, body: api.BlockTypeUpdate } }, async (request, reply) => {
      const patch = request.body;
      const updated = await db.transaction(async (tx) => {
        const type = await tx.blocks.getType(request.params.id);
        if (!type) throw new HttpError(404, "Block type not found");
        // Only when something changes (Prefect's `_should_update_block_type`: the fields sent against all
        // four stored ones, descriptions and code examples compared unescaped).
        const comparable = (key: string, value: unknown) => (key === "description" || key === "code_example") && typeof value === "string" ? htmlUnescape(value) : value;
        const keys = ["logo_url", "documentation_url", "description", "code_example"] as const;
        const sent = keys.filter((key) => patch[key] !== undefined);
        const same = sent.length === keys.length && keys.every((key) => comparable(key, patch[key]) === comparable(key, type[key]));
        return same ? undefined : tx.blocks.updateType(type.id, Object.fromEntries(sent.map((key) => [key, patch[key]])));
      });
      if (updated) publishBlockTypeEvent(context, "updated", updated);
      return reply.code(204).send();
    });

    app.delete(`/block_types/${ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const deleted = await db.transaction(async (tx) => {
        const type = await tx.blocks.getType(request.params.id);
        if (!type) throw new HttpError(404, "Block type not found");
        if (type.is_protected) throw new HttpError(403, "protected block types cannot be deleted.");
        const storageDefault = await deletesStorageDefault(tx, (doc) => doc.block_type_id === type.id);
        await tx.blocks.deleteType(type.id);
        if (storageDefault) await tx.configuration.delete(STORAGE_DEFAULT);
        return type;
      });
      publishBlockTypeEvent(context, "deleted", deleted);
      return reply.code(204).send();
    });

    app.get("/block_types/slug/:slug/block_documents", { schema: { params: z.object({ slug: z.string() }), querystring: SecretsQuery } }, async (request) => {
      const key = await fernet();
      const type = await db.blocks.getTypeBySlug(request.params.slug);
      if (!type) throw new HttpError(404, "Block type not found");
      return readBlockDocuments(db, key, { block_documents: documentFilter({ block_type_id: { any_: [type.id] } }) }, request.query.include_secrets ?? false);
    });

    app.get(
      "/block_types/slug/:slug/block_documents/name/:block_document_name",
      { schema: { params: z.object({ slug: z.string(), block_document_name: z.string() }), querystring: SecretsQuery } },
      async (request) => {
        const key = await fernet();
        const [doc] = await readBlockDocuments(
          db,
          key,
          {
            block_documents: { name: { any_: [request.params.block_document_name] } },
            block_types: { slug: { any_: [request.params.slug] } },
            limit: 1,
          },
          request.query.include_secrets ?? false,
        );
        if (!doc) throw new HttpError(404, "Block document not found");
        return doc;
      },
    );

    app.post("/block_types/install_system_block_types", async (_request, reply) => {
      for (const type of await installSystemBlockTypes(db)) publishBlockTypeEvent(context, "created", type);
      return reply.code(200).send(null);
    });

    // ---- Block schemas -----------------------------------------------------------------------
    app.post("/block_schemas/", { schema: { body: api.BlockSchemaCreate }, preParsing: keepRawBody }, async (request, reply) => {
      const body = request.body;
      const fields = losslessFields(request, body.fields);
      const { schema, created } = await db.transaction(async (tx) => {
        if (!(await tx.blocks.getType(body.block_type_id))) throw new HttpError(404, `Block type ${body.block_type_id} not found.`);
        return createBlockSchema(tx, { fields, block_type_id: body.block_type_id, capabilities: body.capabilities, version: body.version });
      });
      return reply.code(created ? 201 : 200).send(schema);
    });

    app.delete(`/block_schemas/${ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await db.transaction(async (tx) => {
        const schema = await tx.blocks.getSchema(request.params.id);
        if (!schema) throw new HttpError(404, "Block schema not found");
        if (schema.block_type.is_protected) throw new HttpError(403, "Block schemas for protected block types cannot be deleted.");
        const storageDefault = await deletesStorageDefault(tx, (doc) => doc.block_schema_id === schema.id);
        await tx.blocks.deleteSchema(schema.id);
        if (storageDefault) await tx.configuration.delete(STORAGE_DEFAULT);
      });
      return reply.code(204).send();
    });

    app.post("/block_schemas/filter", { schema: { body: api.Body_read_block_schemas_block_schemas_filter_post } }, async (request) => {
      const body = request.body;
      const schemas = await db.blocks.readSchemas({
        block_schemas: (body.block_schemas ?? null) as BlockDocumentReadOptions["block_schemas"],
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return readFullBlockSchemas(db, schemas);
    });

    app.get(`/block_schemas/${ID}`, { schema: { params: IdParams } }, async (request) => {
      const schema = await db.blocks.getSchema(request.params.id);
      if (!schema) throw new HttpError(404, "Block schema not found");
      return (await readFullBlockSchemas(db, [schema]))[0];
    });

    app.get(
      "/block_schemas/checksum/:checksum",
      { schema: { params: z.object({ checksum: z.string() }), querystring: z.object({ version: z.string().optional() }) } },
      async (request) => {
        const schema = await db.blocks.getSchemaByChecksum(request.params.checksum, request.query.version ?? null);
        if (!schema) throw new HttpError(404, "Block schema not found");
        return (await readFullBlockSchemas(db, [schema]))[0];
      },
    );

    // ---- Block capabilities ------------------------------------------------------------------
    app.get("/block_capabilities/", async () => db.blocks.capabilities());

    // ---- Block documents ---------------------------------------------------------------------
    app.post("/block_documents/", { schema: { body: api.BlockDocumentCreate } }, async (request, reply) => {
      const body = request.body;
      if (!body.is_anonymous && !body.name) throw valueError([], "Names must be provided for block documents.");
      if (body.name && !LOWERCASE_DASHES.test(body.name)) {
        throw valueError(["name"], "Block document name must only contain lowercase letters, numbers, and dashes.");
      }
      const key = await fernet();
      const doc = await db.transaction((tx) => createBlockDocument(tx, key, body));
      publishBlockDocumentEvent(context, "created", doc);
      return reply.code(201).send(doc);
    });

    app.post("/block_documents/filter", { schema: { body: api.Body_read_block_documents_block_documents_filter_post } }, async (request) => {
      const body = request.body;
      const key = await fernet();
      return readBlockDocuments(
        db,
        key,
        {
          block_documents: documentFilter(body.block_documents),
          block_types: (body.block_types ?? null) as BlockDocumentReadOptions["block_types"],
          block_schemas: (body.block_schemas ?? null) as BlockDocumentReadOptions["block_schemas"],
          sort: body.sort ?? "NAME_ASC",
          limit: limitOf(body.limit),
          offset: body.offset ?? 0,
        },
        body.include_secrets ?? false,
      );
    });

    app.post("/block_documents/count", { schema: { body: api.Body_count_block_documents_block_documents_count_post } }, async (request) => {
      const body = request.body;
      return db.blocks.countDocuments({
        block_documents: documentFilter(body.block_documents),
        block_types: (body.block_types ?? null) as BlockDocumentReadOptions["block_types"],
        block_schemas: (body.block_schemas ?? null) as BlockDocumentReadOptions["block_schemas"],
      });
    });

    app.get(`/block_documents/${ID}`, { schema: { params: IdParams, querystring: SecretsQuery } }, async (request) => {
      const key = await fernet();
      const doc = await readBlockDocument(db, key, request.params.id, request.query.include_secrets ?? false);
      if (!doc) throw new HttpError(404, "Block document not found");
      return doc;
    });

    app.delete(`/block_documents/${ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const key = await fernet();
      const deleted = await db.transaction(async (tx: Repositories) => {
        const doc = await readBlockDocument(tx, key, request.params.id, false);
        if (!doc) throw new HttpError(404, "Block document not found");
        const storageDefault = await deletesStorageDefault(tx, (stored) => stored.id === doc.id);
        await tx.blocks.deleteDocument(doc.id);
        if (storageDefault) await tx.configuration.delete(STORAGE_DEFAULT);
        return doc;
      });
      publishBlockDocumentEvent(context, "deleted", deleted);
      return reply.code(204).send();
    });

    app.patch(`/block_documents/${ID}`, { schema: { params: IdParams, body: api.BlockDocumentUpdate } }, async (request, reply) => {
      const key = await fernet();
      const updated = await db.transaction(async (tx) =>
        (await updateBlockDocument(tx, key, request.params.id, request.body)) ? readBlockDocument(tx, key, request.params.id, false) : undefined,
      );
      if (!updated) throw new HttpError(404, "Block document not found");
      publishBlockDocumentEvent(context, "updated", updated);
      return reply.code(204).send();
    });
  };
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

/** Python's `html.unescape` for the references Prefect's escaping produces (and numeric ones). */
function htmlUnescape(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (match, ref: string) => {
    const code = ref.startsWith("#x") || ref.startsWith("#X") ? Number.parseInt(ref.slice(2), 16) : ref.startsWith("#") ? Number.parseInt(ref.slice(1), 10) : undefined;
    if (code === undefined) return ENTITIES[ref] ?? match;
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
  });
}
