import { selectedBackends } from "@prefect/db/testing";
import { defineConfig } from "vitest/config";

// PREFECT_TEST_BACKEND picks the backends (sqlite, postgres, or all); PostgreSQL runs in a container.
// Suites about PostgreSQL alone (test/postgres) only run when it is selected.
const exclude = selectedBackends().includes("postgres") ? [] : ["test/postgres/**"];

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude,
    globalSetup: ["@prefect/db/testing/global-setup"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
  },
});
