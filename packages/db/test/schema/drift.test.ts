/**
 * The migrations build exactly what the Prisma schema describes. An empty database is migrated by
 * our own migrator (openDatabase), read back through its catalog on a connection of its own, and
 * compared with schema.prisma as Prisma reads it: tables, columns, types, nullability, defaults,
 * primary keys, indexes, foreign keys and enums. What the database has beyond what a Prisma schema
 * can say is listed in BEYOND_PRISMA below, with the reason; anything else, extra or missing, fails.
 *
 * SQLite is compared through a file database: a second connection cannot see an in-memory one, and
 * the in-memory variant runs the very same migrations.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DatabaseConfig, openDatabase } from "../../src/index.js";
import { selectedBackends, type TestBackend } from "../../src/testing/backends.js";
import { freshConfig } from "../../src/testing/database.js";
import { type DbSchema, type DbTable, introspectPostgres, introspectSqlite, planOf, predicate } from "./introspect.js";
import {
  columnFields,
  columnOf,
  type Datamodel,
  type Field,
  indexPredicates,
  loadDatamodel,
  type Model,
  modelByName,
  type Provider,
  readMigrations,
  tableOf,
} from "./prisma.js";

interface BeyondPrisma {
  readonly kind: "table" | "index" | "check" | "extension";
  readonly name: string;
  readonly table?: string;
  readonly backends: readonly Provider[];
  readonly reason: string;
  /** Index: what follows `ON <table>`; check: the condition (both normalised as in introspect.ts). */
  readonly definition?: Readonly<Partial<Record<Provider, string>>>;
}

/** Everything the database may (and must) have that the Prisma schema cannot express. */
const BEYOND_PRISMA: readonly BeyondPrisma[] = [
  {
    kind: "table",
    name: "_prisma_migrations",
    backends: ["sqlite", "postgres"],
    reason: "Prisma Migrate's history table, which our migrator keeps as `prisma migrate deploy` does",
  },
  {
    kind: "index",
    table: "flow_run",
    name: "ix_flow_run__coalesce_start_time_expected_start_time_desc",
    backends: ["sqlite", "postgres"],
    reason: "expression index (COALESCE(start_time, expected_start_time), Prefect's start-time sort); Prisma indexes columns only",
    definition: {
      sqlite: "(COALESCE(start_time, expected_start_time) DESC)",
      postgres: "(COALESCE(start_time, expected_start_time) DESC)",
    },
  },
  {
    kind: "check",
    table: "block_document_reference",
    name: "ck_block_document_reference__no_self_reference",
    backends: ["sqlite", "postgres"],
    reason: "Prefect's CHECK that a block document does not reference itself; a Prisma schema cannot declare CHECK constraints",
    definition: {
      sqlite: "parent_block_document_id <> reference_block_document_id",
      postgres: "parent_block_document_id <> reference_block_document_id",
    },
  },
  {
    kind: "extension",
    name: "pg_trgm",
    backends: ["postgres"],
    reason: "the trigram GIN indexes (gin_trgm_ops) need it; a schema declares extensions only with the postgresqlExtensions preview feature",
  },
  { kind: "extension", name: "plpgsql", backends: ["postgres"], reason: "installed in every PostgreSQL database" },
];

const MIGRATION_SECTION = "-- Indexes the Prisma schema cannot express";

/**
 * Index names created under the MIGRATION_SECTION comment of the provider's migrations, less those a
 * later migration drops.
 */
