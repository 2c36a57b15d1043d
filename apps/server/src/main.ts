#!/usr/bin/env node
/**
 * Starts the server: opens the configured database (migrating it unless turned off), serves Prefect's
 * API with its background services, and shuts down gracefully on SIGTERM / SIGINT.
 */
import { uiAvailability } from "./features/ui-app/service.js";
import { startServer } from "./server.js";
import { loadServerSettings } from "./settings.js";

async function main(): Promise<void> {
  const server = await startServer(loadServerSettings());
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, "shutting down");
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`Shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  process.stdout.write(
    `Prefect-compatible server listening on ${server.url}/api (${server.db.backend}: ${server.db.location})\n` +
      `Point Prefect at it with: PREFECT_API_URL=${server.url}/api\n`,
  );
  const ui = uiAvailability(server.context.settings);
  process.stdout.write(ui.served ? `Prefect's UI: ${server.url}${server.context.settings.ui.serveBase}\n` : `Serving the API only: ${ui.reason}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`The server could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
