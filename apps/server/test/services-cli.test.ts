/**
 * The `services` CLI (`prefect-server services ls | start [--only a,b]`), as Prefect's
 * `prefect server services`: the built CLI run as a child process against a database the test sets up,
 * and its argument handling in-process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { type Database, type DatabaseConfig, openDatabase } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runServicesCommand } from "../src/cli/services.js";
import { waitFor } from "./support/events.js";
import { databaseEnv } from "./support/processes.js";

const MAIN = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));

/** A child process of the built CLI, with only the environment given (plus PATH and HOME). */
class Cli {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], env: Record<string, string>) {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build @prefect/server first (tsc -p tsconfig.build.json)`);
    this.child = spawn(process.execPath, [MAIN, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.stdout += chunk.toString();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }
}

async function run(args: string[], env: Record<string, string> = {}) {
  const cli = new Cli(args, env);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

describe("services CLI: commands", () => {
  it("ls lists every service and whether its setting enables it", async () => {
    const { code, stdout } = await run(["services", "ls"], { PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: "false", PREFECT_API_SERVICES_LATE_RUNS_ENABLED: "false" });
    expect(code).toBe(0);
    const listed = Object.fromEntries(
      stdout
        .split("\n")
        .slice(1)
        .filter((line) => line.trim())
        .map((line) => line.trim().split(/\s+/)),
    );
    expect(listed).toEqual({
      "task-run-recorder": "enabled",
      repossessor: "enabled",
      "event-persister": "enabled",
      scheduler: "enabled",
      "late-runs": "disabled",
      foreman: "disabled",
      "cancellation-cleanup": "enabled",
      triggers: "enabled",
      actions: "enabled",
    });
  });

  it("refuses an unknown service with exit code 2, naming it and the known ones", async () => {
    const { code, stdout, stderr } = await run(["services", "start", "--only", "scheduler,nonsense"]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain("Unknown service: nonsense (known: task-run-recorder, repossessor, event-persister, scheduler, late-runs, foreman, cancellation-cleanup, triggers, actions)");
  });

  it("answers bad arguments with the usage and exit code 2, --help with exit code 0", async () => {
    const cli = async (args: string[]) => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const code = await runServicesCommand(args, { stdout, stderr, env: {} }, () => Promise.reject(new Error("not started")));
      return { code, out: String(stdout.read() ?? ""), err: String(stderr.read() ?? "") };
    };
    for (const args of [[], ["bogus"], ["ls", "--only", "scheduler"], ["start", "extra"], ["start", "--only", ""], ["start", "--bogus"]]) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.out, args.join(" ")).toBe("");
      expect(result.err, args.join(" ")).not.toBe("");
    }
    expect((await cli(["start", "--only", ""])).err).toContain("No service given to --only (known: ");
    expect((await cli(["start", "--only", "a,b"])).err).toContain("Unknown services: a, b (known: ");
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: services <command> [options]");
  });
});

for (const backend of selectedBackends().filter((b) => b !== "sqlite-memory")) {
  describe(`services CLI: start [${backend}]`, () => {
    let config: DatabaseConfig;
    let remove: () => Promise<void>;
    let db: Database;
    const children: Cli[] = [];
    beforeEach(async () => {
      ({ config, remove } = await freshConfig(backend));
      db = await openDatabase(config);
    });
    afterEach(async () => {
      for (const cli of children.splice(0)) {
        if (cli.child.exitCode === null && cli.child.signalCode === null) {
          cli.child.kill("SIGKILL");
          await cli.exited;
        }
      }
      await db.close();
      await remove();
    });

    it("runs only the services named until SIGTERM, then stops them and exits 0", async () => {
      const flow = (await db.flows.create({ name: "etl" })).row;
      const anchor = new Date(Math.ceil(Date.now() / 1000) * 1000 + 600_000).toISOString();
      const deployment = (
        await db.deployments.create({ name: "d", flow_id: flow.id, tags: ["nightly"], schedules: [{ schedule: { interval: 3600, anchor_date: anchor } }] })
      ).row;
      // A run the late-runs service would mark, were it running.
      const late = new Date(Date.now() - 3600_000).toISOString();
      const lateRun = (await db.flowRuns.create({ flow_id: flow.id, state: { type: "SCHEDULED", state_details: { scheduled_time: late } }, next_scheduled_start_time: late })).row;

      const cli = new Cli(["services", "start", "--only", "scheduler"], { ...databaseEnv(config), PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS: "0.5" });
      children.push(cli);
      await waitFor(() => cli.stdout.includes("Running "), "the services to start");
      expect(cli.stdout).toMatch(/^Running EventPersister, Scheduler, RecentDeploymentsScheduler against .+ \((sqlite|postgres)\); stop with Ctrl-C\.\n/);
      const runs = await waitFor(async () => {
        const found = await db.flowRuns.read({ flow_runs: { deployment_id: { any_: [deployment.id] } }, sort: "EXPECTED_START_TIME_ASC" });
        return found.length === 3 ? found : undefined;
      }, "the deployment's runs");
      expect(runs.map((r) => Date.parse(r.expected_start_time as string))).toEqual([0, 1, 2].map((h) => Date.parse(anchor) + h * 3600_000));
      expect(runs.every((r) => r.auto_scheduled && r.state_name === "Scheduled" && r.tags.join() === "auto-scheduled,nightly")).toBe(true);

      cli.child.kill("SIGTERM");
      const { code, signal } = await cli.exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(cli.stdout).toContain("SIGTERM: stopping the services.");
      expect(cli.stderr).not.toMatch(/error/i);
      // Only the scheduler ran: the late run is still Scheduled, and nothing more was scheduled.
      expect((await db.flowRuns.get(lateRun.id))?.state_name).toBe("Scheduled");
      expect(await db.flowRuns.count({ flow_runs: { deployment_id: { any_: [deployment.id] } } })).toBe(3);
    });

    it("exits 1 when every service is switched off", async () => {
      const off = Object.fromEntries(
        ["TASK_RUN_RECORDER", "REPOSSESSOR", "EVENT_PERSISTER", "SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "TRIGGERS", "ACTIONS"].map((name) => [`PREFECT_SERVER_SERVICES_${name}_ENABLED`, "false"]),
      );
      const { code, stderr } = await run(["services", "start"], { ...databaseEnv(config), ...off });
      expect(code).toBe(1);
      expect(stderr).toContain("No service is enabled; nothing to run.");
    });
  });
}
