/**
 * What the schema tests need from Prisma: the two schema files as Prisma reads them (DMMF, from the
 * WebAssembly build of Prisma's schema parser: offline), the migrations folders, and Prisma's own
 * migration engine (WebAssembly) driven through a driver adapter.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import {
  bindMigrationAwareSqlAdapterFactory,
  ColumnTypeEnum,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
  type SqlQuery,
  type SqlResultSet,
  type Transaction,
} from "@prisma/driver-adapter-utils";
import prismaInternals from "@prisma/internals";
import * as engineWasm from "@prisma/schema-engine-wasm/schema_engine_bg";
import pg from "pg";

export type Provider = "sqlite" | "postgres";
export const PROVIDERS: readonly Provider[] = ["sqlite", "postgres"];

/** The workspace's prisma/ folder (schemas and migrations). */
export const PRISMA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../prisma");

export const schemaPath = (provider: Provider) => join(PRISMA_DIR, provider, "schema.prisma");
export const migrationsDir = (provider: Provider) => join(PRISMA_DIR, provider, "migrations");
export const readSchema = (provider: Provider) => readFileSync(schemaPath(provider), "utf8");

// ---------------------------------------------------------------------------------------------
// The schema as Prisma reads it
// ---------------------------------------------------------------------------------------------

type Dmmf = Awaited<ReturnType<typeof prismaInternals.getDMMF>>;
export type Datamodel = Dmmf["datamodel"];
export type Model = Datamodel["models"][number];
export type Field = Model["fields"][number];
export type Index = Datamodel["indexes"][number];
export type Enum = Datamodel["enums"][number];

const datamodels = new Map<Provider, Promise<Datamodel>>();

/** The provider's schema.prisma as Prisma's own parser reads it. */
export function loadDatamodel(provider: Provider): Promise<Datamodel> {
  let loaded = datamodels.get(provider);
  if (!loaded) {
    loaded = prismaInternals.getDMMF({ datamodel: readSchema(provider) }).then((dmmf) => dmmf.datamodel);
    datamodels.set(provider, loaded);
  }
  return loaded;
}

/**
 * The WHERE clause of each partial index, by its database name, as the schema declares it
 * (`where: raw("...")`, the partialIndexes preview feature). Prisma's DMMF leaves the clause out, so
 * it is read from the schema's text.
 */
export function indexPredicates(provider: Provider): Map<string, string> {
  const predicates = new Map<string, string>();
  for (const line of readSchema(provider).split("\n")) {
    const where = /\bwhere: raw\("((?:[^"\\]|\\.)*)"\)/.exec(line);
    if (!where) continue;
    const name = /\bmap: "([^"]+)"/.exec(line);
    if (!name) throw new Error(`a partial index without a map name: ${line.trim()}`);
    predicates.set(name[1]!, where[1]!.replace(/\\(.)/g, "$1"));
  }
  return predicates;
}

/** The table a model maps to. */
export const tableOf = (model: Model): string => model.dbName ?? model.name;
/** The column a scalar field maps to. */
export const columnOf = (field: Field): string => (field as Field & { dbName?: string | null }).dbName ?? field.name;
/** Fields that are columns (scalars and enums), in declaration order. */
export const columnFields = (model: Model): Field[] => model.fields.filter((f) => f.kind === "scalar" || f.kind === "enum");

export function modelByName(dm: Datamodel, name: string): Model {
  const model = dm.models.find((m) => m.name === name);
  if (!model) throw new Error(`no model ${name}`);
  return model;
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------

export interface MigrationFolder {
  readonly name: string;
  readonly sql: string;
}

export function readMigrations(provider: Provider): MigrationFolder[] {
  const dir = migrationsDir(provider);
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(dir, name, "migration.sql"), "utf8") }));
}

