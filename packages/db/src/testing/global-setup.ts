/**
 * Starts PostgreSQL for the run when it is asked for, and builds a migrated template database that
 * tests copy (CREATE DATABASE ... TEMPLATE; each test file's process empties and reuses its copies). The container image comes from
 * PREFECT_TEST_POSTGRES_IMAGE (default: the official postgres:15).
 *
 * Every test (and every server or worker a test starts, which inherit the environment) runs with
 * PREFECT_DATABASE_CHECK_TRANSACTION_SCOPE=1: a call on the database from inside one of its
 * transactions fails the test instead of waiting for the transaction it is part of (driver/scope.ts).
 */
import type { TestProject } from "vitest/node";
import { CHECK_TRANSACTION_SCOPE_VARIABLE } from "../driver/scope.js";
import { selectedBackends } from "./backends.js";
import { dropCopies, startPostgres, templateDatabaseName, withDatabase } from "./postgres.js";

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  process.env[CHECK_TRANSACTION_SCOPE_VARIABLE] = "1";
  if (!selectedBackends().includes("postgres")) return undefined;
  const server = await startPostgres();
  const template = templateDatabaseName();
  try {
    await buildTemplate(server.url, template);
  } catch (error) {
    await server.stop();
    throw error;
  }
  project.provide("postgresUrl", server.url);
  project.provide("postgresTemplate", template);
  return async () => {
    // The tests' databases: each test file's process keeps emptied copies for its next tests.
    await dropCopies(server.url, template);
    await dropDatabase(server.url, template);
    await server.stop();
  };
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const pg = (await import("pg")).default;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function buildTemplate(adminUrl: string, template: string): Promise<void> {
  const { openDatabase, loadDatabaseConfig } = await import("../index.js");
  const pg = (await import("pg")).default;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${template}`);
  } finally {
    await admin.end();
  }
  const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: withDatabase(adminUrl, template) }));
  await db.close();
}
