/**
 * The project's own programs as `pnpm start` and `pnpm worker` run them: the built entry points of
 * @prefect/server and @prefect/worker, in their package folders, on a bench database.
 */
import { mkdtempSync, readFileSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Child, cleanEnvironment, startNode } from "./processes.js";

/** This package's folder (the parent of dist/ or src/). */
export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
/** A workspace package's folder, through the link pnpm made for this package's dependency on it. */
const packageDir = (name: string) => realpathSync(join(BENCH_DIR, "node_modules", name));

export const SERVER_DIR = packageDir("@prefect/server");
export const WORKER_DIR = packageDir("@prefect/worker");

export interface ServerProcess {
  readonly child: Child;
  /** http://127.0.0.1:port/api */
  readonly api: string;
  /** Where `node --cpu-prof` writes the profile, when one was asked for. */
  readonly profileDir: string | null;
}

export interface ServerOptions {
  /** Variables that point it at its database (and any other settings). */
  readonly env: Record<string, string>;
  /** Run it under `node --cpu-prof`. */
  readonly profile?: boolean;
}

/**
 * The options `pnpm start` gives node before the server's entry point (its `start` script is
 * `node [options] dist/main.js`), so that the bench runs the server as users start it.
 */
export function serverNodeOptions(): string[] {
  const scripts = (JSON.parse(readFileSync(join(SERVER_DIR, "package.json"), "utf8")) as { scripts?: Record<string, string> }).scripts ?? {};
  const words = (scripts.start ?? "").trim().split(/\s+/);
  if (words[0] !== "node" || words.at(-1) !== "dist/main.js") throw new Error(`@prefect/server's start script is not "node [options] dist/main.js": ${scripts.start}`);
  return words.slice(1, -1);
}

/** Starts the real server (`node dist/main.js` with the options of `pnpm start`, and its services) on a free port. */
export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), "prefect-bench-profile-")) : null;
  const { child, match } = await startNode({
    what: "The server",
    args: [join(SERVER_DIR, "dist", "main.js")],
    cwd: SERVER_DIR,
    env: { ...cleanEnvironment(), PREFECT_SERVER_API_HOST: "127.0.0.1", PREFECT_SERVER_API_PORT: "0", ...options.env },
    nodeOptions: [...serverNodeOptions(), ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])],
    ready: /listening on (http:\/\/\S+?)\/api\b/,
  });
  return { child, api: `${match[1]}/api`, profileDir };
}

/** Stops a process and fails if it did not stop cleanly (a crash under load is a finding, not noise). */
export async function stopCleanly(child: Child, what: string): Promise<void> {
  const { code, signal } = await child.stop();
  if (code !== 0) throw new Error(`${what} did not stop cleanly (${signal ?? `exit code ${code}`}):\n${child.output()}`);
}

/** `pnpm worker ARGS` on a bench database; resolves once it has started. */
export async function startWorker(args: readonly string[], env: Record<string, string>): Promise<Child> {
  const { child } = await startNode({
    what: "The worker",
    args: [join(WORKER_DIR, "dist", "main.js"), ...args],
    cwd: WORKER_DIR,
    env: { ...cleanEnvironment(), PREFECT_LOGGING_LEVEL: "WARNING", ...env },
    ready: /Worker '.*' started!/,
  });
  return child;
}
