/**
 * `database` commands, as Prefect's `prefect server database ...`:
 *   status           backend, location (password hidden), applied and pending migrations
 *   upgrade [-y]     apply pending migrations
 *   reset [-y]       drop everything and migrate from scratch (asks first unless -y)
 * The database is the one the environment configures (see @prefect/db).
 */
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import { type Database, loadDatabaseConfig, type MigrationStatus, openDatabase } from "@prefect/db";

export interface CliIO {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Asks a yes/no question; resolves true only for an explicit yes. */
  confirm(question: string): Promise<boolean>;
  readonly env: NodeJS.ProcessEnv;
}

export const DATABASE_USAGE = `Usage: database <command> [options]

Commands:
  status          Show the backend, where the database is, and applied and pending migrations
  upgrade [-y]    Apply pending migrations
  reset [-y]      Drop every table and migrate from scratch (asks for confirmation unless -y)

Options:
  -y, --yes       Do not ask for confirmation
  -h, --help      Show this help

The database comes from the environment: PREFECT_DATABASE_BACKEND (sqlite|postgres),
PREFECT_DATABASE_PATH or PREFECT_DATABASE_URL, or Prefect's PREFECT_SERVER_DATABASE_CONNECTION_URL.
`;

export function terminalIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    async confirm(question) {
      if (!process.stdin.isTTY && process.stdin.readableEnded) return false;
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        const answer = await rl.question(`${question} [y/N] `);
        return /^y(es)?$/i.test(answer.trim());
      } catch {
        return false;
      } finally {
        rl.close();
      }
    },
  };
}

function describeStatus(db: Database, server: string, status: MigrationStatus): string {
  const lines = [`Backend:   ${db.backend} (${server})`, `Location:  ${db.location}`, `Applied migrations (${status.applied.length}):`];
  for (const m of status.applied) lines.push(`  ${m.name}  applied ${m.finishedAt ?? "(unfinished)"}`);
  lines.push(`Pending migrations (${status.pending.length}):`);
  for (const name of status.pending) lines.push(`  ${name}`);
  if (status.unknown.length) lines.push(`Applied by a newer version (unknown here): ${status.unknown.join(", ")}`);
  if (status.modified.length) lines.push(`Changed after they were applied: ${status.modified.join(", ")}`);
  if (status.failed.length) lines.push(`Started but never finished: ${status.failed.join(", ")}`);
  lines.push(status.pending.length === 0 ? "The database is up to date." : "Run `database upgrade` to apply the pending migrations.");
  return `${lines.join("\n")}\n`;
}

/** Runs one `database` command; returns the process exit code. */
export async function runDatabaseCommand(args: readonly string[], io: CliIO): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { yes: { type: "boolean", short: "y" }, help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${DATABASE_USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    (parsed.values.help ? io.stdout : io.stderr).write(DATABASE_USAGE);
    return parsed.values.help ? 0 : 2;
  }
  if (!["status", "upgrade", "reset"].includes(command) || rest.length > 0) {
    io.stderr.write(`Unknown command: database ${[command, ...rest].join(" ")}\n\n${DATABASE_USAGE}`);
    return 2;
  }

  let db: Database;
  try {
    db = await openDatabase(loadDatabaseConfig(io.env), { migrate: false });
  } catch (error) {
    io.stderr.write(`Cannot open the database: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  try {
    if (command === "status") {
      const health = await db.health();
      io.stdout.write(describeStatus(db, health.server, await db.migrationStatus()));
      return 0;
    }
    if (command === "upgrade") {
      const applied = await db.migrate();
      io.stdout.write(applied.length ? `Applied ${applied.length} migration(s) to ${db.location}:\n${applied.map((n) => `  ${n}\n`).join("")}` : `${db.location} is already up to date.\n`);
      return 0;
    }
    const sure = parsed.values.yes || (await io.confirm(`This drops every table and all data in ${db.location} (${db.backend}) and migrates from scratch. Continue?`));
    if (!sure) {
      io.stdout.write("Aborted; nothing was changed.\n");
      return 0;
    }
    const applied = await db.reset();
    io.stdout.write(`Reset ${db.location}: dropped everything and applied ${applied.length} migration(s).\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`database ${command} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await db.close();
  }
}
