import { PassThrough } from "node:stream";
import { loadDatabaseConfig, type DatabaseConfig, openDatabase } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CliIO, runDatabaseCommand } from "../src/cli/database.js";

function env(config: DatabaseConfig): NodeJS.ProcessEnv {
  return config.backend === "sqlite" ? { PREFECT_DATABASE_PATH: config.path } : { PREFECT_DATABASE_URL: config.url };
}

async function cli(args: string[], config: DatabaseConfig, answer = false) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const questions: string[] = [];
  const io: CliIO = {
    stdout,
    stderr,
    env: env(config),
    confirm: async (question) => {
      questions.push(question);
      return answer;
    },
  };
  const code = await runDatabaseCommand(args, io);
  return { code, out: String(stdout.read() ?? ""), err: String(stderr.read() ?? ""), questions };
}

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`database CLI [${backend}]`, () => {
    let config: DatabaseConfig;
    let remove: () => Promise<void>;
    beforeEach(async () => {
      ({ config, remove } = await freshConfig(backend, { empty: true }));
    });
    afterEach(() => remove());

    it("status shows the backend, where the database is and what is pending", async () => {
      const { code, out } = await cli(["status"], config);
      expect(code).toBe(0);
      expect(out).toContain(`Backend:   ${config.backend}`);
      expect(out).toMatch(/Pending migrations \([1-9]\d*\):\n {2}\d{14}_run_tracking/);
      expect(out).toContain("Run `database upgrade`");
    });

    it("upgrade applies the pending migrations, then has nothing to do", async () => {
      const first = await cli(["upgrade"], config);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/Applied \d+ migration\(s\)/);
      const second = await cli(["upgrade", "-y"], config);
      expect(second.out).toContain("already up to date");
      expect((await cli(["status"], config)).out).toContain("The database is up to date.");
    });

    it("reset asks first and changes nothing when the answer is no", async () => {
      await cli(["upgrade"], config);
      const db = await openDatabase(loadDatabaseConfig(env(config)));
      await db.flows.create({ name: "keep-me" });
      await db.close();

      const declined = await cli(["reset"], config, false);
      expect(declined.code).toBe(0);
      expect(declined.questions[0]).toMatch(/drops every table and all data/);
      expect(declined.out).toContain("Aborted; nothing was changed.");
      const kept = await openDatabase(loadDatabaseConfig(env(config)));
      expect((await kept.flows.read()).map((f) => f.name)).toEqual(["keep-me"]);
      await kept.close();

      const reset = await cli(["reset", "-y"], config);
      expect(reset.code).toBe(0);
      expect(reset.questions).toEqual([]);
      const empty = await openDatabase(loadDatabaseConfig(env(config)));
      expect(await empty.flows.read()).toEqual([]);
      await empty.close();
    });
  });
}

describe("database CLI arguments", () => {
  const memory = loadDatabaseConfig({ PREFECT_DATABASE_PATH: ":memory:" });

  it("prints help, and refuses unknown commands and options", async () => {
    expect((await cli(["--help"], memory)).out).toContain("Usage: database <command>");
    const unknown = await cli(["migrate"], memory);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("Unknown command: database migrate");
    expect((await cli(["status", "--force"], memory)).code).toBe(2);
  });

  it("explains a bad setting without showing the password", async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const code = await runDatabaseCommand(["status"], {
      stdout,
      stderr,
      env: { PREFECT_DATABASE_URL: "postgresql://user:hunter2@localhost/db", PREFECT_SQLALCHEMY_POOL_SIZE: "many" },
      confirm: async () => false,
    });
    const message = String(stderr.read());
    expect(code).toBe(1);
    expect(message).toContain("PREFECT_SQLALCHEMY_POOL_SIZE must be a whole number");
    expect(message).not.toContain("hunter2");
  });
});
