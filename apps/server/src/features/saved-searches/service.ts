/** Saved searches (the Prefect UI's named filter sets): created or replaced by name, read, listed, deleted. */
import { NotFoundError, type Repositories, type SavedSearch, type SavedSearchCreate } from "@prefect/db";
import { notFound } from "../../prefect/errors.js";

const NOT_FOUND = "Saved search not found";

export const createSavedSearch = (db: Repositories, input: SavedSearchCreate) => db.savedSearches.create(input);

export async function readSavedSearch(db: Repositories, id: string): Promise<SavedSearch> {
  const search = await db.savedSearches.get(id);
  if (!search) throw notFound(NOT_FOUND);
  return search;
}

export const readSavedSearches = (db: Repositories, page: { limit: number; offset: number }) => db.savedSearches.read(page);

export async function deleteSavedSearch(db: Repositories, id: string): Promise<void> {
  try {
    await db.savedSearches.delete(id);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    throw error;
  }
}
