/**
 * The real server, as `pnpm start` runs it (apps/server/dist/main.js in its own process), serving the
 * built UI over a fresh database of the backend under test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freshConfig, type TestBackend } from "@prefect/db/testing";

const here = dirname(fileURLToPath(import.meta.url));
export const UI_DIST = join(here, "..", "..", "dist");
const SERVER_MAIN = join(here, "..", "..", "..", "server", "dist", "main.js");

export interface RunningServer {
  readonly url: string;
  readonly api: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export async function startServer(backend: TestBackend, env: Record<string, string> = {}): Promise<RunningServer> {
  const { config, remove } = await freshConfig(backend);
  const database: Record<string, string> = config.backend === "postgres" ? { PREFECT_DATABASE_URL: config.url } : { PREFECT_DATABASE_PATH: config.path };
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [SERVER_MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      ...database,
      PREFECT_SERVER_API_PORT: String(port),
      PREFECT_UI_STATIC_DIRECTORY: UI_DIST,
      PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: "0.1",
      PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED: "false",
      PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: "false",
      PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "false",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += String(chunk);
  });
  child.stderr?.on("data", (chunk) => {
    output += String(chunk);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (!output.includes("Prefect's UI:")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      await remove();
      throw new Error(`The server did not start serving the UI:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    api: `${url}/api`,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      await remove();
    },
  };
}
