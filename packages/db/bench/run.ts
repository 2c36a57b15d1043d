/**
 * `pnpm bench`: each hot path of @prefect/db beside the raw driver (better-sqlite3 / node-postgres)
 * running the same SQL, in the same process and on the same database, alternating in rounds so that
 * both see the same machine. Prints operations per second and the ratio ours / raw.
 *
 *   PREFECT_BENCH_POSTGRES_URL  PostgreSQL server to use (default postgresql://postgres@127.0.0.1:5432/postgres;
 *                               a scratch database is created there and dropped afterwards)
 *   PREFECT_BENCH_BACKENDS      sqlite,postgres (default both)
 *   PREFECT_BENCH_SECONDS       time per measurement (default 1)
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { loadDatabaseConfig, now, openDatabase, type Database as PrefectDatabase } from "@prefect/db";
import { type HotPath, runPaths, printResults, type Result } from "./measure.js";
import { postgresRaw, type RawPaths, sqliteRaw } from "./raw.js";

const seconds = Number(process.env.PREFECT_BENCH_SECONDS ?? "1");
const backends = (process.env.PREFECT_BENCH_BACKENDS ?? "sqlite,postgres").split(",").map((b) => b.trim());

function logBatch(runId: string, n: number) {
  const ts = now();
  return Array.from({ length: n }, (_, i) => ({ name: "prefect.flow_runs", level: 20, message: `log line ${i} of a batch`, timestamp: ts, flow_run_id: runId }));
}

function eventBatch(runId: string, flowId: string, n: number) {
  return Array.from({ length: n }, () => ({
    id: randomUUID(),
    occurred: now(),
    event: "prefect.task-run.Completed",
    resource: { "prefect.resource.id": `prefect.task-run.${randomUUID()}`, "prefect.resource.name": "my-task" },
    related: [
      { "prefect.resource.id": `prefect.flow-run.${runId}`, "prefect.resource.role": "flow-run" },
      { "prefect.resource.id": `prefect.flow.${flowId}`, "prefect.resource.role": "flow" },
    ],
    payload: { intended: { from: "RUNNING", to: "COMPLETED" } },
  }));
}

async function pathsFor(db: PrefectDatabase, raw: RawPaths): Promise<HotPath[]> {
  const { row: flow } = await db.flows.create({ name: "bench" });
  const { row: run } = await db.flowRuns.create({ flow_id: flow.id, state: { type: "RUNNING" } });
  const { row: rawRun } = await db.flowRuns.create({ flow_id: flow.id, state: { type: "RUNNING" } });
  return [
    {
      name: "create a flow run with its first state",
      ours: () => db.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" }, tags: ["bench"] }).then(() => undefined),
      raw: () => raw.createRun(flow.id),
    },
    {
      name: "write a state and move the run's pointer",
      ours: () => db.flowRuns.setState(run.id, { type: "RUNNING", state_details: { flow_run_id: run.id } }, { run_count: 1 }).then(() => undefined),
      raw: () => raw.setState(rawRun.id),
    },
    {
      name: "write a batch of 100 logs",
      ours: () => db.logs.createMany(logBatch(run.id, 100)).then(() => undefined),
      raw: () => raw.insertLogs(logBatch(rawRun.id, 100)),
    },
    {
      name: "write a batch of 50 events (3 resources each)",
      ours: () => db.events.createMany(eventBatch(run.id, flow.id, 50)).then(() => undefined),
      raw: () => raw.insertEvents(eventBatch(rawRun.id, flow.id, 50)),
    },
  ];
}

async function benchSqlite(): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), "prefect-bench-"));
  const path = join(dir, "bench.db");
  try {
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: path }));
    const conn = new Database(path, { timeout: 5000 });
    conn.pragma("journal_mode = WAL");
    conn.pragma("foreign_keys = ON");
    conn.pragma("synchronous = NORMAL");
    try {
      return await runPaths("sqlite", await pathsFor(db, sqliteRaw(conn)), seconds);
    } finally {
      conn.close();
      await db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPostgres(): Promise<Result[]> {
  const adminUrl = process.env.PREFECT_BENCH_POSTGRES_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
  const name = `prefect_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  try {
    await admin.connect();
  } catch (error) {
    process.stdout.write(`postgres: skipped, no server at ${adminUrl.replace(/:[^:@/]*@/, ":***@")} (${String(error)})\n`);
    return [];
  }
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  try {
    const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_URL: url.toString() }));
    const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
    // Dropping the scratch database ends connections the pool may not have closed yet; that is no error.
    pool.on("error", () => undefined);
    try {
      return await runPaths("postgres", await pathsFor(db, postgresRaw(pool)), seconds);
    } finally {
      await pool.end();
      await db.close();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const results: Result[] = [];
  if (backends.includes("sqlite")) results.push(...(await benchSqlite()));
  if (backends.includes("postgres")) results.push(...(await benchPostgres()));
  printResults(results);
}

await main();
