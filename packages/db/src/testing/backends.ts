/**
 * Which backends a test run covers, from PREFECT_TEST_BACKEND:
 *   unset or "all"  SQLite (a file, and in memory) and PostgreSQL
 *   "sqlite"        SQLite only (file and in memory)
 *   "postgres"      PostgreSQL only
 * PostgreSQL comes from testcontainers, or from the server named by PREFECT_TEST_POSTGRES_URL where
 * containers cannot run; a run that asks for PostgreSQL and can have neither fails.
 */
export type TestBackend = "sqlite-file" | "sqlite-memory" | "postgres";

export function selectedBackends(env: NodeJS.ProcessEnv = process.env): TestBackend[] {
  const choice = (env.PREFECT_TEST_BACKEND ?? "all").trim().toLowerCase();
  switch (choice) {
    case "":
    case "all":
      return ["sqlite-file", "sqlite-memory", "postgres"];
    case "sqlite":
      return ["sqlite-file", "sqlite-memory"];
    case "postgres":
    case "postgresql":
      return ["postgres"];
    default:
      throw new Error(`PREFECT_TEST_BACKEND must be sqlite, postgres or all (got ${JSON.stringify(choice)})`);
  }
}
