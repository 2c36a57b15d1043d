/**
 * Blocks: Prefect's Block types, Block schemas, Block documents and Block capabilities routes (see
 * service.ts for what they do).
 */
import { Readable } from "node:stream";
import { type BlockDocumentReadOptions, InvalidError } from "@prefect/db";
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, LaxBoolean, limitOf, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { isRecord, parseJsonLosslessly } from "../../prefect/json.js";
import { blockTypeResponse } from "./schemas.js";
import {
  countBlockDocuments,
  createBlockDocument,
  createBlockSchema,
  createBlockType,
  deleteBlockDocument,
  deleteBlockSchema,
  deleteBlockType,
  documentFilter,
  installSystemBlocks,
  readBlockCapabilities,
  readBlockDocumentById,
  readBlockDocumentByName,
  readBlockDocumentsOf,
  readBlockDocumentsOfType,
  readBlockSchema,
  readBlockSchemaByChecksum,
  readBlockSchemas,
  readBlockType,
  readBlockTypeBySlug,
  readBlockTypes,
  updateBlockDocument,
  updateBlockType,
} from "./service.js";
import { serverFernet } from "./encryption.js";

const SecretsQuery = z.object({ include_secrets: LaxBoolean.optional() });
const SlugParams = z.object({ slug: z.string() });

const LOWERCASE_DASHES = /^[a-z0-9-]*$/;

/** A body rule Prefect checks in its models (pydantic answers 422 `value_error`). */
function valueError(path: (string | number)[], message: string): InvalidError {
  return new InvalidError(message, [{ path, message: `Value error, ${message}` }]);
}

type Criteria = Pick<BlockDocumentReadOptions, "block_types" | "block_schemas">;
const criteriaOf = (body: { block_types?: unknown; block_schemas?: unknown }): Criteria => ({
  block_types: (body.block_types ?? null) as BlockDocumentReadOptions["block_types"],
  block_schemas: (body.block_schemas ?? null) as BlockDocumentReadOptions["block_schemas"],
});

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
      if (isRecord(body) && isRecord(body.fields)) return body.fields;
    } catch {
      // Fastify parsed it, so this cannot fail; fall back to its reading all the same.
    }
  }
  return parsed ?? {};
}

