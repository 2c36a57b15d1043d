#!/usr/bin/env node
/**
 * `pnpm bench [e2e|db] [--smoke] [--profile[=FIGURE]] [--markdown]`: the end-to-end bench (this
 * package), then @prefect/db's own bench beside the raw driver (its `bench` script). Exit codes: 0
 * when every part ran, 1 when one failed, 2 for bad arguments or settings.
 */
import { spawn } from "node:child_process";
import { dirname } from "node:path";
import { BENCH_DIR } from "./apps.js";
import { runEndToEnd } from "./e2e.js";
import { type BenchSettings, parseSettings, USAGE, UsageError } from "./settings.js";

/** @prefect/db's bench, through pnpm as `pnpm --filter @prefect/db run bench` runs it. */
async function runDatabaseBench(settings: BenchSettings): Promise<void> {
  const pnpm = process.env.npm_execpath;
  const [command, args] =
    pnpm && /\.c?js$/.test(pnpm) ? [process.execPath, [pnpm]] : [pnpm && pnpm.length > 0 ? pnpm : "pnpm", [] as string[]];
  const env: NodeJS.ProcessEnv = { ...process.env, PREFECT_BENCH_SECONDS: String(settings.seconds) };
  // The database bench's own default (1 s) unless seconds were asked for.
  if (!process.env.PREFECT_BENCH_SECONDS?.trim() && !settings.smoke) delete env.PREFECT_BENCH_SECONDS;
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(command, [...args, "--silent", "--filter", "@prefect/db", "run", "bench"], { cwd: dirname(BENCH_DIR), env, stdio: "inherit" });
    child.once("error", reject);
    child.once("exit", (exitCode) => resolve(exitCode));
  });
  if (code !== 0) throw new Error(`the @prefect/db bench failed (exit code ${code})`);
}

async function main(): Promise<number> {
  let settings: BenchSettings;
  try {
    if (process.argv.includes("--help") || process.argv.includes("-h")) {
      process.stdout.write(USAGE);
      return 0;
    }
    settings = parseSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`Error: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  for (const part of settings.parts) {
    if (part === "e2e") await runEndToEnd(settings, Boolean(process.env.PREFECT_BENCH_BACKENDS?.trim()));
    else {
      process.stdout.write("\n@prefect/db beside the raw driver\n");
      await runDatabaseBench(settings);
    }
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`The bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
