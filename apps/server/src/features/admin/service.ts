/**
 * The server's own settings kept in the database: the default result storage block (`/admin/storage`,
 * in the `configuration` table where Prefect keeps it) and the CSRF tokens it issues.
 */
import type { BlockDocument, CsrfToken, Database, Repositories } from "@prefect/db";
import { notFound, unprocessableDetail } from "../../prefect/errors.js";
import { isRecord } from "../../prefect/json.js";

/** Where Prefect keeps the server's default result storage block, in the `configuration` table. */
const STORAGE_DEFAULT = "server-default-result-storage";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The block id of a stored storage default, or null (nothing stored, or not a block id). */
function storedBlockId(value: unknown): string | null {
  const id = isRecord(value) ? value.default_result_storage_block_id : undefined;
  return typeof id === "string" && UUID.test(id) ? id.toLowerCase() : null;
}

export async function readStorageDefault(db: Repositories): Promise<string | null> {
  return storedBlockId(await db.configuration.get(STORAGE_DEFAULT));
}

/** Makes the block document the default result storage; it must exist and be able to write paths. */
export async function setStorageDefault(db: Database, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const doc = await tx.blocks.getDocument(id);
    if (!doc) throw notFound(`Block document ${id} not found.`);
    // Prefect's words, with its plain 422 `detail` (not a list of validation problems).
    if (!doc.block_schema.capabilities.includes("write-path")) throw unprocessableDetail(`Block document ${id} cannot be used for result storage.`);
    await tx.configuration.set(STORAGE_DEFAULT, { default_result_storage_block_id: id });
  });
}

export const clearStorageDefault = (db: Repositories) => db.configuration.delete(STORAGE_DEFAULT);

/**
 * Clears the storage default when the deletion about to happen (of the documents `deleted` selects)
 * takes its block document with it, as Prefect does. Run it in the deleting transaction, before the
 * deletion; returns what to do once the rows are gone.
 */
export async function storageDefaultFollowing(tx: Repositories, deleted: (doc: BlockDocument) => boolean): Promise<() => Promise<void>> {
  const id = storedBlockId(await tx.configuration.get(STORAGE_DEFAULT));
  const doc = id ? await tx.blocks.getDocument(id) : null;
  if (doc === null || !deleted(doc)) return async () => undefined;
  return async () => {
    await tx.configuration.delete(STORAGE_DEFAULT);
  };
}

/** A (new or renewed) token for the client; expired tokens go at the same time. */
export function issueCsrfToken(db: Database, client: string, expiresInSeconds: number): Promise<CsrfToken> {
  return db.transaction(async (tx) => {
    const issued = await tx.csrfTokens.createOrUpdate(client, { expires_in_seconds: expiresInSeconds });
    await tx.csrfTokens.deleteExpired();
    return issued;
  });
}
