/**
 * `services` commands, as Prefect's `prefect server services ...`: the background services without
 * the API, e.g. on other machines against the same PostgreSQL database.
 *   ls                     the services and whether their settings switch them on
 *   start [--only a,b]     runs them (all those switched on, or only those named) until SIGTERM or
 *                          SIGINT, then stops them gracefully
 * The event persister runs with them whenever its setting allows, as it stores the events the other
 * services emit. Settings and the database come from the environment, as for the server.
 */
import { parseArgs } from "node:util";
import { type Database, loadDatabaseConfig, openDatabase } from "@prefect/db";
import Fastify from "fastify";
import type { AppContext } from "../context.js";
import { EventBus } from "../features/events/bus.js";
import { EventReader, readerPollMs } from "../loops/event-reader.js";
import { startLoops } from "../loops/index.js";
import type { Service } from "../loops/loop.js";
import { loadServerSettings, type ServerSettings } from "../settings.js";
import type { CliIO } from "./database.js";

export const SERVICES_USAGE = `Usage: services <command> [options]

Commands:
  ls                      List the background services and whether their settings enable them
  start [--only a,b,...]  Run the background services without the API until SIGTERM or SIGINT

Options:
  --only <names>  Run only these services (comma-separated, e.g. scheduler,foreman); the event
                  persister runs with them to store the events they emit
  -h, --help      Show this help

Services are switched on and off by Prefect's settings (PREFECT_SERVER_SERVICES_<NAME>_ENABLED); the
database comes from the environment, as for the server.
`;

type ServiceKey = keyof ServerSettings["services"];

/** `lateRuns` -> `late-runs`. */
const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const squash = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, "");
/** Prefect's service names that differ from the setting names. */
const ALIASES: Readonly<Record<string, ServiceKey>> = { marklateruns: "lateRuns", recentdeploymentsscheduler: "scheduler" };

function serviceKeys(settings: ServerSettings): ServiceKey[] {
  return Object.keys(settings.services) as ServiceKey[];
}

/** The setting key of a service name given on the command line, or null. */
function keyOf(settings: ServerSettings, name: string): ServiceKey | null {
  const wanted = squash(name);
  return serviceKeys(settings).find((key) => squash(key) === wanted) ?? ALIASES[wanted] ?? null;
}

/** The settings with every service but `keep` (and the event persister) switched off. */
function onlySettings(settings: ServerSettings, keep: ReadonlySet<ServiceKey>): ServerSettings {
  const services = Object.fromEntries(
    serviceKeys(settings).map((key) => {
      const current = settings.services[key];
      const enabled = current.enabled && (keep.has(key) || key === "eventPersister");
      return [key, { ...current, enabled }];
    }),
  ) as unknown as ServerSettings["services"];
  return { ...settings, services };
}

/** Resolves with the signal's name on the first SIGTERM or SIGINT. */
export function untilSignalled(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => {
      process.off("SIGTERM", term);
      process.off("SIGINT", int);
      resolve(signal);
    };
    const term = on("SIGTERM");
    const int = on("SIGINT");
    process.once("SIGTERM", term);
    process.once("SIGINT", int);
  });
}

/** Runs one `services` command; returns the process exit code. `stopped` ends `start` (signals by default). */
export async function runServicesCommand(args: readonly string[], io: Omit<CliIO, "confirm">, stopped: () => Promise<string> = untilSignalled): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: { only: { type: "string" }; help: { type: "boolean"; short: "h" } } }>>;
  try {
    parsed = parseArgs({ args: [...args], allowPositionals: true, options: { only: { type: "string" }, help: { type: "boolean", short: "h" } } });
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${SERVICES_USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    (parsed.values.help ? io.stdout : io.stderr).write(SERVICES_USAGE);
    return parsed.values.help ? 0 : 2;
  }
  if (!["ls", "start"].includes(command) || rest.length > 0 || (command === "ls" && parsed.values.only !== undefined)) {
    io.stderr.write(`Unknown command: services ${args.join(" ")}\n\n${SERVICES_USAGE}`);
    return 2;
  }

  let settings: ServerSettings;
  try {
    settings = loadServerSettings(io.env);
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }

  if (command === "ls") {
    const lines = serviceKeys(settings).map((key) => `  ${kebab(key).padEnd(24)}${settings.services[key].enabled ? "enabled" : "disabled"}`);
    io.stdout.write(`Services:\n${lines.join("\n")}\n`);
    return 0;
  }

  if (parsed.values.only !== undefined) {
    const names = parsed.values.only
      .split(",")
      .map((n) => n.trim())
      .filter((n) => n.length > 0);
    const unknown = names.filter((n) => keyOf(settings, n) === null);
    if (names.length === 0 || unknown.length > 0) {
      const known = serviceKeys(settings).map(kebab).join(", ");
      io.stderr.write(
        unknown.length === 0 ? `No service given to --only (known: ${known})\n` : `Unknown service${unknown.length === 1 ? "" : "s"}: ${unknown.join(", ")} (known: ${known})\n`,
      );
      return 2;
    }
    settings = onlySettings(settings, new Set(names.map((n) => keyOf(settings, n) as ServiceKey)));
  }

  let db: Database;
  try {
    db = await openDatabase(loadDatabaseConfig(io.env));
  } catch (error) {
    io.stderr.write(`Cannot open the database: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const logger = Fastify({ logger: { level: settings.logLevel } });
  const reader = new EventReader(db, logger.log, readerPollMs(db));
  const context: AppContext = { db, settings, events: new EventBus(), feed: reader };
  // The services' timers do not keep the process alive on their own.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let services: Service[] = [];
  try {
    await reader.start();
    services = [reader];
    services.push(...(await startLoops(context, logger.log)));
    if (services.length === 1) {
      io.stderr.write("No service is enabled; nothing to run.\n");
      return 1;
    }
    io.stdout.write(`Running ${services.slice(1).map((s) => s.name).join(", ")} against ${db.location} (${db.backend}); stop with Ctrl-C.\n`);
    const signal = await stopped();
    io.stdout.write(`${signal}: stopping the services.\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`The services failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    for (const service of [...services].reverse()) await service.stop();
    clearInterval(keepAlive);
    await logger.close();
    await db.close();
  }
}
