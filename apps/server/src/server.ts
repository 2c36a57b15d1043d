/**
 * A running server: the database, the HTTP application and the background services, started and
 * stopped together (in the order that loses nothing: stop accepting requests, finish those in flight,
 * stop the services so they flush what they buffer, close the database).
 */
import { type Database, openDatabase } from "@prefect/db";
import { type App, buildApp } from "./app.js";
import type { AppContext } from "./context.js";
import { installSystemBlockTypes } from "./features/blocks/system.js";
import { EventBus } from "./features/events/bus.js";
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
  const context: AppContext = { db, settings, events: new EventBus() };
  let services: Service[] = [];
  let app: App | undefined;
  try {
    if (settings.blocksRegisterOnStart) await installSystemBlockTypes(db);
    app = await buildApp(context, options.logger === undefined ? {} : { logger: options.logger });
    services = await startLoops(context, app.log);
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
