/**
 * prisma/sqlite/schema.prisma and prisma/postgres/schema.prisma describe the same data model.
 * Allowed to differ: the datasource and generator blocks, native type attributes (@db.*),
 * PostgreSQL-only GIN indexes (trigram and JSONB), how ids default (dbgenerated("gen_random_uuid()")
 * on PostgreSQL, uuid() on SQLite) and the names of primary and foreign keys (SQLite cannot name them).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { type Datamodel, type Field, type Index, indexPredicates, loadDatamodel, type Model } from "./prisma.js";

let sqlite: Datamodel;
let postgres: Datamodel;

beforeAll(async () => {
  [sqlite, postgres] = await Promise.all([loadDatamodel("sqlite"), loadDatamodel("postgres")]);
});

const ID_DEFAULTS = {
  sqlite: JSON.stringify({ name: "uuid", args: [4] }),
  postgres: JSON.stringify({ name: "dbgenerated", args: ["gen_random_uuid()"] }),
};

/** Everything about a field that both schemas must agree on. */
function fieldShape(field: Field) {
  const f = field as Field & { dbName?: string | null; relationOnUpdate?: string; relationOnDelete?: string };
  return {
    kind: f.kind,
    type: f.type,
    dbName: f.dbName ?? null,
    isList: f.isList,
    isRequired: f.isRequired,
    isId: f.isId,
    isUnique: f.isUnique,
    isUpdatedAt: f.isUpdatedAt,
    hasDefaultValue: f.hasDefaultValue,
    relationName: f.relationName ?? null,
    relationFromFields: f.relationFromFields ?? null,
    relationToFields: f.relationToFields ?? null,
    relationOnDelete: f.relationOnDelete ?? null,
    relationOnUpdate: f.relationOnUpdate ?? null,
  };
}

/** A field's default, with the one allowed difference (how ids are generated) folded away. */
function defaultOf(field: Field, provider: "sqlite" | "postgres"): string {
  const value = JSON.stringify(field.default ?? null);
  return field.isId && value === ID_DEFAULTS[provider] ? "<generated uuid>" : value;
}

/** An index as both schemas must spell it; primary key names may differ. */
function indexShape(ix: Index) {
  return {
    model: ix.model,
    type: ix.type,
    name: ix.type === "id" ? "<primary key>" : ix.dbName,
    fields: ix.fields.map((f) => ({ name: f.name, sortOrder: f.sortOrder ?? "asc", length: f.length ?? null, operatorClass: f.operatorClass ?? null })),
    algorithm: ix.algorithm ?? null,
  };
}

const isPostgresOnlyGin = (ix: Index) => ix.algorithm === "Gin";
const byName = <T extends { name: string }>(items: readonly T[]) => new Map(items.map((x) => [x.name, x]));

describe("the SQLite and PostgreSQL schemas describe the same models", () => {
  it("have the same models, mapped to the same tables", () => {
    const shape = (dm: Datamodel) =>
      Object.fromEntries(dm.models.map((m) => [m.name, { table: m.dbName, schema: m.schema ?? null }]));
    expect(shape(sqlite)).toEqual(shape(postgres));
  });

  it("give every model the same fields: names, types, optionality, lists, ids, defaults and relations", () => {
    const problems: string[] = [];
    const pgModels = byName(postgres.models);
    for (const model of sqlite.models) {
      const other = pgModels.get(model.name);
      if (!other) continue;
      const mine = byName(model.fields);
      const theirs = byName(other.fields);
      for (const name of [...new Set([...mine.keys(), ...theirs.keys()])]) {
        const a = mine.get(name);
        const b = theirs.get(name);
        if (!a || !b) {
          problems.push(`${model.name}.${name}: only in the ${a ? "SQLite" : "PostgreSQL"} schema`);
          continue;
        }
        const sa = fieldShape(a);
        const sb = fieldShape(b);
        for (const key of Object.keys(sa) as (keyof typeof sa)[]) {
          const x = JSON.stringify(sa[key]);
          const y = JSON.stringify(sb[key]);
          if (x !== y) problems.push(`${model.name}.${name}: ${key} is ${x} on SQLite but ${y} on PostgreSQL`);
        }
        const da = defaultOf(a, "sqlite");
        const db = defaultOf(b, "postgres");
        if (da !== db) problems.push(`${model.name}.${name}: default ${da} on SQLite vs ${db} on PostgreSQL`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("give every model the same primary key and compound unique fields", () => {
    const shape = (m: Model) => ({ primaryKey: m.primaryKey?.fields ?? null, uniqueFields: m.uniqueFields, uniqueIndexes: m.uniqueIndexes });
    expect(Object.fromEntries(sqlite.models.map((m) => [m.name, shape(m)]))).toEqual(Object.fromEntries(postgres.models.map((m) => [m.name, shape(m)])));
  });

  it("have the same enums with the same values", () => {
    const shape = (dm: Datamodel) => Object.fromEntries(dm.enums.map((e) => [e.name, { dbName: e.dbName ?? null, values: e.values }]));
    expect(shape(sqlite)).toEqual(shape(postgres));
  });

  it("have the same indexes and unique constraints, by name and fields, apart from PostgreSQL's GIN indexes", () => {
    const key = (ix: ReturnType<typeof indexShape>) => `${ix.model} ${ix.type} ${ix.name}`;
    const shapes = (dm: Datamodel) => new Map(dm.indexes.filter((ix) => !isPostgresOnlyGin(ix)).map(indexShape).map((ix) => [key(ix), ix]));
    const a = shapes(sqlite);
    const b = shapes(postgres);
    const problems: string[] = [];
    for (const k of [...new Set([...a.keys(), ...b.keys()])]) {
      const x = a.get(k);
      const y = b.get(k);
      if (!x || !y) problems.push(`${k}: only in the ${x ? "SQLite" : "PostgreSQL"} schema`);
      else if (JSON.stringify(x) !== JSON.stringify(y)) problems.push(`${k}: SQLite ${JSON.stringify(x.fields)} vs PostgreSQL ${JSON.stringify(y.fields)}`);
    }
    expect(problems).toEqual([]);
  });

  it("give each partial index the same WHERE clause", () => {
    expect(Object.fromEntries(indexPredicates("sqlite"))).toEqual(Object.fromEntries(indexPredicates("postgres")));
  });

  it("leave out only Prefect's kinds of GIN index: trgm_ix_<table>_name on name, and GIN on JSON columns", () => {
    const problems: string[] = [];
    for (const ix of postgres.indexes.filter(isPostgresOnlyGin)) {
      const model = postgres.models.find((m) => m.name === ix.model)!;
      const fields = ix.fields.map((f) => ({ ...f, field: model.fields.find((x) => x.name === f.name)! }));
      const trigram =
        ix.dbName === `trgm_ix_${model.dbName ?? model.name}_name` &&
        fields.length === 1 &&
        fields[0]!.name === "name" &&
        fields[0]!.operatorClass === "gin_trgm_ops";
      const json = fields.every((f) => f.field.type === "Json" && !f.operatorClass);
      if (!trigram && !json) {
        problems.push(`${ix.model} ${ix.dbName}: GIN on ${fields.map((f) => `${f.name} (${f.field.type}${f.operatorClass ? ` ${f.operatorClass}` : ""})`).join(", ")}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