export function blockRoutes(context: AppContext): Routes {
  const { db } = context;
  // A malformed key setting is refused at once.
  const fernet = serverFernet(context);

  return async (app) => {
    // The stored key is read (or made) while the server starts, outside any transaction: its first use
    // may come inside one (block references in job variables), where a write through `db` would wait
    // for the transaction it is part of.
    await fernet();
    // ---- Block types -------------------------------------------------------------------------
    app.post("/block_types/", { schema: { body: api.BlockTypeCreate } }, async (request, reply) => {
      const body = request.body;
      if (!LOWERCASE_DASHES.test(body.slug)) throw valueError(["slug"], "Block type slug must only contain lowercase letters, numbers, and dashes.");
      return reply.code(201).send(blockTypeResponse(await createBlockType(context, body)));
    });

    app.get(`/block_types/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => blockTypeResponse(await readBlockType(db, request.params.id)));

    app.get("/block_types/slug/:slug", { schema: { params: SlugParams } }, async (request) => blockTypeResponse(await readBlockTypeBySlug(db, request.params.slug)));

    app.post("/block_types/filter", { schema: { body: api.Body_read_block_types_block_types_filter_post } }, async (request) => {
      const body = request.body;
      const types = await readBlockTypes(db, { ...criteriaOf(body), limit: limitOf(body.limit), offset: body.offset ?? 0 });
      return types.map(blockTypeResponse);
    });

    app.patch(`/block_types/${UUID_ID}`, { schema: { params: IdParams, body: api.BlockTypeUpdate } }, async (request, reply) => {
      await updateBlockType(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete(`/block_types/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteBlockType(context, request.params.id);
      return reply.code(204).send();
    });

    app.get("/block_types/slug/:slug/block_documents", { schema: { params: SlugParams, querystring: SecretsQuery } }, async (request) =>
      readBlockDocumentsOfType(context, request.params.slug, request.query.include_secrets ?? false),
    );

    app.get(
      "/block_types/slug/:slug/block_documents/name/:block_document_name",
      { schema: { params: z.object({ slug: z.string(), block_document_name: z.string() }), querystring: SecretsQuery } },
      async (request) => readBlockDocumentByName(context, request.params.slug, request.params.block_document_name, request.query.include_secrets ?? false),
    );

    app.post("/block_types/install_system_block_types", async (_request, reply) => {
      await installSystemBlocks(context);
      return reply.code(200).send(null);
    });

    // ---- Block schemas -----------------------------------------------------------------------
    app.post("/block_schemas/", { schema: { body: api.BlockSchemaCreate }, preParsing: keepRawBody }, async (request, reply) => {
      const body = request.body;
      const fields = losslessFields(request, body.fields);
      const { schema, created } = await createBlockSchema(db, { fields, block_type_id: body.block_type_id, capabilities: body.capabilities, version: body.version });
      return reply.code(created ? 201 : 200).send(schema);
    });

    app.delete(`/block_schemas/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteBlockSchema(db, request.params.id);
      return reply.code(204).send();
    });

    app.post("/block_schemas/filter", { schema: { body: api.Body_read_block_schemas_block_schemas_filter_post } }, async (request) => {
      const body = request.body;
      return readBlockSchemas(db, { block_schemas: criteriaOf(body).block_schemas, limit: limitOf(body.limit), offset: body.offset ?? 0 });
    });

    app.get(`/block_schemas/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => readBlockSchema(db, request.params.id));

    app.get(
      "/block_schemas/checksum/:checksum",
      { schema: { params: z.object({ checksum: z.string() }), querystring: z.object({ version: z.string().optional() }) } },
      async (request) => readBlockSchemaByChecksum(db, request.params.checksum, request.query.version ?? null),
    );

    // ---- Block capabilities ------------------------------------------------------------------
    app.get("/block_capabilities/", async () => readBlockCapabilities(db));

    // ---- Block documents ---------------------------------------------------------------------
    app.post("/block_documents/", { schema: { body: api.BlockDocumentCreate } }, async (request, reply) => {
      const body = request.body;
      if (!body.is_anonymous && !body.name) throw valueError([], "Names must be provided for block documents.");
      if (body.name && !LOWERCASE_DASHES.test(body.name)) {
        throw valueError(["name"], "Block document name must only contain lowercase letters, numbers, and dashes.");
      }
      return reply.code(201).send(await createBlockDocument(context, body));
    });

    app.post("/block_documents/filter", { schema: { body: api.Body_read_block_documents_block_documents_filter_post } }, async (request) => {
      const body = request.body;
      return readBlockDocumentsOf(
        context,
        { block_documents: documentFilter(body.block_documents), ...criteriaOf(body), sort: body.sort ?? "NAME_ASC", limit: limitOf(body.limit), offset: body.offset ?? 0 },
        body.include_secrets ?? false,
      );
    });

    app.post("/block_documents/count", { schema: { body: api.Body_count_block_documents_block_documents_count_post } }, async (request) =>
      countBlockDocuments(db, { block_documents: documentFilter(request.body.block_documents), ...criteriaOf(request.body) }),
    );

    app.get(`/block_documents/${UUID_ID}`, { schema: { params: IdParams, querystring: SecretsQuery } }, async (request) =>
      readBlockDocumentById(context, request.params.id, request.query.include_secrets ?? false),
    );

    app.delete(`/block_documents/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteBlockDocument(context, request.params.id);
      return reply.code(204).send();
    });

    app.patch(`/block_documents/${UUID_ID}`, { schema: { params: IdParams, body: api.BlockDocumentUpdate } }, async (request, reply) => {
      await updateBlockDocument(context, request.params.id, request.body);
      return reply.code(204).send();
    });
  };
}
