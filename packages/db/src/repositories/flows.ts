import { randomUUID } from "node:crypto";
import { readById } from "../coalesce.js";
import { NotFoundError } from "../errors.js";
import { flowCriteriaSql, page, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { Created, Page } from "../schemas/common.js";
import type { FlowSort, RunCriteria } from "../schemas/filters.js";
import { type Flow, FlowCreate, FlowUpdate } from "../schemas/runs.js";
import { sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface FlowReadOptions extends RunCriteria, Page {
  readonly sort?: FlowSort | undefined;
}

export interface FlowRepository {
  /** Inserts a flow, or returns the existing one with that name untouched (Prefect's upsert by name). */
  create(input: FlowCreate): Promise<Created<Flow>>;
  get(id: string): Promise<Flow | null>;
  getByName(name: string): Promise<Flow | null>;
  read(options?: FlowReadOptions): Promise<Flow[]>;
  count(criteria?: RunCriteria): Promise<number>;
  /** Throws NotFoundError for an unknown id. */
  update(id: string, patch: FlowUpdate): Promise<Flow>;
  /** Deletes the flow and, by cascade, its runs. Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
}

const spec = tables.flow;

const SORTS: Record<FlowSort, string> = {
  CREATED_DESC: `f."created" DESC, f."id"`,
  UPDATED_DESC: `f."updated" DESC, f."id"`,
  NAME_ASC: `f."name" ASC`,
  NAME_DESC: `f."name" DESC`,
};

export function flowRepository({ q }: RepositoryContext): FlowRepository {
  const decode = rowDecoder<Flow>(q.dialect, spec);
  const select = sql`SELECT ${selectList(spec, "f")} FROM flow f`;

  const byId = readById(q, select, sql`f."id"`, decode);
  const getBy = async (condition: ReturnType<typeof sql>) => {
    const rows = await q.query(sql`${select} WHERE ${condition}`);
    return rows[0] ? decode(rows[0]) : null;
  };

  return {
    async create(input) {
      const data = parseInput(FlowCreate, input, "flow");
      const ts = now();
      const row = { id: data.id ?? randomUUID(), created: ts, updated: ts, name: data.name, tags: data.tags, labels: data.labels ?? null };
      const inserted = await q.query(insertSql(spec, row, sql` ON CONFLICT ("name") DO NOTHING RETURNING id`));
      if (inserted.length > 0) return { row: row as Flow, created: true };
      const existing = await getBy(sql`f."name" = ${data.name}`);
      if (!existing) throw new NotFoundError(`Flow ${data.name} was deleted while it was being created; try again.`);
      return { row: existing, created: false };
    },

    get: async (id) => byId(checkId(id, "flow id")),
    getByName: (name) => getBy(sql`f."name" = ${name}`),

    async read(options = {}) {
      const rows = await q.query(
        sql`${select}${where(flowCriteriaSql(q.dialect, options, "f"))} ORDER BY ${sql.raw(SORTS[options.sort ?? "NAME_ASC"])}${page(
          q.dialect,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(decode);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM flow f${where(flowCriteriaSql(q.dialect, criteria, "f"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, "flow id");
      const data = parseInput(FlowUpdate, patch, "flow update");
      const changes = { ...data, updated: now() };
      const rows = await q.query(sql`UPDATE flow SET ${assignments(spec, changes)} WHERE id = ${id} RETURNING ${selectList(spec, "flow")}`);
      if (!rows[0]) throw new NotFoundError(`Flow ${id} not found.`);
      return decode(rows[0]);
    },

    async delete(id) {
      id = checkId(id, "flow id");
      const deleted = await q.execute(sql`DELETE FROM flow WHERE id = ${id}`);
      if (deleted === 0) throw new NotFoundError(`Flow ${id} not found.`);
    },
  };
}
