/**
 * Starts the real server on a free port over a fresh database of the given backend, and talks HTTP to
 * it. Every response is checked against Prefect's OpenAPI document.
 */
import { type Database, type DatabaseConfig, openDatabase } from "@prefect/db";
import { freshConfig, type TestBackend } from "@prefect/db/testing";
import { afterEach, beforeEach, describe } from "vitest";
import { selectedBackends } from "@prefect/db/testing";
import type { App } from "../../src/app.js";
import { startServer as start } from "../../src/server.js";
import { loadServerSettings, type ServerSettings } from "../../src/settings.js";
import { checkResponse } from "./contract.js";

export interface ApiResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

export interface TestServer {
  readonly url: string;
  readonly db: Database;
  readonly app: App;
  readonly context: import("../../src/context.js").AppContext;
  // biome-ignore lint/suspicious/noExplicitAny: responses are checked against Prefect's schema at run time; tests read them freely
  request<T = any>(method: string, path: string, body?: unknown, init?: { headers?: Record<string, string>; raw?: string }): Promise<ApiResponse<T>>;
  close(): Promise<void>;
}

/**
 * Settings of every test server unless the test sets them: events written quickly, and (as Prefect's
 * own test settings) the loop services that change runs, pools and deployments on their own switched
 * off, so that they only run in the suites about them.
 */
export const TEST_DEFAULTS: Record<string, string> = {
  PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: "0.05",
  PREFECT_SERVER_BLOCKS_REGISTER_ON_START: "false",
  PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED: "false",
  PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: "false",
  PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "false",
  PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED: "false",
  PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: "false",
  PREFECT_SERVER_SERVICES_ACTIONS_ENABLED: "false",
};

/** A server over a fresh database, or over `shared` (another server's database, which it leaves in place). */
export async function startServer(backend: TestBackend, env: Record<string, string> = {}, shared?: DatabaseConfig): Promise<TestServer> {
  if (shared) return startServerOn(shared, env);
  const { config, remove } = await freshConfig(backend);
  return startServerOn(config, env, remove);
}

/**
 * Starts another server on the database `config` names, with a connection of its own, as a second
 * server process would; `remove` is what closing it also does (nothing by default: the database is
 * the first server's).
 */
export async function startServerOn(config: DatabaseConfig, env: Record<string, string> = {}, remove: () => Promise<void> = async () => undefined): Promise<TestServer> {
  const db = await openDatabase(config);
  const settings: ServerSettings = { ...loadServerSettings({ ...TEST_DEFAULTS, ...env }), port: 0 };
  const running = await start({ ...settings, host: "127.0.0.1" }, { db, logger: false });
  const { app, url } = running;
  return {
    url,
    db,
    app,
    context: running.context,
    request: apiRequests(`${url}/api`),
    async close() {
      await running.stop();
      await db.close();
      await remove();
    },
  };
}

/** `TestServer.request` for the API at `apiUrl` (a test server's, or a server process's). */
export function apiRequests(apiUrl: string): TestServer["request"] {
  return async (method, path, body, init = {}) => {
    const response = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { "content-type": "application/json", ...init.headers },
      ...(init.raw !== undefined ? { body: init.raw } : body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const parsed = text === "" ? undefined : JSON.parse(text);
    checkResponse(method, path.split("?")[0]!, response.status, parsed);
    return { status: response.status, body: parsed, headers: response.headers };
  };
}

export interface ServerContext {
  readonly server: TestServer;
  readonly backend: TestBackend;
}

/** Declares `body` once per selected backend; every test gets its own server over a fresh database. */
export function describeApi(title: string, body: (t: ServerContext) => void, env: Record<string, string> = {}): void {
  for (const backend of selectedBackends()) {
    describe(`${title} [${backend}]`, () => {
      let current: TestServer | undefined;
      beforeEach(async () => {
        current = await startServer(backend, env);
      });
      afterEach(async () => {
        await current?.close();
        current = undefined;
      });
      body({
        get server() {
          if (!current) throw new Error("the server is only available inside a test");
          return current;
        },
        backend,
      });
    });
  }
}
