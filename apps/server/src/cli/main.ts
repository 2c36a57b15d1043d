#!/usr/bin/env node
import { DATABASE_USAGE, runDatabaseCommand, terminalIO } from "./database.js";
import { runServicesCommand, SERVICES_USAGE } from "./services.js";

const USAGE = `Usage: prefect-server <command>

Commands:
  database ...    Manage the database (status, upgrade, reset); see \`database --help\`
  services ...    Run the background services without the API (ls, start); see \`services --help\`

${DATABASE_USAGE}
${SERVICES_USAGE}`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "database") return runDatabaseCommand(rest, terminalIO());
  if (command === "services") return runServicesCommand(rest, terminalIO());
  if (command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(command ? `Unknown command: ${command}\n\n${USAGE}` : USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
