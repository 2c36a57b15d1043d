/**
 * Reads what a database really contains, through its own catalog and a connection of its own (not
 * this package's drivers): SQLite's sqlite_master and pragmas, PostgreSQL's pg_catalog. The result
 * is one neutral shape for both, for comparing with the Prisma schema.
 */
import Database from "better-sqlite3";
import pg from "pg";
import type { DatabaseConfig } from "../../src/index.js";

export interface DbColumn {
  readonly name: string;
  /** SQLite: the declared type as written; PostgreSQL: format_type(), with timestamptz spelled so. */
  readonly type: string;
  readonly nullable: boolean;
  /** The default expression as the catalog shows it, or null. */
  readonly default: string | null;
}

export interface DbIndexColumn {
  /** null for an expression. */
  readonly name: string | null;
  readonly desc: boolean;
  /** PostgreSQL: the operator class, and whether it is the type's default one. */
  readonly opclass?: string;
  readonly defaultOpclass?: boolean;
}

export interface DbIndex {
  readonly name: string;
  readonly unique: boolean;
  readonly partial: boolean;
  /** A partial index's WHERE clause as the database prints it (see `indexBody`); null otherwise. */
  readonly where: string | null;
  readonly columns: readonly DbIndexColumn[];
  /** PostgreSQL access method (btree, gin, ...); "btree" on SQLite. */
  readonly method: string;
  /** What follows `ON <table>` in the index's definition, normalised (see `indexBody`). */
  readonly body: string;
}

export interface DbForeignKey {
  /** PostgreSQL only (SQLite does not report constraint names). */
  readonly name: string | null;
  readonly columns: readonly string[];
  readonly table: string;
  readonly referenced: readonly string[];
  /** Prisma's names: Cascade, SetNull, Restrict, NoAction, SetDefault. */
  readonly onDelete: string;
  readonly onUpdate: string;
}

export interface DbCheck {
  readonly name: string | null;
  /** The condition, normalised (see `normaliseSql`). */
  readonly condition: string;
}

export interface DbTable {
  readonly name: string;
  readonly columns: readonly DbColumn[];
  readonly primaryKey: { readonly name: string | null; readonly columns: readonly string[] };
  readonly indexes: readonly DbIndex[];
  readonly foreignKeys: readonly DbForeignKey[];
  readonly checks: readonly DbCheck[];
  /** Constraints of other kinds (PostgreSQL UNIQUE/EXCLUDE constraints ...), as "kind name". */
  readonly otherConstraints: readonly string[];
}

export interface DbSchema {
  readonly tables: ReadonlyMap<string, DbTable>;
  /** PostgreSQL enum types with their values in order. */
  readonly enums: ReadonlyMap<string, readonly string[]>;
  readonly extensions: readonly string[];
  /** Views, triggers, sequences, functions, other types: "kind name". */
  readonly otherObjects: readonly string[];
}

const REFERENTIAL_ACTIONS: Record<string, string> = {
  CASCADE: "Cascade",
  "SET NULL": "SetNull",
  RESTRICT: "Restrict",
  "NO ACTION": "NoAction",
  "SET DEFAULT": "SetDefault",
  // pg_constraint.confdeltype / confupdtype
  c: "Cascade",
  n: "SetNull",
  r: "Restrict",
  a: "NoAction",
  d: "SetDefault",
};

function action(code: string): string {
  const name = REFERENTIAL_ACTIONS[code];
  if (!name) throw new Error(`unknown referential action ${code}`);
  return name;
}

