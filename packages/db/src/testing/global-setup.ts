/**
 * Starts PostgreSQL for the run when it is asked for, and builds a migrated template database that
 * each test clones (CREATE DATABASE ... TEMPLATE is fast). The container image comes from
 * PREFECT_TEST_POSTGRES_IMAGE (default: the official postgres:15).
 */
import type { TestProject } from "vitest/node";
import { selectedBackends } from "./backends.js";
import { startPostgres, TEMPLATE_DATABASE, withDatabase } from "./postgres.js";

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!selectedBackends().includes("postgres")) return undefined;
  const server = await startPostgres();
  try {
    await buildTemplate(server.url);
  } catch (error) {
    await server.stop();
    throw error;
  }
  project.provide("postgresUrl", server.url);
  return server.stop;
}

async function buildTemplate(adminUrl: string): Promise<void> {
  const { openDatabase, loadDatabaseConfig } = await import("../index.js");
  const pg = (await import("pg")).default;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: withDatabase(adminUrl, TEMPLATE_DATABASE) }));
  await db.close();
}
