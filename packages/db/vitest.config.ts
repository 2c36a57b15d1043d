import { defineConfig } from "vitest/config";
import { selectedBackends } from "./src/testing/backends.js";

// Suites about one backend only run when that backend is selected.
const backends = selectedBackends();
const exclude = [...(backends.includes("sqlite-file") ? [] : ["test/sqlite/**"]), ...(backends.includes("postgres") ? [] : ["test/postgres/**"])];

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude,
    globalSetup: ["./src/testing/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks",
  },
});