/** Drops identifier quotes and schema qualification, and evens out whitespace. */
export function normaliseSql(text: string): string {
  return text
    .replace(/"/g, "")
    .replace(/\bpublic\./g, "")
    .replace(/\s+/g, " ")
    .replace(/\(\s+/g, "(")
    .replace(/\s+\)/g, ")")
    .trim();
}

/**
 * The part of a CREATE INDEX statement after `ON <table>`: columns and any WHERE, preceded by
 * `USING <method>` unless the method is btree (the default).
 */
export function indexBody(createIndex: string): string {
  const text = normaliseSql(createIndex);
  const match = /\bON [\w$]+ ?(USING \w+ ?)?(\(.*)$/s.exec(text);
  if (!match?.[2]) throw new Error(`cannot read index definition ${createIndex}`);
  const using = match[1]?.trim();
  return using && using !== "USING btree" ? `${using} ${match[2]}` : match[2];
}

/**
 * A partial index's WHERE clause, normalised so that both databases' prints of one clause read
 * alike: no redundant outer parentheses, no casts (PostgreSQL prints `'SCHEDULED'::state_type`).
 */
export function indexWhere(createIndex: string): string | null {
  const where = / WHERE (.*)$/s.exec(indexBody(createIndex))?.[1];
  return where === undefined ? null : predicate(where);
}

/** A boolean expression as `indexWhere` reads it. */
export function predicate(text: string): string {
  return checkCondition(text.replace(/::(?:timestamp(?:\(\d+\))? with(?:out)? time zone|character varying|double precision|\w+)(?:\[\])?/g, ""));
}

/** Strips `CHECK` and redundant outer parentheses from a check constraint's definition. */
export function checkCondition(definition: string): string {
  let text = normaliseSql(definition).replace(/^CHECK ?/i, "");
  while (text.startsWith("(") && text.endsWith(")") && balanced(text.slice(1, -1))) text = text.slice(1, -1).trim();
  return text;
}

function balanced(text: string): boolean {
  let depth = 0;
  for (const ch of text) {
    if (ch === "(") depth++;
    else if (ch === ")" && --depth < 0) return false;
  }
  return depth === 0;
}

/** `CHECK (...)` clauses of a SQLite CREATE TABLE statement, with their constraint names. */
function sqliteChecks(createTable: string): DbCheck[] {
  const checks: DbCheck[] = [];
  const pattern = /(?:CONSTRAINT\s+("(?:[^"]|"")+"|[\w$]+)\s+)?CHECK\s*\(/gi;
  for (let match = pattern.exec(createTable); match; match = pattern.exec(createTable)) {
    let depth = 1;
    let i = pattern.lastIndex;
    for (; i < createTable.length && depth > 0; i++) {
      if (createTable[i] === "(") depth++;
      else if (createTable[i] === ")") depth--;
    }
    const name = match[1] ? match[1].replace(/^"|"$/g, "").replace(/""/g, '"') : null;
    checks.push({ name, condition: checkCondition(createTable.slice(pattern.lastIndex, i - 1)) });
    pattern.lastIndex = i;
  }
  return checks;
}

export function introspectSqlite(path: string): DbSchema {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const objects = db
      .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { type: string; name: string; tbl_name: string; sql: string | null }[];
    const tables = new Map<string, DbTable>();
    for (const object of objects.filter((o) => o.type === "table")) {
      const name = object.name;
      const info = db.prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid").all(name) as {
        name: string;
        type: string;
        notnull: number;
        dflt_value: string | null;
        pk: number;
      }[];
      const indexList = db.prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?)").all(name) as {
        name: string;
        unique: number;
        origin: string;
        partial: number;
      }[];
      const indexes: DbIndex[] = indexList
        // The implicit index behind a PRIMARY KEY is the primary key itself.
        .filter((ix) => ix.origin !== "pk")
        .map((ix) => {
          const columns = (
            db.prepare("SELECT cid, name, \"desc\", key FROM pragma_index_xinfo(?) ORDER BY seqno").all(ix.name) as {
              cid: number;
              name: string | null;
              desc: number;
              key: number;
            }[]
          )
            .filter((c) => c.key === 1)
            .map((c) => ({ name: c.cid === -2 ? null : c.name, desc: c.desc === 1 }));
          const sql = objects.find((o) => o.type === "index" && o.name === ix.name)?.sql;
          return {
            name: ix.name,
            unique: ix.unique === 1,
            partial: ix.partial === 1,
            where: sql ? indexWhere(sql) : null,
            columns,
            method: "btree",
            // Indexes behind UNIQUE constraints have no statement of their own.
            body: sql ? indexBody(sql) : `(${columns.map((c) => c.name).join(", ")}) [constraint ${ix.origin}]`,
          };
        });
      const fkRows = db.prepare("SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq").all(name) as {
        id: number;
        seq: number;
        table: string;
        from: string;
        to: string;
        on_update: string;
        on_delete: string;
      }[];
      const foreignKeys: DbForeignKey[] = [...new Set(fkRows.map((r) => r.id))].map((id) => {
        const rows = fkRows.filter((r) => r.id === id);
        const first = rows[0]!;
        return {
          name: null,
          columns: rows.map((r) => r.from),
          table: first.table,
          referenced: rows.map((r) => r.to),
          onDelete: action(first.on_delete),
          onUpdate: action(first.on_update),
        };
      });
      tables.set(name, {
        name,
        columns: info.map((c) => ({ name: c.name, type: c.type, nullable: c.notnull === 0, default: c.dflt_value })),
        primaryKey: {
          name: null,
          columns: info
            .filter((c) => c.pk > 0)
            .sort((a, b) => a.pk - b.pk)
            .map((c) => c.name),
        },
        indexes,
        foreignKeys,
        checks: sqliteChecks(object.sql ?? ""),
        otherConstraints: [],
      });
    }
    return {
      tables,
      enums: new Map(),
      extensions: [],
      otherObjects: objects.filter((o) => o.type !== "table" && o.type !== "index").map((o) => `${o.type} ${o.name}`),
    };
  } finally {
    db.close();
  }
}

