/**
 * Server processes for the suites about several processes on one database: the built server
 * (`dist/main.js`) run as a child process against a database the test set up.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { DatabaseConfig } from "@prefect/db";
import { waitFor } from "./events.js";

const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** The environment that points a process at the database `config` names. */
export function databaseEnv(config: DatabaseConfig): Record<string, string> {
  return config.backend === "sqlite" ? { PREFECT_DATABASE_PATH: config.path } : { PREFECT_DATABASE_URL: config.url };
}

/** A server child process on a free port, with only the environment given (plus PATH and HOME). */
export class ServerProcess {
  readonly #child: ChildProcess;
  #output = "";

  private constructor(child: ChildProcess) {
    this.#child = child;
    const keep = (chunk: Buffer) => {
      this.#output += chunk.toString();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
  }

  /** Starts the server and waits until it listens; returns it with its API's URL. */
  static async start(config: DatabaseConfig, env: Record<string, string> = {}): Promise<{ process: ServerProcess; apiUrl: string }> {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build @prefect/server first (tsc -p tsconfig.build.json)`);
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PREFECT_SERVER_API_PORT: "0", ...databaseEnv(config), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = new ServerProcess(child);
    const apiUrl = await waitFor(() => /listening on (\S+\/api)/.exec(server.#output)?.[1], "the server process to listen");
    return { process: server, apiUrl };
  }

  /** Kills the process at once (SIGKILL): nothing it holds is given back. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.kill("SIGKILL");
    await exited;
  }
}
