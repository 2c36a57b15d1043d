// Drafts the SQL of a new migration for each provider: the difference between the schema as committed
// at a git revision (default HEAD) and the schema in the working tree, computed offline by Prisma's
// own schema engine (WebAssembly). Prints the drafts; a person turns them into
// prisma/<provider>/migrations/<timestamp>_<name>/migration.sql, adding what Prisma cannot express
// (expression and partial indexes, CHECK constraints) and SQLite's timestamp and JSON defaults.
//   node scripts/draft-migration.mjs [git-revision]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const revision = process.argv[2] ?? "HEAD";

const bgFile = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg");
const engineDir = dirname(bgFile);
const bg = await import(pathToFileURL(bgFile).href);
const { instance } = await WebAssembly.instantiate(readFileSync(join(engineDir, "schema_engine_bg.wasm")), { "./schema_engine_bg.js": bg });
bg.__wbg_set_wasm(instance.exports);
instance.exports.__wbindgen_start();
const { PrismaBetterSqlite3 } = await import("@prisma/adapter-better-sqlite3");
const { bindMigrationAwareSqlAdapterFactory } = await import("@prisma/driver-adapter-utils");

for (const provider of ["sqlite", "postgres"]) {
  const path = `prisma/${provider}/schema.prisma`;
  const before = execFileSync("git", ["show", `${revision}:${path}`], { cwd: root, encoding: "utf8" });
  const after = readFileSync(join(root, path), "utf8");
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaBetterSqlite3({ url: ":memory:" }));
  const engine = await bg.SchemaEngine.new({ datamodels: [["schema.prisma", after]] }, () => {}, adapter);
  const schema = (content) => ({ tag: "schemaDatamodel", files: [{ path: "schema.prisma", content }] });
  const result = await engine.diff({
    from: schema(before),
    to: schema(after),
    script: true,
    exitCode: null,
    filters: { externalTables: [], externalEnums: [] },
  });
  process.stdout.write(`-- ===== ${provider}: ${revision} -> working tree =====\n${result.stdout}\n`);
}
