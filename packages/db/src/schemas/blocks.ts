import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { JsonObject, Uuid } from "./common.js";

export interface BlockType {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  slug: string;
  logo_url: string | null;
  documentation_url: string | null;
  description: string | null;
  code_example: string | null;
  is_protected: boolean;
}

const slug = z.string().regex(/^[a-z0-9-]+$/, { message: "slug must only contain lowercase letters, numbers, and dashes" });

export const BlockTypeCreate = z.object({
  id: Uuid.optional(),
  name: z.string().min(1),
  slug,
  logo_url: z.string().nullish(),
  documentation_url: z.string().nullish(),
  description: z.string().nullish(),
  code_example: z.string().nullish(),
  is_protected: z.boolean().default(false),
});
export type BlockTypeCreate = z.input<typeof BlockTypeCreate>;

export const BlockTypeUpdate = z.object({
  /** Only for installing Prefect's system block types (Prefect's API cannot change these). */
  name: z.string().min(1).optional(),
  is_protected: z.boolean().optional(),
  logo_url: z.string().nullish(),
  documentation_url: z.string().nullish(),
  description: z.string().nullish(),
  code_example: z.string().nullish(),
});
export type BlockTypeUpdate = z.input<typeof BlockTypeUpdate>;

export interface BlockSchema {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  checksum: string;
  fields: Record<string, unknown>;
  capabilities: string[];
  version: string;
  block_type_id: string;
  block_type: BlockType;
}

export const DEFAULT_BLOCK_SCHEMA_VERSION = "non-versioned";

export const BlockSchemaCreate = z.object({
  id: Uuid.optional(),
  checksum: z.string().min(1),
  fields: JsonObject.default({}),
  capabilities: z.array(z.string()).default([]),
  version: z.string().default(DEFAULT_BLOCK_SCHEMA_VERSION),
  block_type_id: Uuid,
});
export type BlockSchemaCreate = z.input<typeof BlockSchemaCreate>;

export interface BlockSchemaReference {
  id: string;
  name: string;
  parent_block_schema_id: string;
  reference_block_schema_id: string;
}

export interface BlockDocument {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  /** As stored: the API layer encrypts it at rest. */
  data: unknown;
  is_anonymous: boolean;
  block_type_name: string | null;
  block_type_id: string;
  block_schema_id: string;
  block_type: BlockType;
  block_schema: BlockSchema;
}

export const BlockDocumentCreate = z.object({
  id: Uuid.optional(),
  name: z.string().min(1).nullish(),
  data: z.unknown(),
  is_anonymous: z.boolean().default(false),
  block_type_id: Uuid,
  block_schema_id: Uuid,
});
export type BlockDocumentCreate = z.input<typeof BlockDocumentCreate>;

export const BlockDocumentUpdate = z.object({
  block_schema_id: Uuid.optional(),
  data: z.unknown().optional(),
});
export type BlockDocumentUpdate = z.input<typeof BlockDocumentUpdate>;

export interface BlockDocumentReference {
  id: string;
  name: string;
  parent_block_document_id: string;
  reference_block_document_id: string;
}
