import { randomUUID } from "node:crypto";
import { sql } from "../sql.js";
import { now } from "../timestamps.js";
import type { RepositoryContext } from "./context.js";

/** Server-wide settings kept in the database (Prefect's `configuration` table), JSON values by key. */
export interface ConfigurationRepository {
  get(key: string): Promise<unknown | undefined>;
  set(key: string, value: unknown): Promise<void>;
  /**
   * Stores `value` under `key` unless a value is already there; returns whichever value is stored.
   * Concurrent callers all get the same winner (used for generated keys).
   */
  setIfAbsent(key: string, value: unknown): Promise<unknown>;
  delete(key: string): Promise<boolean>;
}

export function configurationRepository({ q }: RepositoryContext): ConfigurationRepository {
  const api: ConfigurationRepository = {
    async get(key) {
      const rows = await q.query<{ value: unknown }>(sql`SELECT value FROM configuration WHERE key = ${key}`);
      return rows[0] ? q.dialect.decodeJson(rows[0].value) : undefined;
    },
    async set(key, value) {
      const ts = now();
      await q.execute(
        sql`INSERT INTO configuration (id, created, updated, key, value) VALUES (${randomUUID()}, ${ts}, ${ts}, ${key}, ${sql.json(value)})
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
      );
    },
    async setIfAbsent(key, value) {
      const ts = now();
      await q.execute(
        sql`INSERT INTO configuration (id, created, updated, key, value) VALUES (${randomUUID()}, ${ts}, ${ts}, ${key}, ${sql.json(value)})
            ON CONFLICT (key) DO NOTHING`,
      );
      return api.get(key);
    },
    async delete(key) {
      return (await q.execute(sql`DELETE FROM configuration WHERE key = ${key}`)) > 0;
    },
  };
  return api;
}

