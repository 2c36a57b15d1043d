/**
 * The block types Prefect's server registers (`run_block_auto_registration`): first the protected
 * system types (Webhook, Secret, LocalFileSystem) as `_install_protected_system_blocks` does, each
 * upserted by slug and marked protected; then the other block classes of Prefect's registry
 * (RemoteFileSystem, SMB, the notification blocks) as `_register_registry_blocks` does, each created
 * or updated by slug. Each schema is created unless one with the same checksum and version exists;
 * each type in its own transaction. Their definitions are data (system-blocks.json, generated from
 * Prefect's classes; see README.md).
 */
import { AlreadyExistsError, type BlockType, type Database, type Repositories } from "@prefect/db";
import catalog from "./system-blocks.json" with { type: "json" };
import { createBlockSchema } from "./schemas.js";

interface SystemBlockType {
  name: string;
  slug: string;
  logo_url: string | null;
  documentation_url: string | null;
  description: string | null;
  code_example: string | null;
  block_schema: { checksum: string; fields: Record<string, unknown>; capabilities: string[]; version: string };
  /** Installed as a protected system type (the user cannot change or delete it). */
  protected: boolean;
}

export const SYSTEM_BLOCK_TYPES: readonly SystemBlockType[] = catalog.block_types as SystemBlockType[];

/** Python's `html.escape(text, quote=False)`, which Prefect applies to new block types' texts. */
export function htmlEscape(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

async function upsertType(tx: Repositories, entry: SystemBlockType): Promise<{ type: BlockType; created: boolean }> {
  const wanted = {
    name: entry.name,
    logo_url: entry.logo_url,
    documentation_url: entry.documentation_url,
    description: htmlEscape(entry.description),
    code_example: htmlEscape(entry.code_example),
    ...(entry.protected ? { is_protected: true } : {}),
  };
  let existing = await tx.blocks.getTypeBySlug(entry.slug);
  if (!existing) {
    try {
      return { type: await tx.transaction((inner) => inner.blocks.createType({ ...wanted, slug: entry.slug })), created: true };
    } catch (error) {
      // Installed meanwhile by another request or server: update that one instead.
      if (!(error instanceof AlreadyExistsError)) throw error;
      existing = await tx.blocks.getTypeBySlug(entry.slug);
      if (!existing) throw error;
    }
  }
  const current = existing;
  const differs = (Object.keys(wanted) as (keyof typeof wanted)[]).some((key) => current[key] !== wanted[key]);
  return { type: differs ? await tx.blocks.updateType(current.id, wanted) : current, created: false };
}

/** Installs them; returns the block types it created. */
export async function installSystemBlockTypes(db: Database): Promise<BlockType[]> {
  const created: BlockType[] = [];
  for (const entry of SYSTEM_BLOCK_TYPES) {
    await db.transaction(async (tx) => {
      const { type, created: isNew } = await upsertType(tx, entry);
      const { fields, capabilities, version } = entry.block_schema;
      await createBlockSchema(tx, { fields, capabilities, version, block_type_id: type.id });
      if (isNew) created.push(type);
    });
  }
  return created;
}
