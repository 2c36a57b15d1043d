/**
 * Test support shared by every package's suites: which backends a run covers (PREFECT_TEST_BACKEND),
 * PostgreSQL from testcontainers (or PREFECT_TEST_POSTGRES_URL), and a fresh database per test.
 * Use `globalSetup` from `@prefect/db/testing/global-setup` in the vitest config.
 */
export { selectedBackends, type TestBackend } from "./backends.js";
export { type BackendContext, describeEachBackend, freshConfig, openTestDatabase, type TestDatabase, type TestDatabaseOptions } from "./database.js";
export { createTestDatabase, openPostgresSession, type PostgresSession, startPostgres, templateDatabaseName, terminateConnections, withDatabase } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL of the PostgreSQL server of this test run (set by the global setup). */
    postgresUrl: string;
    /** The migrated template database each test clones (its name is this run's own). */
    postgresTemplate: string;
  }
}