export async function introspectPostgres(url: string): Promise<DbSchema> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const q = async <R>(text: string, values: unknown[] = []) => (await client.query(text, values)).rows as R[];

    const tableRows = await q<{ oid: number; name: string }>(
      `SELECT c.oid::int AS oid, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
    );
    const columnRows = await q<{ table: string; name: string; type: string; notnull: boolean; default: string | null }>(
      `SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
              pg_get_expr(d.adbin, d.adrelid) AS default
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY c.relname, a.attnum`,
    );
    const constraintRows = await q<{
      table: string;
      name: string;
      type: string;
      columns: string[] | null;
      referenced_table: string | null;
      referenced_columns: string[] | null;
      on_delete: string;
      on_update: string;
      definition: string;
    }>(
      `SELECT c.relname AS table, con.conname AS name, con.contype::text AS type,
              (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num) AS columns,
              rc.relname AS referenced_table,
              (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num) AS referenced_columns,
              con.confdeltype::text AS on_delete, con.confupdtype::text AS on_update,
              pg_get_constraintdef(con.oid) AS definition
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class rc ON rc.oid = con.confrelid
       WHERE n.nspname = current_schema() ORDER BY c.relname, con.conname`,
    );
    const indexRows = await q<{
      table: string;
      name: string;
      unique: boolean;
      primary: boolean;
      partial: boolean;
      method: string;
      definition: string;
      columns: { name: string | null; desc: boolean; opclass: string; default_opclass: boolean }[];
    }>(
      `SELECT c.relname AS table, ic.relname AS name, i.indisunique AS unique, i.indisprimary AS primary,
              i.indpred IS NOT NULL AS partial, am.amname AS method, pg_get_indexdef(i.indexrelid) AS definition,
              (SELECT json_agg(json_build_object(
                        'name', a.attname,
                        'desc', (k.option & 1) = 1,
                        'opclass', opc.opcname,
                        'default_opclass', opc.opcdefault) ORDER BY k.ord)
                 FROM unnest(i.indkey::int2[], i.indoption::int2[], i.indclass::oid[]) WITH ORDINALITY k(num, option, opclass, ord)
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num AND k.num > 0
                 JOIN pg_opclass opc ON opc.oid = k.opclass) AS columns
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = ic.relam
       WHERE n.nspname = current_schema() ORDER BY c.relname, ic.relname`,
    );

    const tables = new Map<string, DbTable>();
    for (const { name } of tableRows) {
      const constraints = constraintRows.filter((c) => c.table === name);
      const pk = constraints.find((c) => c.type === "p");
      tables.set(name, {
        name,
        columns: columnRows
          .filter((c) => c.table === name)
          .map((c) => ({
            name: c.name,
            type: c.type.replace(/^timestamp\((\d+)\) with time zone$/, "timestamptz($1)").replace(/^timestamp with time zone$/, "timestamptz"),
            nullable: !c.notnull,
            default: c.default,
          })),
        primaryKey: { name: pk?.name ?? null, columns: pk?.columns ?? [] },
        indexes: indexRows
          .filter((ix) => ix.table === name && !ix.primary)
          .map((ix) => ({
            name: ix.name,
            unique: ix.unique,
            partial: ix.partial,
            where: indexWhere(ix.definition),
            method: ix.method,
            columns: ix.columns.map((c) => ({ name: c.name, desc: c.desc, opclass: c.opclass, defaultOpclass: c.default_opclass })),
            body: indexBody(ix.definition),
          })),
        foreignKeys: constraints
          .filter((c) => c.type === "f")
          .map((c) => ({
            name: c.name,
            columns: c.columns ?? [],
            table: c.referenced_table ?? "?",
            referenced: c.referenced_columns ?? [],
            onDelete: action(c.on_delete),
            onUpdate: action(c.on_update),
          })),
        checks: constraints.filter((c) => c.type === "c").map((c) => ({ name: c.name, condition: checkCondition(c.definition) })),
        otherConstraints: constraints.filter((c) => !["p", "f", "c"].includes(c.type)).map((c) => `${c.type} ${c.name}`),
      });
    }

    const enumRows = await q<{ name: string; values: string[] }>(
      `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS values
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
       WHERE n.nspname = current_schema() GROUP BY t.typname ORDER BY t.typname`,
    );
    const extensions = (await q<{ name: string }>(`SELECT extname AS name FROM pg_extension ORDER BY extname`)).map((r) => r.name);
    // Everything else in the schema that no extension owns: views, sequences, functions, triggers, other types.
    const otherObjects = (
      await q<{ object: string }>(
        `SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END
                  || ' ' || c.relname AS object
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = current_schema() AND c.relkind IN ('v', 'm', 'S', 'f')
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         UNION ALL
         SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = current_schema()
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
         UNION ALL
         SELECT 'trigger ' || t.tgname || ' on ' || c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal
         UNION ALL
         SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE n.nspname = current_schema()
            AND (t.typtype IN ('d', 'r', 'm') OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c')))
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
         ORDER BY 1`,
      )
    ).map((r) => r.object);

    return { tables, enums: new Map(enumRows.map((r) => [r.name, r.values])), extensions, otherObjects };
  } finally {
    await client.end();
  }
}

/**
 * The plan each database makes for a statement of one parameter (`?`), as the server sends it: a
 * prepared statement whose plan does not depend on the value (PostgreSQL: a generic plan, with
 * sequential scans discouraged so that an empty table does not hide which indexes can serve it).
 */
export async function planOf(config: DatabaseConfig, text: string): Promise<string> {
  if (config.backend === "sqlite") {
    const db = new Database(config.path, { readonly: true });
    try {
      return (db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(null) as { detail: string }[]).map((row) => row.detail).join("\n");
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: config.url });
  await client.connect();
  try {
    await client.query("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off");
    await client.query(`PREPARE planned AS ${text.replace("?", "$1")}`);
    const rows = (await client.query("EXPLAIN EXECUTE planned(NULL)")).rows as { "QUERY PLAN": string }[];
    return rows.map((row) => row["QUERY PLAN"]).join("\n");
  } finally {
    await client.end();
  }
}

