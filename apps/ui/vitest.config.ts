import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["@prefect/db/testing/global-setup"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
  },
});
