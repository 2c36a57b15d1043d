/**
 * Prisma's own tools work on a database this package writes:
 *  (a) the generated Prisma client (through its driver adapter) reads every row our repositories
 *      write, with the values our own SQL reads back: timestamps as the same instant (to the
 *      millisecond, a Date's precision), JSON parsed, booleans, enums;
 *  (b) Prisma's migration engine agrees with the history our migrator keeps in _prisma_migrations:
 *      nothing unapplied, failed or edited, and no drift between the migrations and the database.
 *
 * SQLite runs on a file database (Prisma's connection cannot see another connection's in-memory one).
 */
import { randomUUID } from "node:crypto";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaClient as PostgresPrismaClient } from "../../src/generated/postgres/client.js";
import { PrismaClient as SqlitePrismaClient } from "../../src/generated/sqlite/client.js";
import { backendFor } from "../../src/backends/index.js";
import type { Driver } from "../../src/driver/types.js";
import { type Database, type DatabaseConfig, openDatabase, type Timestamp, toDate } from "../../src/index.js";
import { sql } from "../../src/sql.js";
import { rowDecoder, selectList, tables } from "../../src/tables.js";
import { selectedBackends, type TestBackend } from "../../src/testing/backends.js";
import { freshConfig } from "../../src/testing/database.js";
import { columnOf, engineCall, loadDatamodel, migrationsList, NO_FILTER, openSchemaEngine, type Provider, readMigrations, readSchema, tableOf } from "./prisma.js";

type Row = Record<string, unknown>;
interface Delegate {
  findMany(args?: unknown): Promise<Row[]>;
  findUniqueOrThrow(args: unknown): Promise<Row>;
  findFirstOrThrow(args: unknown): Promise<Row>;
  create(args: unknown): Promise<Row>;
}
interface PrismaLike {
  $disconnect(): Promise<void>;
  [model: string]: unknown;
}

function openPrisma(config: DatabaseConfig): PrismaLike {
  if (config.backend === "sqlite") return new SqlitePrismaClient({ adapter: new PrismaBetterSqlite3({ url: `file:${config.path}` }) }) as unknown as PrismaLike;
  return new PostgresPrismaClient({ adapter: new PrismaPg({ connectionString: config.url }) }) as unknown as PrismaLike;
}

/** The client's delegate for a model: `FlowRun` -> `prisma.flowRun`. */
function delegate(prisma: PrismaLike, model: string): Delegate {
  const d = prisma[model.charAt(0).toLowerCase() + model.slice(1)];
  if (!d) throw new Error(`the Prisma client has no model ${model}`);
  return d as Delegate;
}

async function openDriver(config: DatabaseConfig): Promise<Driver> {
  return backendFor(config).connect({ ...config, timeoutSeconds: 5 });
}

/** Every row of every table as this package's own SQL and decoders read it, by table, sorted by id. */
async function readAllOurWay(config: DatabaseConfig): Promise<Map<string, Row[]>> {
  const driver = await openDriver(config);
  try {
    const result = new Map<string, Row[]>();
    for (const spec of Object.values(tables)) {
      const rows = await driver.query(sql`SELECT ${selectList(spec, "t")} FROM ${sql.ident(spec.name)} t`);
      result.set(spec.name, rows.map(rowDecoder(driver.dialect, spec)).sort(byId));
    }
    return result;
  } finally {
    await driver.close();
  }
}

const byId = (a: Row, b: Row) => String(a.id).localeCompare(String(b.id));

/** What Prisma should return for a row we read: timestamps become Dates (millisecond precision). */
function asPrismaSees(table: string, row: Row, bigIntColumns: ReadonlySet<string>): Row {
  const spec = Object.values(tables).find((t) => t.name === table)!;
  const out: Row = {};
  for (const [column, kind] of Object.entries(spec.columns)) {
    const value = row[column];
    if (value !== null && kind === "timestamp") out[column] = toDate(value as Timestamp);
    else if (value !== null && bigIntColumns.has(column)) out[column] = BigInt(value as number);
    else out[column] = value;
  }
  return out;
}

const at = (iso: string) => iso as Timestamp;

