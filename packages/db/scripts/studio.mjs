// `pnpm db:studio`: Prisma Studio on the database the environment configures (SQLite or PostgreSQL).
// Extra arguments go to `prisma studio` (e.g. --port 5556 --browser none).
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describeLocation, loadDatabaseConfig } from "../dist/index.js";

const config = loadDatabaseConfig();
if (config.backend === "sqlite" && config.path === ":memory:") {
  console.error("Prisma Studio needs a database file or server; PREFECT_DATABASE_PATH is :memory:.");
  process.exit(1);
}
if (config.backend === "sqlite" && !existsSync(config.path)) {
  console.error(`No database at ${config.path} yet; start the server or run \`pnpm database upgrade\` first.`);
  process.exit(1);
}
// Prisma wants file:///absolute/path for SQLite.
const url = config.backend === "sqlite" ? pathToFileURL(config.path).href : config.url;
const engine = join(tmpdir(), "prefect-ts-no-schema-engine");
if (!existsSync(engine)) writeFileSync(engine, "", { mode: 0o755 });
const prisma = createRequire(import.meta.url).resolve("prisma/build/index.js");
console.log(`Prisma Studio on ${config.backend}: ${describeLocation(config)}`);
const child = spawn(process.execPath, [prisma, "studio", "--url", url, ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { PRISMA_SCHEMA_ENGINE_BINARY: engine, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1", ...process.env },
});
child.on("exit", (code) => process.exit(code ?? 0));