/** The migrations folder in the form Prisma's migration engine takes it (as `prisma migrate` reads it from disk). */
export function migrationsList(provider: Provider): engineWasm.MigrationList {
  const dir = migrationsDir(provider);
  return {
    baseDir: dir,
    lockfile: { path: "migration_lock.toml", content: readFileSync(join(dir, "migration_lock.toml"), "utf8") },
    shadowDbInitScript: "",
    migrationDirectories: readMigrations(provider).map((m) => ({
      path: m.name,
      migrationFile: { path: "migration.sql", content: { tag: "ok", value: m.sql } },
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Prisma's migration engine (WebAssembly), through a driver adapter
// ---------------------------------------------------------------------------------------------

/** Node's WebAssembly global (this package's TypeScript settings include no DOM typings). */
const WebAssemblyApi = (
  globalThis as unknown as {
    WebAssembly: { instantiate(bytes: Uint8Array, imports: Record<string, unknown>): Promise<{ instance: { exports: Record<string, unknown> } }> };
  }
).WebAssembly;

let lastPanic: string | undefined;
let engineModule: Promise<typeof engineWasm.SchemaEngine> | undefined;

/** Instantiates the WebAssembly schema engine once per process. */
function schemaEngineClass(): Promise<typeof engineWasm.SchemaEngine> {
  engineModule ??= (async () => {
    // The engine reports Rust panics through this global before it traps.
    (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: unknown }).PRISMA_WASM_PANIC_REGISTRY ??= {
      set_message(message: string) {
        lastPanic = message;
      },
    };
    const bgFile = createRequire(import.meta.url).resolve("@prisma/schema-engine-wasm/schema_engine_bg");
    const { instance } = await WebAssemblyApi.instantiate(readFileSync(join(dirname(bgFile), "schema_engine_bg.wasm")), {
      "./schema_engine_bg.js": engineWasm,
    });
    engineWasm.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return engineWasm.SchemaEngine;
  })();
  return engineModule;
}

/** Re-throws an engine error with the panic message, if the engine panicked. */
export async function engineCall<T>(call: () => Promise<T>): Promise<T> {
  lastPanic = undefined;
  try {
    return await call();
  } catch (error) {
    if (lastPanic) throw new Error(`Prisma's schema engine panicked: ${lastPanic}`, { cause: error });
    throw error;
  }
}

export const NO_FILTER: engineWasm.SchemaFilter = { externalTables: [], externalEnums: [] };

export interface EngineHandle {
  readonly engine: engineWasm.SchemaEngine;
  close(): Promise<void>;
}

/**
 * Prisma's migration engine for `provider`, working on the database at `target` (a SQLite file
 * path or a PostgreSQL URL) with the provider's schema.prisma as its datamodel.
 */
export async function openSchemaEngine(provider: Provider, target: string): Promise<EngineHandle> {
  const SchemaEngine = await schemaEngineClass();
  const adapters: SqlDriverAdapter[] = [];
  const factory = provider === "sqlite" ? engineSqliteFactory(target, adapters) : enginePgFactory(target, adapters);
  const engine = await engineCall(() =>
    SchemaEngine.new({ datamodels: [["schema.prisma", readSchema(provider)]] }, () => undefined, bindMigrationAwareSqlAdapterFactory(factory)),
  );
  return {
    engine,
    async close() {
      engine.free();
      await Promise.allSettled(adapters.map((a) => a.dispose()));
    },
  };
}

/*
 * Driver adapter gaps, and how the factories below bridge them. None of them changes what is read
 * from or written to the database; each makes the adapter do what Prisma's native engine does.
 *
 * 1. Both adapters: the engine sends a whole migration script through `executeRaw`. better-sqlite3
 *    compiles one statement per call ("The supplied SQL string contains more than one statement"),
 *    so a multi-statement script without parameters goes through `executeScript` (SQLite's own
 *    exec) instead, as the native engine's raw command does.
 * 2. SQLite: the engine looks a partial index up with `name = "..."`, a double-quoted string
 *    literal that better-sqlite3's SQLite (built without double-quoted string literals) reads as a
 *    column name; it is sent as the single-quoted literal it means.
 * 3. PostgreSQL: the engine's catalog queries return columns of PostgreSQL's internal type "char"
 *    (pg_constraint.contype, ...), which @prisma/adapter-pg does not map ("Column type 'char' could
 *    not be deserialized"); they are passed on as Prisma's Character columns, which is what the
 *    engine expects.
 * 4. PostgreSQL: @prisma/adapter-pg's shadow database, given a connection string, connects to the
 *    main database instead (the string's database wins over the shadow one), and it drops the
 *    shadow database before closing its own pool. The shadow database is made here instead.
 */

const MULTIPLE_STATEMENTS = /more than one statement/;
const PARTIAL_INDEX_LOOKUP = /^(SELECT sql FROM sqlite_master WHERE type = 'index' AND name = )"((?:[^"]|"")*)"(;?)$/;

function bridgeQueryable<Q extends SqlDriverAdapter | Transaction>(queryable: Q, provider: Provider): Q {
  const executeRaw = queryable.executeRaw.bind(queryable);
  const queryRaw = queryable.queryRaw.bind(queryable);
  const executeScript = "executeScript" in queryable ? queryable.executeScript.bind(queryable) : undefined;

  if (provider === "sqlite") {
    queryable.executeRaw = async (query: SqlQuery) => {
      try {
        return await executeRaw(query);
      } catch (error) {
        if (executeScript && query.args.length === 0 && error instanceof RangeError && MULTIPLE_STATEMENTS.test(error.message)) {
          await executeScript(query.sql);
          return 0;
        }
        throw error;
      }
    };
    queryable.queryRaw = (query: SqlQuery) =>
      queryRaw({
        ...query,
        sql: query.sql.replace(PARTIAL_INDEX_LOOKUP, (_, head: string, name: string, end: string) => `${head}'${name.replace(/""/g, '"').replace(/'/g, "''")}'${end}`),
      });
  } else {
    // PgQueryable reads every result through performIO, then maps column OIDs to Prisma column types.
    const io = queryable as unknown as { performIO(query: SqlQuery): Promise<{ fields: { dataTypeID: number }[]; rows: unknown[][] }> };
    const performIO = io.performIO.bind(queryable);
    const charColumns = new WeakMap<unknown[][], number[]>();
    io.performIO = async (query) => {
      const result = await performIO(query);
      const chars: number[] = [];
      result.fields.forEach((field, i) => {
        if (field.dataTypeID === PG_CHAR_OID) {
          field.dataTypeID = PG_TEXT_OID;
          chars.push(i);
        }
      });
      if (chars.length > 0) charColumns.set(result.rows, chars);
      return result;
    };
    queryable.queryRaw = async (query: SqlQuery): Promise<SqlResultSet> => {
      const result = await queryRaw(query);
      for (const i of charColumns.get(result.rows) ?? []) result.columnTypes[i] = ColumnTypeEnum.Character;
      return result;
    };
  }

  if ("startTransaction" in queryable) {
    const startTransaction = queryable.startTransaction.bind(queryable);
    queryable.startTransaction = async (...args) => bridgeQueryable(await startTransaction(...args), provider);
  }
  return queryable;
}

const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;

/** better-sqlite3 on the file at `path`; the shadow database is in memory (the adapter's default). */
function engineSqliteFactory(path: string, opened: SqlDriverAdapter[]): SqlMigrationAwareDriverAdapterFactory {
  const inner = new PrismaBetterSqlite3({ url: `file:${path}` });
  const track = (adapter: SqlDriverAdapter) => {
    opened.push(adapter);
    return bridgeQueryable(adapter, "sqlite");
  };
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: async () => track(await inner.connect()),
    connectToShadowDb: async () => track(await inner.connectToShadowDb()),
  };
}

/** pg settings from a postgresql:// URL, field by field (so that a database override takes). */
export function pgConfig(url: string, database?: string): pg.PoolConfig {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: database ?? decodeURIComponent(parsed.pathname.slice(1)),
  };
}

/** node-postgres on the database at `url`; each shadow database is a fresh database on the same server. */
function enginePgFactory(url: string, opened: SqlDriverAdapter[]): SqlMigrationAwareDriverAdapterFactory {
  const inner = new PrismaPg(pgConfig(url));
  const admin = async (statement: string) => {
    const client = new pg.Client(pgConfig(url));
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  const track = (adapter: SqlDriverAdapter) => {
    opened.push(adapter);
    return bridgeQueryable(adapter, "postgres");
  };
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: async () => track(await inner.connect()),
    async connectToShadowDb() {
      const name = `prisma_shadow_${randomBytes(6).toString("hex")}`;
      await admin(`CREATE DATABASE ${name}`);
      const adapter: SqlDriverAdapter = await new PrismaPg(pgConfig(url, name)).connect();
      const dispose = adapter.dispose.bind(adapter);
      let disposed = false;
      adapter.dispose = async () => {
        if (disposed) return;
        disposed = true;
        await dispose();
        await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      };
      return track(adapter);
    },
  };
}
