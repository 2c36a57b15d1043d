/**
 * A running server: the database, the HTTP application and the background services, started and
 * stopped together (in the order that loses nothing: stop accepting requests, finish those in flight,
 * stop the services so they flush what they buffer, close the database).
 */
import { type Database, openDatabase } from "@prefect/db";
import { type App, buildApp } from "./app.js";
import type { AppContext, Logger } from "./context.js";
import { installSystemBlockTypes } from "./features/blocks/system.js";
import { EventBus } from "./features/events/bus.js";
import { EventReader, readerPollMs } from "./loops/event-reader.js";
import { startLoops } from "./loops/index.js";
import type { Service } from "./loops/loop.js";
import type { ServerSettings } from "./settings.js";

export interface RunningServer {
  readonly app: App;
  readonly db: Database;
  readonly context: AppContext;
  /** http://host:port (without /api). */
  readonly url: string;
  stop(): Promise<void>;
}

export async function startServer(settings: ServerSettings, options: { db?: Database; logger?: boolean } = {}): Promise<RunningServer> {
  const db = options.db ?? (await openDatabase());
  let app: App | undefined;
  // The reader is part of the context the application is built with, and logs to the application's logger.
  const appLog: Logger = {
    debug: (fields, message) => app?.log.debug(fields, message),
    info: (fields, message) => app?.log.info(fields, message),
    warn: (fields, message) => app?.log.warn(fields, message),
    error: (fields, message) => app?.log.error(fields, message),
  };
  const reader = new EventReader(db, appLog, readerPollMs(db));
  const context: AppContext = { db, settings, events: new EventBus(), feed: reader };
  let services: Service[] = [];
  try {
    if (settings.blocksRegisterOnStart) await installSystemBlockTypes(db);
    app = await buildApp(context, options.logger === undefined ? {} : { logger: options.logger });
    await reader.start();
    services = [reader];
    services.push(...(await startLoops(context, app.log)));
    await app.listen({ host: settings.host, port: settings.port });
  } catch (error) {
    await app?.close();
    for (const service of services.reverse()) await service.stop();
    if (!options.db) await db.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : settings.port;
  const running = app;
  let stopping: Promise<void> | undefined;
  return {
    app: running,
    db,
    context,
    url: `http://${settings.host.includes(":") ? `[${settings.host}]` : settings.host}:${port}`,
    stop() {
      stopping ??= (async () => {
        await running.close();
        for (const service of [...services].reverse()) await service.stop();
        if (!options.db) await db.close();
      })();
      return stopping;
    },
  };
}
