/**
 * Block fixtures for the blocks suites: block types and schemas made by Prefect's own code (see the
 * fixtures' `_origin`), posted the way Prefect's client registers them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { type PyJson, parseJsonLosslessly, pythonJsonDumps } from "../../src/prefect/json.js";
import type { TestServer } from "./server.js";

export interface FixtureBlock {
  block_type: {
    name: string;
    slug: string;
    logo_url: string | null;
    documentation_url: string | null;
    description: string | null;
    code_example: string | null;
  };
  block_schema: { checksum: string; fields: Record<string, PyJson>; capabilities: string[]; version: string };
}

const read = (name: string) => readFileSync(join(import.meta.dirname, "..", "fixtures", name), "utf8");

/** Prefect-generated blocks by slug: a, b, c, d (b nested), e (c and d nested), floaty, childblock, parentblock, ... */
export const PREFECT_BLOCKS: Record<string, FixtureBlock> = Object.fromEntries(
  (parseJsonLosslessly(read("prefect-block-schemas.json")) as unknown as { blocks: FixtureBlock[] }).blocks.map((b) => [b.block_type.slug, b]),
);

export const PYTHON_FERNET = JSON.parse(read("python-fernet.json")) as { key: string; data: Record<string, unknown>; json: string; token: string };

/** POST /block_types/ as Prefect's client does; returns the type's id. */
export async function registerType(server: TestServer, block: FixtureBlock): Promise<string> {
  const { name, slug, logo_url, documentation_url, description, code_example } = block.block_type;
  const response = await server.request("POST", "/block_types/", { name, slug, logo_url, documentation_url, description, code_example });
  expect(response.status).toBe(201);
  return response.body.id as string;
}

/** POST /block_schemas/ with the fields as Python writes them (floats kept). */
export async function postSchema(server: TestServer, block: FixtureBlock, blockTypeId: string, version?: string) {
  const body = { fields: block.block_schema.fields, block_type_id: blockTypeId, capabilities: block.block_schema.capabilities, ...(version ? { version } : {}) };
  return server.request("POST", "/block_schemas/", undefined, { raw: pythonJsonDumps(body) });
}

/** A block type with its schema, registered; returns their ids. */
export async function registerBlock(server: TestServer, block: FixtureBlock): Promise<{ typeId: string; schemaId: string }> {
  const typeId = await registerType(server, block);
  const schema = await postSchema(server, block, typeId);
  expect(schema.status).toBe(201);
  return { typeId, schemaId: schema.body.id as string };
}
