#!/usr/bin/env node
/**
 * `pnpm worker --pool NAME`: starts a process worker on the database the environment configures (as
 * for the server). Exit codes: 0 after a clean stop, 1 when the worker could not start, 2 for bad
 * options.
 */
import { isDatabaseError, loadDatabaseConfig, openDatabase } from "@prefect/db";
import { createLogger, type LogFormat, logFormatFrom, logLevelFrom } from "./logger.js";
import { HELP, parseArguments } from "./options.js";
import { ProcessWorker } from "./worker.js";

async function main(): Promise<number> {
  const parsed = parseArguments(process.argv.slice(2), process.env);
  if (parsed.kind === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (parsed.kind === "error") {
    process.stderr.write(`Error: ${parsed.message}\nRun with --help to see the options.\n`);
    return 2;
  }
  let level: ReturnType<typeof logLevelFrom>;
  let format: LogFormat;
  try {
    level = logLevelFrom(process.env);
    format = logFormatFrom(process.env);
  } catch (error) {
    process.stderr.write(`Error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const log = createLogger(level, 2, format);
  const config = loadDatabaseConfig(process.env);
  const db = await openDatabase(config);
  const worker = new ProcessWorker(db, parsed.options, { log });
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, `Received ${signal}`);
    worker.stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  log.info({ backend: db.backend, database: db.location, pool: parsed.options.pool }, "Starting worker");
  try {
    await worker.run();
  } finally {
    await db.close();
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = isDatabaseError(error) || error instanceof Error ? error.message : String(error);
    process.stderr.write(`The worker could not start: ${message}\n`);
    process.exitCode = 1;
  },
);