/** Writes one of everything through the repositories. */
async function writeSample(db: Database) {
  const flow = (await db.flows.create({ name: "etl", tags: ["nightly", "ü-ñ"], labels: { team: "data", priority: 2, critical: true } })).row;
  const blockType = await db.blocks.createType({
    name: "S3 Bucket",
    slug: "s3-bucket",
    logo_url: "https://example.com/logo.png",
    description: "Stores things",
    is_protected: true,
  });
  const blockSchema = (
    await db.blocks.createSchema({
      checksum: "sha256:0123abcd",
      fields: { title: "S3Bucket", properties: { bucket: { type: "string" } }, required: ["bucket"] },
      capabilities: ["read-path", "write-path"],
      block_type_id: blockType.id,
    })
  ).row;
  const nestedSchema = (
    await db.blocks.createSchema({ checksum: "sha256:4567ef01", fields: { title: "AwsCredentials" }, block_type_id: blockType.id })
  ).row;
  await db.blocks.addSchemaReference({ name: "credentials", parent_block_schema_id: blockSchema.id, reference_block_schema_id: nestedSchema.id });
  const document = await db.blocks.createDocument({
    name: "prod-bucket",
    data: { bucket: "prod", credentials: { key: "k", nested: [1, 2.5, null, true] } },
    block_type_id: blockType.id,
    block_schema_id: blockSchema.id,
  });
  const anonymous = await db.blocks.createDocument({ data: "an encrypted token", is_anonymous: true, block_type_id: blockType.id, block_schema_id: blockSchema.id });
  await db.blocks.addDocumentReference({ name: "inner", parent_block_document_id: document.id, reference_block_document_id: anonymous.id });

  const flowRun = (
    await db.flowRuns.create({
      flow_id: flow.id,
      name: "brave-otter",
      parameters: { x: 1, y: [1, "a", { z: null }], unicode: "日本" },
      context: { source: "test" },
      empirical_policy: { retries: 2, retry_delay: 10 },
      tags: ["t1"],
      labels: { env: "prod" },
      created_by: { id: randomUUID(), type: "DEPLOYMENT", display_value: "nightly" },
      job_variables: { image: "python:3.12" },
      idempotency_key: "idem-1",
      infrastructure_document_id: document.id,
      auto_scheduled: true,
      expected_start_time: "2026-11-22T10:00:00.123456Z",
      next_scheduled_start_time: "2026-11-22T10:00:00.123456Z",
      state: { type: "SCHEDULED", timestamp: "2026-11-22T09:59:59.999999Z", state_details: { scheduled_time: "2026-11-22T10:00:00.123456Z" } },
    })
  ).row;
  const running = await db.flowRuns.setState(
    flowRun.id,
    { type: "RUNNING", timestamp: "2026-11-22T10:00:01.000500Z", message: "started", data: 42, state_details: { flow_run_id: flowRun.id } },
    { run_count: 1, start_time: "2026-11-22T10:00:01.000500Z", total_run_time: 1.25 },
  );
  const taskRun = (
    await db.taskRuns.create({
      flow_run_id: flowRun.id,
      task_key: "extract-1a2b",
      dynamic_key: "0",
      cache_key: "cache-abc",
      cache_expiration: "2026-12-01T00:00:00.000001Z",
      task_inputs: { x: [{ input_type: "parameter", name: "x" }] },
      flow_run_run_count: 1,
      state: { type: "COMPLETED", timestamp: "2026-11-22T10:00:02.5Z", data: { storage_key: "/tmp/result", expiration: null } },
    })
  ).row;
  await db.taskRuns.cacheState({ cache_key: "cache-abc", cache_expiration: at("2026-12-01T00:00:00.000001Z"), task_run_state_id: taskRun.state!.id });
  const logs = await db.logs.createMany([
    { name: "prefect.flow_runs", level: 20, message: "Hello\nworld", timestamp: "2026-11-22T10:00:01.234567Z", flow_run_id: flowRun.id },
    { name: "prefect.task_runs", level: 40, message: "Boom", timestamp: "2026-11-22T10:00:02.000001Z", flow_run_id: flowRun.id, task_run_id: taskRun.id },
  ]);
  const [event] = await db.events.createMany([
    {
      id: randomUUID(),
      occurred: "2026-11-22T10:00:01.000500Z",
      event: "prefect.flow-run.Running",
      resource: { "prefect.resource.id": `prefect.flow-run.${flowRun.id}`, "prefect.resource.name": "brave-otter" },
      related: [{ "prefect.resource.id": `prefect.flow.${flow.id}`, "prefect.resource.role": "flow" }],
      payload: { intended: { from: "SCHEDULED", to: "RUNNING" } },
    },
  ]);
  await db.configuration.set("ENCRYPTION_KEY", "c2VjcmV0");
  await db.concurrencyLimits.create({ name: "db-connections", limit: 10, active_slots: 2, denied_slots: 1, slot_decay_per_second: 0.5 });
  await db.concurrencyLimits.incrementActiveSlots({ names: ["db-connections"] }, 1);
  await db.concurrencyLimits.decrementActiveSlots({ names: ["db-connections"] }, 1, { occupancy_seconds: 3.25 });
  const etl = await db.concurrencyLimits.createTagLimit({ tag: "etl", concurrency_limit: 3 });
  await db.concurrencyLeases.createLease([etl.row.id], 300, { slots: 1, holder: { type: "task_run", id: flowRun.id } });
  await db.concurrencyLeases.createLease([etl.row.id], 60);
  // A legacy v1 tag limit, as only a pre-2025 Prefect database holds (nothing in this package inserts one).
  const legacy = await openDriver(db.config);
  try {
    await legacy.execute(
      sql`INSERT INTO concurrency_limit (id, created, updated, tag, concurrency_limit, active_slots)
          VALUES (${randomUUID()}, ${"2025-01-02T03:04:05.123456Z"}, ${"2025-01-02T03:04:05.123456Z"}, ${"legacy"}, ${2}, ${sql.json([taskRun.id])})`,
    );
  } finally {
    await legacy.close();
  }
  await db.variables.create({ name: "api_settings", value: { url: "https://example.com", retries: 3, nested: [1.5, null, "ü"] }, tags: ["prod"] });
  await db.variables.create({ name: "unset", value: null });
  await db.savedSearches.create({ name: "failed runs", filters: [{ object: "flow_run", property: "state", type: "string", operation: "equals", value: "FAILED" }] });
  await db.flowRunInputs.create({ flow_run_id: flowRun.id, key: "approval-1", value: '{"approved": true}', sender: "ui" });
  await db.csrfTokens.createOrUpdate("browser-1");
  await db.artifacts.create({
    key: "report",
    type: "table",
    description: "Rows",
    data: { zeta: [1, 2.5, "ü"], alpha: null },
    metadata_: { rows: "2" },
    flow_run_id: flowRun.id,
    task_run_id: taskRun.id,
  });
  await db.artifacts.create({ key: "report", type: "markdown", data: "# second version" });
  await db.artifacts.create({ type: "result", data: 42 });
  const automation = await db.automations.create({
    name: "on failure",
    description: "retry elsewhere",
    tags: ["prod"],
    trigger: { type: "event", id: randomUUID(), expect: ["prefect.flow-run.Failed"], posture: "Reactive", threshold: 1, within: 0 },
    actions: [{ type: "run-deployment", source: "selected", deployment_id: randomUUID(), parameters: null }],
    actions_on_trigger: [{ type: "do-nothing" }],
    owner_resource: `prefect.flow.${flow.id}`,
  });
  await db.automations.startNewBucket({
    automation_id: automation.id,
    trigger_id: randomUUID(),
    bucketing_key: ["prefect.flow-run.x", "ü"],
    start: "2026-11-22T10:00:00.000001Z",
    end: "2026-11-22T10:05:00Z",
    count: 2,
    triggered_at: "2026-11-22T10:01:00.5Z",
    last_event: { id: randomUUID(), event: "prefect.flow-run.Failed" },
  });
  await db.automations.upsertChildFiring({
    automation_id: automation.id,
    parent_trigger_id: randomUUID(),
    child_trigger_id: randomUUID(),
    child_firing_id: randomUUID(),
    child_fired_at: "2026-11-22T10:01:00.000002Z",
    child_firing: { trigger_states: ["Triggered"], triggering_labels: {} },
  });
  await db.transaction((tx) => tx.events.claimGroupBatch("sample", 1));
  await db.automations.addFollower({
    scope: "triggers",
    leader_event_id: randomUUID(),
    follower_event_id: randomUUID(),
    received: "2026-11-22T10:00:01.000003Z",
    follower: { event: "prefect.flow-run.Running", occurred: "2026-11-22T10:00:01Z" },
  });
  await db.automations.enqueueActions([{ automation_id: randomUUID(), action_index: 2, triggered_action: { id: randomUUID(), action: { type: "do-nothing" } } }]);
  const deployment = (
    await db.deployments.create({
      name: "nightly-etl",
      flow_id: flow.id,
      version: "1.2",
      description: "Runs nightly",
      concurrency_limit: 4,
      concurrency_options: { collision_strategy: "CANCEL_NEW", grace_period_seconds: 300 },
      job_variables: { image: "python:3.12", env: { A: "ü" } },
      parameters: { x: 1, unicode: "日本" },
      parameter_openapi_schema: { type: "object", properties: { x: { type: "integer" } } },
      pull_steps: [{ "prefect.deployments.steps.set_working_directory": { directory: "/opt" } }],
      tags: ["etl"],
      labels: { tier: 1 },
      work_queue_name: "default",
      path: "/opt",
      entrypoint: "flows.py:etl",
      storage_document_id: document.id,
      infrastructure_document_id: document.id,
      created_by: { id: randomUUID(), type: "USER", display_value: "me" },
      updated_by: { id: randomUUID(), type: "USER", display_value: "me" },
      version_id: randomUUID(),
      schedules: [
        { schedule: { interval: 3600.5, anchor_date: "2026-11-22T10:00:00.000001Z", timezone: "Europe/Paris" }, slug: "hourly", max_scheduled_runs: 10, parameters: { x: 2 } },
        { schedule: { cron: "0 9 * * mon-fri", timezone: "America/New_York", day_or: false }, active: false },
        { schedule: { rrule: "FREQ=WEEKLY;BYDAY=MO" } },
      ],
    })
  ).row;
  await db.deployments.markReady({ deploymentIds: [deployment.id] });
  await db.deployments.createVersion(deployment.id, {
    branch: "main",
    version_info: { type: "vcs:git", version: "abc123" },
    description: "first",
    tags: ["etl"],
    labels: { tier: 1 },
    entrypoint: "flows.py:etl",
    pull_steps: [{ step: { x: null } }],
    parameters: { x: 1 },
    parameter_openapi_schema: { type: "object" },
    enforce_parameter_schema: true,
    work_queue_name: "default",
    job_variables: { image: "python:3.12" },
  });
  const pool = await db.workPools.create({
    name: "kubernetes-pool",
    type: "kubernetes",
    description: "pods",
    base_job_template: { job_configuration: { image: "{{ image }}" }, variables: { properties: { image: { type: "string" } } } },
    concurrency_limit: 7,
  });
  const queue = await db.workQueues.create(pool.id, { name: "critical", description: "first", concurrency_limit: 2, priority: 1 });
  await db.workers.heartbeat(pool.id, { name: "worker-ü", heartbeat_interval_seconds: 30 });
  await db.workQueues.markPolled([queue.id]);
  // A Prefect 2 agent, as only a database migrated from Prefect 2 holds (nothing in this package inserts one).
  const agents = await openDriver(db.config);
  try {
    await agents.execute(
      sql`INSERT INTO agent (id, created, updated, name, work_queue_id, last_activity_time)
          VALUES (${randomUUID()}, ${"2024-06-01T12:00:00.654321Z"}, ${"2024-06-01T12:00:00.654321Z"}, ${"agent-1"}, ${queue.id}, ${"2024-06-01T12:00:01.000001Z"})`,
    );
  } finally {
    await agents.close();
  }
  return { flow, blockType, blockSchema, document, anonymous, flowRun, running, taskRun, logs, event: event! };
}

