/** The backends this package speaks, and the one a configuration names. */
import type { DatabaseConfig } from "../config.js";
import type { Backend } from "./backend.js";
import { postgresBackend } from "./postgres/index.js";
import { sqliteBackend } from "./sqlite/index.js";

export type { Backend } from "./backend.js";

export const BACKENDS: readonly Backend[] = [sqliteBackend, postgresBackend];

/** The backend `config` names. */
export function backendFor(config: DatabaseConfig): Backend {
  const backend = BACKENDS.find((b) => b.name === config.backend);
  if (!backend) throw new Error(`no database backend is named ${JSON.stringify(config.backend)}`);
  return backend;
}
