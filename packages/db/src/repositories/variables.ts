import { randomUUID } from "node:crypto";
import type { Dialect } from "../dialect.js";
import { AlreadyExistsError, NotFoundError } from "../errors.js";
import { page, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { Page } from "../schemas/common.js";
import { VariableFilter, VariableSort } from "../schemas/filters.js";
import { type Variable, VariableCreate, VariableUpdate } from "../schemas/variables.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface VariableReadOptions extends Page {
  readonly variables?: VariableFilter | null | undefined;
  readonly sort?: VariableSort | undefined;
}

export interface VariableRepository {
  /** Throws AlreadyExistsError when the name is taken. */
  create(input: VariableCreate): Promise<Variable>;
  get(id: string): Promise<Variable | null>;
  getByName(name: string): Promise<Variable | null>;
  /** Variables matching the filter, sorted (NAME_ASC by default), paged. */
  read(options?: VariableReadOptions): Promise<Variable[]>;
  count(variables?: VariableFilter | null): Promise<number>;
  /** Throws NotFoundError for an unknown id, AlreadyExistsError when renaming onto a taken name. */
  update(id: string, patch: VariableUpdate): Promise<Variable>;
  /** As `update`, addressing the variable by name. */
  updateByName(name: string, patch: VariableUpdate): Promise<Variable>;
  /** Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
  /** Throws NotFoundError for an unknown name. */
  deleteByName(name: string): Promise<void>;
}

const spec = tables.variable;

const SORTS: Record<VariableSort, string> = {
  CREATED_DESC: `v."created" DESC, v."id"`,
  UPDATED_DESC: `v."updated" DESC, v."id"`,
  NAME_DESC: `v."name" DESC`,
  NAME_ASC: `v."name" ASC`,
};

/** Prefect's VariableFilter as SQL on `variable` rows aliased `v`. */
export function variableFilterSql(d: Dialect, input: VariableFilter | null | undefined): Sql {
  const f = input === null || input === undefined ? null : parseInput(VariableFilter, input, "variable filter");
  if (!f) return sql.empty;
  const column = (name: string) => sql.raw(`v."${name}"`);
  const combine = (op: "and_" | "or_", parts: Sql[]) => {
    const present = parts.filter((p) => !p.isEmpty);
    if (present.length === 0) return sql.empty;
    return op === "or_" ? sql.or(present) : sql.and(present);
  };
  const tags = f.tags
    ? combine(f.tags.operator, [
        f.tags.all_ && f.tags.all_.length > 0 ? d.jsonArrayContainsAll(column("tags"), f.tags.all_) : sql.empty,
        f.tags.is_null_ === true ? d.jsonArrayIsEmpty(column("tags")) : sql.empty,
        f.tags.is_null_ === false ? sql`NOT (${d.jsonArrayIsEmpty(column("tags"))})` : sql.empty,
      ])
    : sql.empty;
  return combine(f.operator, [
    f.id?.any_ ? d.inList(column("id"), f.id.any_) : sql.empty,
    f.name?.any_ ? d.inList(column("name"), f.name.any_) : sql.empty,
    f.name?.like_ ? d.containsInsensitive(column("name"), f.name.like_) : sql.empty,
    tags,
  ]);
}

export function variableRepository({ q }: RepositoryContext): VariableRepository {
  const d = q.dialect;
  const decode = rowDecoder<Variable>(d, spec);
  const select = sql`SELECT ${selectList(spec, "v")} FROM variable v`;

  const one = async (condition: Sql) => {
    const rows = await q.query(sql`${select} WHERE ${condition}`);
    return rows[0] ? decode(rows[0]) : null;
  };
  const duplicate = (error: unknown, name: string | null | undefined) =>
    error instanceof AlreadyExistsError && name !== null && name !== undefined
      ? new AlreadyExistsError(`A variable with the name '${name}' already exists.`, "name", { cause: error })
      : error;

  async function updateWhere(condition: Sql, what: string, patch: VariableUpdate): Promise<Variable> {
    const data = parseInput(VariableUpdate, patch, "variable update");
    const changes: Record<string, unknown> = { updated: now() };
    if (data.name !== null && data.name !== undefined) changes.name = data.name;
    if (data.tags !== null && data.tags !== undefined) changes.tags = data.tags;
    // An explicit null value is stored (as SQL NULL, which reads back as null).
    const valueSet = data.value !== undefined ? sql`, "value" = ${data.value === null ? null : sql.json(data.value)}` : sql.empty;
    let rows: Record<string, unknown>[];
    try {
      rows = await q.query(sql`UPDATE variable SET ${assignments(spec, changes)}${valueSet} WHERE ${condition} RETURNING ${selectList(spec, "variable")}`);
    } catch (error) {
      throw duplicate(error, data.name);
    }
    if (!rows[0]) throw new NotFoundError(`Variable ${what} not found.`);
    return decode(rows[0]);
  }

  async function deleteWhere(condition: Sql, what: string): Promise<void> {
    if ((await q.execute(sql`DELETE FROM variable WHERE ${condition}`)) === 0) throw new NotFoundError(`Variable ${what} not found.`);
  }

  return {
    async create(input) {
      const data = parseInput(VariableCreate, input, "variable");
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, name: data.name, value: data.value ?? null, tags: data.tags };
      try {
        await q.execute(insertSql(spec, row));
      } catch (error) {
        throw duplicate(error, data.name);
      }
      return row;
    },
    get: async (id) => one(sql`v."id" = ${checkId(id, "variable id")}`),
    getByName: async (name) => one(sql`v."name" = ${name}`),
    async read(options = {}) {
      const sort = parseInput(VariableSort.default("NAME_ASC"), options.sort, "variable sort");
      const rows = await q.query(sql`${select}${where(variableFilterSql(d, options.variables))} ORDER BY ${sql.raw(SORTS[sort])}${page(d, options.limit, options.offset)}`);
      return rows.map(decode);
    },
    async count(variables) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM variable v${where(variableFilterSql(d, variables))}`);
      return Number(rows[0]?.n ?? 0);
    },
    async update(id, patch) {
      id = checkId(id, "variable id");
      return updateWhere(sql`"id" = ${id}`, id, patch);
    },
    updateByName: async (name, patch) => updateWhere(sql`"name" = ${name}`, JSON.stringify(name), patch),
    async delete(id) {
      id = checkId(id, "variable id");
      return deleteWhere(sql`"id" = ${id}`, id);
    },
    deleteByName: async (name) => deleteWhere(sql`"name" = ${name}`, JSON.stringify(name)),
  };
}
