import { defineConfig } from "vitest/config";

// PREFECT_TEST_BACKEND picks the backends (sqlite, postgres, or all); PostgreSQL runs in a container.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["@prefect/db/testing/global-setup"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