const targets = [...new Set(selectedBackends().map((b): TestBackend => (b === "postgres" ? "postgres" : "sqlite-file")))];

for (const backend of targets) {
  const provider: Provider = backend === "postgres" ? "postgres" : "sqlite";

  describe(`the generated Prisma client reads what our repositories write [${backend}]`, () => {
    let config: DatabaseConfig;
    let remove: () => Promise<void>;
    let db: Database;
    let prisma: PrismaLike;
    let sample: Awaited<ReturnType<typeof writeSample>>;

    beforeAll(async () => {
      ({ config, remove } = await freshConfig(backend, { empty: true }));
      db = await openDatabase(config);
      sample = await writeSample(db);
      prisma = openPrisma(config);
    });

    afterAll(async () => {
      await prisma?.$disconnect();
      await db?.close();
      await remove?.();
    });

    it("reads every row of every table with the values our own SQL reads", async () => {
      const ours = await readAllOurWay(config);
      const dm = await loadDatamodel(provider);
      const empty: string[] = [];
      for (const model of dm.models) {
        const table = tableOf(model);
        const bigInts = new Set(model.fields.filter((f) => f.type === "BigInt").map((f) => columnOf(f)));
        const expected = (ours.get(table) ?? []).map((row) => asPrismaSees(table, row, bigInts));
        if (expected.length === 0) empty.push(table);
        const actual = (await delegate(prisma, model.name).findMany()).sort(byId);
        expect(actual, `table ${table} read by Prisma (model ${model.name})`).toEqual(expected);
      }
      // Every table holds rows, so every column of every kind was compared.
      expect(empty).toEqual([]);
    });

    it("reads the values that were written: timestamps, JSON, booleans, enums, numbers", async () => {
      const { flow, flowRun, running, taskRun, document, anonymous, event } = sample;
      const f = await delegate(prisma, "Flow").findUniqueOrThrow({ where: { id: flow.id } });
      expect(f).toMatchObject({ name: "etl", tags: ["nightly", "ü-ñ"], labels: { team: "data", priority: 2, critical: true } });
      expect((f.created as Date).getTime()).toBe(toDate(flow.created).getTime());

      const r = await delegate(prisma, "FlowRun").findUniqueOrThrow({ where: { id: flowRun.id } });
      expect(r).toMatchObject({
        state_type: "RUNNING",
        state_name: "Running",
        state_id: running.id,
        state_timestamp: new Date("2026-11-22T10:00:01.000Z"),
        expected_start_time: new Date("2026-11-22T10:00:00.123Z"),
        start_time: new Date("2026-11-22T10:00:01.000Z"),
        end_time: null,
        run_count: 1,
        total_run_time: 1.25,
        parameters: { x: 1, y: [1, "a", { z: null }], unicode: "日本" },
        empirical_policy: { retries: 2, retry_delay: 10 },
        job_variables: { image: "python:3.12" },
        auto_scheduled: true,
        idempotency_key: "idem-1",
        infrastructure_document_id: document.id,
      });

      const states = await delegate(prisma, "FlowRunState").findMany({ where: { flow_run_id: flowRun.id }, orderBy: { timestamp: "asc" } });
      expect(states.map((s) => [s.type, (s.timestamp as Date).toISOString(), s.data, s.message])).toEqual([
        ["SCHEDULED", "2026-11-22T09:59:59.999Z", null, null],
        ["RUNNING", "2026-11-22T10:00:01.000Z", 42, "started"],
      ]);

      const t = await delegate(prisma, "TaskRun").findUniqueOrThrow({ where: { id: taskRun.id } });
      expect(t).toMatchObject({ state_type: "COMPLETED", cache_key: "cache-abc", cache_expiration: new Date("2026-12-01T00:00:00.000Z"), flow_run_run_count: 1 });
      const ts = await delegate(prisma, "TaskRunState").findUniqueOrThrow({ where: { id: taskRun.state!.id } });
      expect(ts).toMatchObject({ type: "COMPLETED", timestamp: new Date("2026-11-22T10:00:02.500Z"), data: { storage_key: "/tmp/result", expiration: null } });

      const logs = await delegate(prisma, "Log").findMany({ orderBy: { timestamp: "asc" } });
      expect(logs.map((l) => [l.level, l.message, (l.timestamp as Date).toISOString(), l.task_run_id])).toEqual([
        [20, "Hello\nworld", "2026-11-22T10:00:01.234Z", null],
        [40, "Boom", "2026-11-22T10:00:02.000Z", taskRun.id],
      ]);

      const e = await delegate(prisma, "Event").findUniqueOrThrow({ where: { id: event.id } });
      expect(e).toMatchObject({
        event: "prefect.flow-run.Running",
        occurred: new Date("2026-11-22T10:00:01.000Z"),
        resource_id: `prefect.flow-run.${flowRun.id}`,
        related: [{ "prefect.resource.id": `prefect.flow.${flow.id}`, "prefect.resource.role": "flow" }],
        payload: { intended: { from: "SCHEDULED", to: "RUNNING" } },
      });
      const resources = await delegate(prisma, "EventResource").findMany({ where: { event_id: event.id }, orderBy: { resource_role: "asc" } });
      expect(resources.map((x) => [x.resource_role, x.resource_id])).toEqual([
        ["", `prefect.flow-run.${flowRun.id}`],
        ["flow", `prefect.flow.${flow.id}`],
      ]);

      const docs = await delegate(prisma, "BlockDocument").findMany({ orderBy: { is_anonymous: "asc" } });
      expect(docs.map((d) => [d.id, d.is_anonymous, d.data])).toEqual([
        [document.id, false, { bucket: "prod", credentials: { key: "k", nested: [1, 2.5, null, true] } }],
        [anonymous.id, true, "an encrypted token"],
      ]);
      const type = await delegate(prisma, "BlockType").findUniqueOrThrow({ where: { id: sample.blockType.id } });
      expect(type).toMatchObject({ slug: "s3-bucket", is_protected: true, code_example: null });
      const schema = await delegate(prisma, "BlockSchema").findUniqueOrThrow({ where: { id: sample.blockSchema.id } });
      expect(schema).toMatchObject({ capabilities: ["read-path", "write-path"], version: "non-versioned" });
      const setting = await delegate(prisma, "Configuration").findFirstOrThrow({ where: { key: "ENCRYPTION_KEY" } });
      expect(setting.value).toBe("c2VjcmV0");
    });

    it("writes rows (as Prisma Studio would) that our repositories read back", async () => {
      const created = await delegate(prisma, "Flow").create({ data: { name: "made-by-prisma", tags: ["studio"], labels: { a: "b" } } });
      const ours = await db.flows.getByName("made-by-prisma");
      expect(ours).toMatchObject({ id: created.id, tags: ["studio"], labels: { a: "b" } });
      expect(toDate(ours!.created).getTime()).toBe((created.created as Date).getTime());
      expect(ours!.created).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    });
  });

  describe(`Prisma Migrate agrees with the history our migrator keeps [${backend}]`, () => {
    let config: DatabaseConfig;
    let remove: () => Promise<void>;
    let target: string;

    beforeAll(async () => {
      ({ config, remove } = await freshConfig(backend, { empty: true }));
      const db = await openDatabase(config);
      await db.close();
      target = config.backend === "sqlite" ? config.path : config.url;
    });

    afterAll(async () => {
      await remove?.();
    });

    it("diagnoseMigrationHistory finds no unapplied, failed or edited migration", async () => {
      const { engine, close } = await openSchemaEngine(provider, target);
      try {
        const diagnosis = await engineCall(() =>
          engine.diagnoseMigrationHistory({ migrationsList: migrationsList(provider), optInToShadowDatabase: true, filters: NO_FILTER }),
        );
        expect(diagnosis).toEqual({ editedMigrationNames: [], failedMigrationNames: [], hasMigrationsTable: true, history: null });
      } finally {
        await close();
      }
    });

    it("finds no drift: the migrations replayed on a shadow database give this database", async () => {
      const { engine, close } = await openSchemaEngine(provider, target);
      try {
        const { action } = await engineCall(() => engine.devDiagnostic({ migrationsList: migrationsList(provider), filters: NO_FILTER }));
        // Any drift, edited or failed migration makes Prisma ask for a reset, with the reason.
        expect(action).toEqual({ tag: "createMigration" });
      } finally {
        await close();
      }
    });

    if (provider === "postgres") {
      // On SQLite, Prisma would spell some defaults differently (CURRENT_TIMESTAMP, not our canonical
      // timestamp text) and name foreign keys itself; drift.test.ts compares that schema in detail.
      it("sees no difference between the migrations and schema.prisma (prisma migrate diff)", async () => {
        const { engine, close } = await openSchemaEngine(provider, target);
        try {
          const diff = await engineCall(() =>
            engine.diff({
              from: { tag: "migrations", ...migrationsList(provider) },
              to: { tag: "schemaDatamodel", files: [{ path: "schema.prisma", content: readSchema(provider) }] },
              script: true,
              exitCode: true,
              filters: NO_FILTER,
            }),
          );
          expect(diff.stdout).toBe("-- This is an empty migration.\n");
          expect(diff.exitCode).toBe(0);
        } finally {
          await close();
        }
      });
    }

    it("leaves nothing for our migrator to do on a database Prisma migrated", async () => {
      const other = await freshConfig(backend, { empty: true });
      try {
        const prismaTarget = other.config.backend === "sqlite" ? other.config.path : other.config.url;
        const { engine, close } = await openSchemaEngine(provider, prismaTarget);
        try {
          const { appliedMigrationNames } = await engineCall(() => engine.applyMigrations({ migrationsList: migrationsList(provider), filters: NO_FILTER }));
          expect(appliedMigrationNames).toEqual(readMigrations(provider).map((m) => m.name));
        } finally {
          await close();
        }
        const db = await openDatabase(other.config, { migrate: false });
        try {
          const status = await db.migrationStatus();
          expect(status).toMatchObject({ pending: [], unknown: [], modified: [], failed: [] });
          expect(status.applied.map((m) => m.name)).toEqual(readMigrations(provider).map((m) => m.name));
          expect(await db.migrate()).toEqual([]);
        } finally {
          await db.close();
        }
      } finally {
        await other.remove();
      }
    });
  });
}
