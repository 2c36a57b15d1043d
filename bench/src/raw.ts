/**
 * The raw drivers (better-sqlite3, node-postgres) on a bench database, for what the bench reads
 * (counts, template rows) and for the floors that write "the same rows" as the server: rows copied
 * from ones the server itself stored, with new ids, so the floors write exactly the columns, values
 * and indexes the server does without a hand-written column list to keep in step with the schema.
 *
 * A unit of work (a run with its first state, a batch of logs, a batch of events with their
 * resources) is one transaction: on SQLite `BEGIN IMMEDIATE` with foreign keys checked at commit, on
 * PostgreSQL one statement (inserts chained in a CTE), so one round trip.
 */
import Database from "better-sqlite3";
import pg from "pg";

export type Row = Record<string, unknown>;

/** Rows to insert into one table, all with the same columns. */
export interface Insert {
  readonly table: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly unknown[])[];
}

export interface RawDatabase {
  readonly backend: "sqlite" | "postgres";
  /** Reads rows; `?` marks parameters. On PostgreSQL every value comes back as text (insertable as is). */
  rows(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** The first column of the first row as a number. */
  count(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Inserts everything in one transaction. */
  insert(inserts: readonly Insert[]): Promise<void>;
  /** Most units of work worth running at once (1 on SQLite, which has one writer). */
  readonly concurrency: number;
  close(): Promise<void>;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function valuesList(insert: Insert, mark: (i: number) => string, offset: number): string {
  let n = offset;
  return insert.rows.map((row) => `(${row.map(() => mark(++n)).join(", ")})`).join(", ");
}

const shapeKey = (inserts: readonly Insert[]) => inserts.map((i) => `${i.table}:${i.columns.join(",")}:${i.rows.length}`).join("|");

export function openSqliteRaw(path: string): RawDatabase {
  const db = new Database(path, { timeout: 10_000 });
  db.pragma("journal_mode = WAL");
  db.pragma("foreign_keys = ON");
  db.pragma("synchronous = NORMAL");
  const statements = new Map<string, Database.Statement[]>();
  const run = db.transaction((inserts: readonly Insert[]) => {
    const key = shapeKey(inserts);
    let prepared = statements.get(key);
    if (!prepared) {
      prepared = inserts.map((i) => db.prepare(`INSERT INTO ${quote(i.table)} (${i.columns.map(quote).join(", ")}) VALUES ${valuesList(i, () => "?", 0)}`));
      statements.set(key, prepared);
    }
    // A run and its state point at each other: check foreign keys at commit. (Not a statement
    // prepared once: such a pragma statement stops taking effect once another process wrote.)
    db.pragma("defer_foreign_keys = ON");
    for (const [i, insert] of inserts.entries()) prepared[i]!.run(insert.rows.flat());
  });
  return {
    backend: "sqlite",
    concurrency: 1,
    async rows(sql, params = []) {
      return db.prepare(sql).all(...params) as Row[];
    },
    async count(sql, params = []) {
      return Number(db.prepare(sql).pluck().get(...params));
    },
    async insert(inserts) {
      run.immediate(inserts);
    },
    async close() {
      db.close();
    },
  };
}

/** Every column as the text PostgreSQL sends, which it also accepts back for the column's type. */
const asText = { getTypeParser: () => (value: string) => value };

export function openPostgresRaw(url: string, poolSize = 10): RawDatabase {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // `end()` resolves before PostgreSQL has seen every connection go: one it then ends (the scratch
  // database being dropped) errs while idle, which fails nothing.
  pool.on("error", () => undefined);
  const statements = new Map<string, { name: string; text: string }>();
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  return {
    backend: "postgres",
    concurrency: poolSize,
    async rows(sql, params = []) {
      const result = await pool.query({ text: numbered(sql), values: [...params], types: asText });
      return result.rows as Row[];
    },
    async count(sql, params = []) {
      const result = await pool.query({ text: numbered(sql), values: [...params], rowMode: "array" });
      return Number((result.rows[0] as unknown[])[0]);
    },
    async insert(inserts) {
      const key = shapeKey(inserts);
      let statement = statements.get(key);
      if (!statement) {
        statement = { name: `bench_insert_${statements.size}`, text: chainedInserts(inserts) };
        statements.set(key, statement);
      }
      await pool.query({ ...statement, values: inserts.flatMap((i) => i.rows.flat()) });
    },
    async close() {
      await pool.end();
    },
  };
}

/** One statement: the inserts before the last chained as CTEs (PostgreSQL runs them all, atomically). */
function chainedInserts(inserts: readonly Insert[]): string {
  let offset = 0;
  const parts = inserts.map((i) => {
    const sql = `INSERT INTO ${quote(i.table)} (${i.columns.map(quote).join(", ")}) VALUES ${valuesList(i, (n) => `$${n}`, offset)}`;
    offset += i.rows.length * i.columns.length;
    return sql;
  });
  const last = parts.pop()!;
  return parts.length > 0 ? `WITH ${parts.map((p, i) => `w${i} AS (${p})`).join(", ")} ${last}` : last;
}

/** Copies of a template row: `change` returns the columns that differ in each copy. */
export function copies(template: Row, count: number, change: (index: number) => Row): unknown[][] {
  const columns = Object.keys(template);
  return Array.from({ length: count }, (_, i) => {
    const changed = change(i);
    return columns.map((c) => (c in changed ? changed[c] : template[c]));
  });
}