function indexesOutsidePrisma(provider: Provider): string[] {
  let names: string[] = [];
  for (const migration of readMigrations(provider)) {
    const lines = migration.sql.split("\n");
    const dropped = new Set(lines.map((line) => /^DROP INDEX (?:IF EXISTS )?"([^"]+)"/.exec(line)?.[1]).filter((name) => name !== undefined));
    names = names.filter((name) => !dropped.has(name));
    const start = lines.findIndex((line) => line.startsWith(MIGRATION_SECTION));
    if (start < 0) continue;
    for (const line of lines.slice(start + 1)) {
      const match = /^CREATE (?:UNIQUE )?INDEX "([^"]+)"/.exec(line);
      if (!match) break;
      names.push(match[1]!);
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// What each backend makes of a Prisma field
// ---------------------------------------------------------------------------------------------

const SQLITE_TYPES: Record<string, string> = {
  String: "TEXT",
  Int: "INTEGER",
  BigInt: "BIGINT",
  Float: "REAL",
  Decimal: "DECIMAL",
  Boolean: "BOOLEAN",
  DateTime: "DATETIME",
  Json: "JSONB",
  Bytes: "BLOB",
};

/** PostgreSQL type (as format_type spells it, timestamptz shortened) for a scalar and its @db attribute. */
function postgresType(field: Field): string | undefined {
  const [native, args = []] = (field.nativeType ?? [null, []]) as [string | null, string[]];
  const precision = (fallback: string) => args[0] ?? fallback;
  switch (`${field.type}:${native ?? ""}`) {
    case "String:":
    case "String:Text":
      return "text";
    case "String:Uuid":
      return "uuid";
    case "String:VarChar":
      return args[0] ? `character varying(${args[0]})` : "character varying";
    case "Int:":
    case "Int:Integer":
      return "integer";
    case "Int:SmallInt":
      return "smallint";
    case "BigInt:":
    case "BigInt:BigInt":
      return "bigint";
    case "Float:":
    case "Float:DoublePrecision":
      return "double precision";
    case "Float:Real":
      return "real";
    case "Boolean:":
      return "boolean";
    case "DateTime:":
      return "timestamp(3) without time zone";
    case "DateTime:Timestamp":
      return `timestamp(${precision("3")}) without time zone`;
    case "DateTime:Timestamptz":
      return `timestamptz(${precision("3")})`;
    case "Json:":
    case "Json:JsonB":
      return "jsonb";
    case "Json:Json":
      return "json";
    default:
      return undefined;
  }
}

function enumOf(dm: Datamodel, field: Field) {
  const e = dm.enums.find((x) => x.name === field.type);
  if (!e) throw new Error(`no enum ${field.type}`);
  return e;
}

function expectedType(provider: Provider, dm: Datamodel, field: Field): string {
  if (field.kind === "enum") return provider === "sqlite" ? "TEXT" : (enumOf(dm, field).dbName ?? field.type);
  const type = provider === "sqlite" ? SQLITE_TYPES[field.type] : postgresType(field);
  return type ?? `<no mapping for ${field.type}${field.nativeType ? ` @db.${field.nativeType[0]}` : ""} on ${provider}>`;
}

/**
 * What the catalog shows as the column default for a field's @default. now() is stored on SQLite as
 * our canonical timestamp text (src/timestamps.ts) rather than Prisma's CURRENT_TIMESTAMP ("YYYY-MM-DD
 * HH:MM:SS", which would not sort with the timestamps we write); uuid() is made by the client, never
 * by the database.
 */
function expectedDefault(provider: Provider, dm: Datamodel, field: Field): string | null {
  const value = field.default as unknown;
  if (value === undefined || value === null) return null;
  if (typeof value === "object" && "name" in value) {
    const fn = value as { name: string; args: unknown[] };
    switch (fn.name) {
      case "now":
        return provider === "sqlite" ? "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')" : "CURRENT_TIMESTAMP";
      case "uuid":
      case "cuid":
      case "nanoid":
      case "ulid":
        return null;
      case "dbgenerated":
        return String(fn.args[0]);
      default:
        return `<unsupported default ${fn.name}()>`;
    }
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") {
    const literal = `'${value.replace(/'/g, "''")}'`;
    if (provider === "sqlite") return literal;
    const cast = field.kind === "enum" ? (enumOf(dm, field).dbName ?? field.type) : field.type === "Json" ? "jsonb" : "text";
    return `${literal}::${cast}`;
  }
  return `<unsupported default ${JSON.stringify(value)}>`;
}

const ALGORITHMS: Record<string, string> = { BTree: "btree", Hash: "hash", Gin: "gin", Gist: "gist", SpGist: "spgist", Brin: "brin" };

interface ExpectedIndex {
  readonly name: string;
  readonly unique: boolean;
  readonly columns: readonly { name: string; desc: boolean; opclass?: string | undefined }[];
  readonly method: string;
  /** A partial index's WHERE clause (see `predicate`); null otherwise. */
  readonly where: string | null;
}

function expectedIndexes(dm: Datamodel, model: Model, predicates: ReadonlyMap<string, string>): ExpectedIndex[] {
  const table = tableOf(model);
  const column = (name: string) => columnOf(model.fields.find((f) => f.name === name) ?? ({ name } as Field));
  return dm.indexes
    .filter((ix) => ix.model === model.name && (ix.type === "normal" || ix.type === "unique"))
    .map((ix) => {
      const columns = ix.fields.map((f) => ({ name: column(f.name), desc: f.sortOrder === "desc", opclass: f.operatorClass ?? undefined }));
      const suffix = ix.type === "unique" ? "key" : "idx";
      const name = ix.dbName ?? `${table}_${columns.map((c) => c.name).join("_")}_${suffix}`;
      const where = predicates.get(name);
      return {
        name,
        unique: ix.type === "unique",
        columns,
        method: ALGORITHMS[ix.algorithm ?? "BTree"] ?? String(ix.algorithm),
        where: where === undefined ? null : predicate(where),
      };
    });
}

interface ExpectedForeignKey {
  readonly field: string;
  readonly columns: readonly string[];
  readonly table: string;
  readonly referenced: readonly string[];
  readonly onDelete: string;
  readonly onUpdate: string;
}

function expectedForeignKeys(dm: Datamodel, model: Model): ExpectedForeignKey[] {
  return model.fields
    .filter((f) => f.kind === "object" && (f.relationFromFields?.length ?? 0) > 0)
    .map((f) => {
      const target = modelByName(dm, f.type);
      const from = (f.relationFromFields ?? []).map((name) => model.fields.find((x) => x.name === name)!);
      const relation = f as Field & { relationOnDelete?: string; relationOnUpdate?: string };
      return {
        field: f.name,
        columns: from.map(columnOf),
        table: tableOf(target),
        referenced: (f.relationToFields ?? []).map((name) => columnOf(target.fields.find((x) => x.name === name)!)),
        // Prisma's defaults: SetNull for optional relations, Restrict for required ones; Cascade on update.
        onDelete: relation.relationOnDelete ?? (from.every((x) => !x.isRequired) ? "SetNull" : "Restrict"),
        onUpdate: relation.relationOnUpdate ?? "Cascade",
      };
    });
}

const allowed = (provider: Provider, kind: BeyondPrisma["kind"], table?: string) =>
  BEYOND_PRISMA.filter((x) => x.kind === kind && x.backends.includes(provider) && (table === undefined || x.table === table));

// ---------------------------------------------------------------------------------------------

const targets = [...new Set(selectedBackends().map((b): TestBackend => (b === "postgres" ? "postgres" : "sqlite-file")))];

for (const backend of targets) {
  const provider: Provider = backend === "postgres" ? "postgres" : "sqlite";

  describe(`the migrated database matches schema.prisma [${backend}]`, () => {
    let db: DbSchema;
    let dm: Datamodel;
    let applied: string[];
    let remove: (() => Promise<void>) | undefined;
    let config: DatabaseConfig;

    beforeAll(async () => {
      dm = await loadDatamodel(provider);
      const fresh = await freshConfig(backend, { empty: true });
      remove = fresh.remove;
      config = fresh.config;
      const database = await openDatabase(config);
      try {
        applied = (await database.migrationStatus()).applied.map((m) => m.name);
      } finally {
        await database.close();
      }
      db = config.backend === "sqlite" ? introspectSqlite(config.path) : await introspectPostgres(config.url);
    });

    afterAll(async () => {
      await remove?.();
    });

    /** Each model with its table, or a problem when the table is missing. */
    const modelsWithTables = (problems: string[]) =>
      dm.models.flatMap((model) => {
        const table = db.tables.get(tableOf(model));
        if (!table) {
          problems.push(`model ${model.name}: table ${tableOf(model)} is missing`);
          return [];
        }
        return [{ model, table }];
      });

    it("applies every migration of the folder to an empty database", () => {
      expect(applied).toEqual(readMigrations(provider).map((m) => m.name));
    });

    it("has a table for every model and no table that is not a model or allow-listed", () => {
      const expected = new Map(dm.models.map((m) => [tableOf(m), `model ${m.name}`]));
      for (const extra of allowed(provider, "table")) expected.set(extra.name, `allow-listed: ${extra.reason}`);
      const problems = [
        ...[...expected].filter(([name]) => !db.tables.has(name)).map(([name, why]) => `table ${name} is missing (${why})`),
        ...[...db.tables.keys()].filter((name) => !expected.has(name)).map((name) => `table ${name} is in the database but in no model and not allow-listed`),
      ];
      expect(problems).toEqual([]);
    });

    it("gives every table exactly its model's columns", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        const expected = columnFields(model).map(columnOf);
        const actual = table.columns.map((c) => c.name);
        for (const name of expected.filter((c) => !actual.includes(c))) problems.push(`${table.name}.${name}: column is missing (field ${model.name}.${name})`);
        for (const name of actual.filter((c) => !expected.includes(c))) problems.push(`${table.name}.${name}: column is not in model ${model.name}`);
      }
      expect(problems).toEqual([]);
    });

    it("gives every column the type its field maps to", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        for (const field of columnFields(model)) {
          const column = table.columns.find((c) => c.name === columnOf(field));
          if (!column) continue;
          const expected = expectedType(provider, dm, field);
          if (column.type !== expected) {
            problems.push(`${table.name}.${column.name}: type is ${column.type}, but ${model.name}.${field.name} (${field.type}${field.nativeType ? ` @db.${field.nativeType[0]}` : ""}) maps to ${expected}`);
          }
        }
      }
      expect(problems).toEqual([]);
    });

    it("makes exactly the optional fields nullable", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        for (const field of columnFields(model)) {
          const column = table.columns.find((c) => c.name === columnOf(field));
          if (column && column.nullable === field.isRequired) {
            problems.push(`${table.name}.${column.name}: is ${column.nullable ? "NULL" : "NOT NULL"}, but ${model.name}.${field.name} is ${field.isRequired ? "required" : "optional"}`);
          }
        }
      }
      expect(problems).toEqual([]);
    });

    it("gives every column the default of its field's @default, and no other", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        for (const field of columnFields(model)) {
          const column = table.columns.find((c) => c.name === columnOf(field));
          if (!column) continue;
          const expected = expectedDefault(provider, dm, field);
          if (column.default !== expected) {
            problems.push(`${table.name}.${column.name}: default is ${column.default ?? "none"}, but ${model.name}.${field.name}'s @default means ${expected ?? "none"}`);
          }
        }
      }
      expect(problems).toEqual([]);
    });

    it("gives every table its model's primary key", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        const id = dm.indexes.find((ix) => ix.model === model.name && ix.type === "id");
        const fields = id?.fields.map((f) => f.name) ?? model.fields.filter((f) => f.isId).map((f) => f.name);
        const expected = fields.map((name) => columnOf(model.fields.find((f) => f.name === name)!));
        if (JSON.stringify(table.primaryKey.columns) !== JSON.stringify(expected)) {
          problems.push(`${table.name}: primary key is (${table.primaryKey.columns.join(", ")}), but model ${model.name}'s @id is (${expected.join(", ")})`);
        }
        // SQLite cannot name a primary key; PostgreSQL names it after @id(map: ...) or Prisma's <table>_pkey.
        const expectedName = provider === "postgres" ? (id?.dbName ?? `${table.name}_pkey`) : null;
        if (table.primaryKey.name !== expectedName) {
          problems.push(`${table.name}: primary key is named ${table.primaryKey.name}, but the schema names it ${expectedName}`);
        }
      }
      expect(problems).toEqual([]);
    });

    it("has every @@index and @@unique by name, with its columns, sort order and kind, and no other index", () => {
      const problems: string[] = [];
      const predicates = indexPredicates(provider);
      for (const { model, table } of modelsWithTables(problems)) {
        const expected = expectedIndexes(dm, model, predicates);
        const extras = allowed(provider, "index", table.name).map((x) => x.name);
        for (const want of expected) {
          const ix = table.indexes.find((i) => i.name === want.name);
          const where = `${table.name}: index ${want.name}`;
          if (!ix) {
            problems.push(`${where} is missing (model ${model.name})`);
            continue;
          }
          const describe = (cols: readonly { name: string | null; desc: boolean; opclass?: string | undefined }[], withOpclass: boolean) =>
            cols.map((c) => `${c.name ?? "<expression>"}${c.desc ? " DESC" : ""}${withOpclass && c.opclass ? ` ${c.opclass}` : ""}`).join(", ");
          const wantColumns = describe(want.columns, false);
          const haveColumns = describe(ix.columns, false);
          if (haveColumns !== wantColumns) problems.push(`${where}: columns are (${haveColumns}), the schema says (${wantColumns})`);
          if (ix.unique !== want.unique) problems.push(`${where}: is ${ix.unique ? "" : "not "}unique, the schema says it is ${want.unique ? "" : "not "}unique`);
          if (ix.where !== want.where) {
            problems.push(`${where}: ${ix.where === null ? "has no WHERE clause" : `has WHERE ${ix.where}`}, the schema says ${want.where === null ? "none" : `WHERE ${want.where}`}`);
          }
          if (ix.partial !== (ix.where !== null)) problems.push(`${where}: is ${ix.partial ? "" : "not "}partial, but its definition reads otherwise`);
          if (ix.method !== want.method) problems.push(`${where}: uses ${ix.method}, the schema says ${want.method}`);
          if (provider === "postgres") {
            want.columns.forEach((c, i) => {
              const have = ix.columns[i];
              if (!have) return;
              if (c.opclass ? have.opclass !== c.opclass : !have.defaultOpclass) {
                problems.push(`${where}: column ${c.name} uses operator class ${have.opclass}, the schema says ${c.opclass ?? "the default one"}`);
              }
            });
          }
        }
        for (const ix of table.indexes) {
          if (!expected.some((e) => e.name === ix.name) && !extras.includes(ix.name)) {
            problems.push(`${table.name}: index ${ix.name} ${ix.body} is not in model ${model.name} and not allow-listed`);
          }
        }
      }
      expect(problems).toEqual([]);
    });

    it("reads each `<column> IS NOT NULL` partial index for a comparison of its column with a value", async () => {
      const problems: string[] = [];
      const partial = [...indexPredicates(provider)].flatMap(([name, where]) => {
        const column = /^(\w+) IS NOT NULL$/.exec(where)?.[1];
        const table = [...db.tables.values()].find((t) => t.indexes.some((ix) => ix.name === name));
        return column && table ? [{ name, column, table: table.name }] : [];
      });
      expect(partial.length).toBeGreaterThan(0);
      for (const { name, column, table } of partial) {
        const plan = await planOf(config, `SELECT id FROM ${table} WHERE ${column} = ?`);
        if (!plan.includes(name)) problems.push(`${table}.${column} = ? does not read ${name}:\n${plan}`);
      }
      expect(problems).toEqual([]);
    });

    it("has a foreign key for every relation, with its columns, referenced table and rules, and no other", () => {
      const problems: string[] = [];
      for (const { model, table } of modelsWithTables(problems)) {
        const expected = expectedForeignKeys(dm, model);
        const unmatched = [...table.foreignKeys];
        for (const want of expected) {
          const where = `${table.name}: foreign key (${want.columns.join(", ")}) of ${model.name}.${want.field}`;
          const index = unmatched.findIndex((fk) => JSON.stringify(fk.columns) === JSON.stringify(want.columns));
          if (index < 0) {
            problems.push(`${where} is missing`);
            continue;
          }
          const fk = unmatched.splice(index, 1)[0]!;
          const have = `${fk.table}(${fk.referenced.join(", ")})`;
          const wanted = `${want.table}(${want.referenced.join(", ")})`;
          if (have !== wanted) problems.push(`${where} references ${have}, the schema says ${wanted}`);
          if (fk.onDelete !== want.onDelete) problems.push(`${where}: ON DELETE is ${fk.onDelete}, the schema says ${want.onDelete}`);
          if (fk.onUpdate !== want.onUpdate) problems.push(`${where}: ON UPDATE is ${fk.onUpdate}, the schema says ${want.onUpdate}`);
        }
        for (const fk of unmatched) {
          problems.push(`${table.name}: foreign key ${fk.name ?? ""}(${fk.columns.join(", ")}) -> ${fk.table} is not a relation of model ${model.name}`);
        }
      }
      expect(problems).toEqual([]);
    });

    if (provider === "postgres") {
      it("has every enum as a type with the schema's values in order, and no other enum type", () => {
        const expected = new Map(dm.enums.map((e) => [e.dbName ?? e.name, e.values.map((v) => v.dbName ?? v.name)]));
        const problems = [
          ...[...expected].flatMap(([name, values]) => {
            const have = db.enums.get(name);
            if (!have) return [`enum type ${name} is missing`];
            return JSON.stringify(have) === JSON.stringify(values) ? [] : [`enum type ${name} has (${have.join(", ")}), the schema says (${values.join(", ")})`];
          }),
          ...[...db.enums.keys()].filter((name) => !expected.has(name)).map((name) => `enum type ${name} is not in the schema`),
        ];
        expect(problems).toEqual([]);
      });
    }

    it("has exactly the allow-listed objects the schema cannot express, each as declared", () => {
      const problems: string[] = [];
      // Partial indexes were created under the section before the schema could declare them.
      const declared = new Set(dm.indexes.map((ix) => ix.dbName));
      const inMigrations = indexesOutsidePrisma(provider).filter((name) => !declared.has(name));
      const listed = allowed(provider, "index").map((x) => x.name);
      for (const name of inMigrations.filter((n) => !listed.includes(n))) problems.push(`index ${name} is created under "${MIGRATION_SECTION}" but not allow-listed here`);
      for (const name of listed.filter((n) => !inMigrations.includes(n))) problems.push(`allow-listed index ${name} is not created under "${MIGRATION_SECTION}" in the migrations`);

      for (const extra of allowed(provider, "index")) {
        const ix = db.tables.get(extra.table!)?.indexes.find((i) => i.name === extra.name);
        if (!ix) problems.push(`${extra.table}: allow-listed index ${extra.name} is missing`);
        else if (ix.body !== extra.definition?.[provider]) problems.push(`${extra.table}: index ${extra.name} is ${ix.body}, expected ${extra.definition?.[provider]}`);
      }

      const checks = [...db.tables.values()].flatMap((t: DbTable) => t.checks.map((c) => ({ table: t.name, ...c })));
      for (const extra of allowed(provider, "check")) {
        const check = checks.find((c) => c.table === extra.table && c.name === extra.name);
        if (!check) problems.push(`${extra.table}: allow-listed CHECK ${extra.name} is missing`);
        else if (check.condition !== extra.definition?.[provider]) problems.push(`${extra.table}: CHECK ${extra.name} is (${check.condition}), expected (${extra.definition?.[provider]})`);
      }
      for (const check of checks.filter((c) => !allowed(provider, "check", c.table).some((x) => x.name === c.name))) {
        problems.push(`${check.table}: CHECK ${check.name ?? "(unnamed)"} (${check.condition}) is not allow-listed`);
      }

      const extensions = allowed(provider, "extension").map((x) => x.name);
      for (const name of extensions.filter((n) => !db.extensions.includes(n))) problems.push(`extension ${name} is missing`);
      for (const name of db.extensions.filter((n) => !extensions.includes(n))) problems.push(`extension ${name} is not allow-listed`);

      for (const table of db.tables.values()) for (const c of table.otherConstraints) problems.push(`${table.name}: constraint ${c} is not allow-listed`);
      for (const object of db.otherObjects) problems.push(`${object} is not allow-listed`);
      expect(problems).toEqual([]);
    });
  });
}
