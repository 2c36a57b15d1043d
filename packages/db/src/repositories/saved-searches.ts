import { randomUUID } from "node:crypto";
import { NotFoundError } from "../errors.js";
import { page } from "../filters.js";
import { checkId } from "../ids.js";
import type { Created, Page } from "../schemas/common.js";
import { type SavedSearch, SavedSearchCreate } from "../schemas/saved-searches.js";
import { type Sql, sql } from "../sql.js";
import { insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface SavedSearchRepository {
  /** Inserts the search, or replaces the filters of the one with that name (Prefect's upsert by name). */
  create(input: SavedSearchCreate): Promise<Created<SavedSearch>>;
  get(id: string): Promise<SavedSearch | null>;
  getByName(name: string): Promise<SavedSearch | null>;
  /** Every saved search, by name. */
  read(options?: Page): Promise<SavedSearch[]>;
  /** Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
}

const spec = tables.saved_search;

export function savedSearchRepository({ q }: RepositoryContext): SavedSearchRepository {
  const decode = rowDecoder<SavedSearch>(q.dialect, spec);
  const select = sql`SELECT ${selectList(spec, "s")} FROM saved_search s`;
  const one = async (condition: Sql) => {
    const rows = await q.query(sql`${select} WHERE ${condition}`);
    return rows[0] ? decode(rows[0]) : null;
  };

  return {
    async create(input) {
      const data = parseInput(SavedSearchCreate, input, "saved search");
      const ts = now();
      const id = randomUUID();
      const rows = await q.query(
        insertSql(
          spec,
          { id, created: ts, updated: ts, name: data.name, filters: data.filters },
          sql` ON CONFLICT ("name") DO UPDATE SET "filters" = excluded."filters", "updated" = excluded."updated" RETURNING ${selectList(spec, "saved_search")}`,
        ),
      );
      const row = decode(rows[0]!);
      return { row, created: row.id === id };
    },
    get: async (id) => one(sql`s."id" = ${checkId(id, "saved search id")}`),
    getByName: async (name) => one(sql`s."name" = ${name}`),
    async read(options = {}) {
      const rows = await q.query(sql`${select} ORDER BY s."name", s."id"${page(q.dialect, options.limit, options.offset)}`);
      return rows.map(decode);
    },
    async delete(id) {
      id = checkId(id, "saved search id");
      if ((await q.execute(sql`DELETE FROM saved_search WHERE "id" = ${id}`)) === 0) throw new NotFoundError(`Saved search ${id} not found.`);
    },
  };
}
