import { beforeEach, describe, expect, it } from "vitest";
import {
  AlreadyExistsError,
  type Deployment,
  type DeploymentCreate,
  type DeploymentReadOptions,
  type Flow,
  type FlowRunCreate,
  InvalidError,
  NotFoundError,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const PAST = "2020-01-01T00:00:00.000000Z";
const FUTURE = "2999-01-01T00:00:00.000000Z";

describeEachBackend("deployments", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl", labels: { team: "data", tier: 1 } })).row;
  });

  const create = async (input: Partial<DeploymentCreate> = {}) => (await t.db.deployments.create({ name: "nightly", flow_id: flow.id, ...input })).row;
  const run = async (deploymentId: string, input: Partial<FlowRunCreate> = {}) =>
    (await t.db.flowRuns.create({ flow_id: flow.id, deployment_id: deploymentId, ...input })).row;

  describe("create", () => {
    it("inserts a deployment with Prefect's defaults and reads it back", async () => {
      const { row, created } = await t.db.deployments.create({ name: "nightly", flow_id: flow.id });
      expect(created).toBe(true);
      expect(row).toMatchObject({
        name: "nightly",
        flow_id: flow.id,
        version: null,
        description: null,
        paused: false,
        status: "NOT_READY",
        last_polled: null,
        concurrency_limit: null,
        concurrency_limit_id: null,
        global_concurrency_limit: null,
        concurrency_options: null,
        job_variables: {},
        parameters: {},
        parameter_openapi_schema: {},
        enforce_parameter_schema: true,
        pull_steps: [],
        tags: [],
        work_queue_name: null,
        work_queue_id: null,
        work_pool_name: null,
        created_by: null,
        updated_by: null,
        schedules: [],
      });
      expect(row.created).toBe(row.updated);
      expect(await t.db.deployments.get(row.id)).toEqual(row);
    });

    it("labels the deployment with its flow's labels and prefect.flow.id, given labels winning", async () => {
      const row = await create({ labels: { tier: 2, env: "prod" } });
      expect(row.labels).toEqual({ team: "data", tier: 2, env: "prod", "prefect.flow.id": flow.id });
    });

    it("reads back every field as created, job_variables included", async () => {
      const limit = await t.db.concurrencyLimits.create({ name: "shared", limit: 3 });
      const pool = await t.db.workPools.create({ name: "pool", type: "process" });
      const row = await create({
        id: uuid(7),
        version: "1.0",
        description: "nightly ETL",
        paused: true,
        concurrency_limit_id: limit.id,
        concurrency_options: { collision_strategy: "CANCEL_NEW", grace_period_seconds: 120 },
        job_variables: { image: "python:3.12", env: { A: "1" } },
        parameters: { n: 1, nested: { list: [1, "two"] } },
        parameter_openapi_schema: { type: "object", properties: { n: { type: "integer" } } },
        enforce_parameter_schema: false,
        pull_steps: [{ "prefect.deployments.steps.git_clone": { repository: "https://example.com/r.git" } }],
        tags: ["a", "b"],
        work_queue_name: "default",
        work_queue_id: pool.default_queue_id,
        path: "/srv",
        entrypoint: "flows.py:etl",
        created_by: { id: uuid(3), type: "USER", display_value: "me" },
        updated_by: { id: uuid(4), type: "USER", display_value: "you" },
        version_id: uuid(5),
      });
      expect(row).toMatchObject({
        id: uuid(7),
        version: "1.0",
        description: "nightly ETL",
        paused: true,
        concurrency_limit_id: limit.id,
        global_concurrency_limit: { id: limit.id, name: "shared", limit: 3, active: true, active_slots: 0 },
        concurrency_options: { collision_strategy: "CANCEL_NEW", grace_period_seconds: 120 },
        job_variables: { image: "python:3.12", env: { A: "1" } },
        parameters: { n: 1, nested: { list: [1, "two"] } },
        parameter_openapi_schema: { type: "object", properties: { n: { type: "integer" } } },
        enforce_parameter_schema: false,
        pull_steps: [{ "prefect.deployments.steps.git_clone": { repository: "https://example.com/r.git" } }],
        tags: ["a", "b"],
        work_queue_name: "default",
        work_queue_id: pool.default_queue_id,
        work_pool_name: "pool",
        path: "/srv",
        entrypoint: "flows.py:etl",
        created_by: { id: uuid(3), type: "USER", display_value: "me" },
        updated_by: { id: uuid(4), type: "USER", display_value: "you" },
        version_id: uuid(5),
      });
      expect(await t.db.deployments.get(row.id)).toEqual(row);
    });

    it("accepts infrastructure and storage block documents", async () => {
      const type = await t.db.blocks.createType({ name: "Storage", slug: "storage" });
      const { row: schema } = await t.db.blocks.createSchema({ checksum: "sha256:1", block_type_id: type.id });
      const doc = await t.db.blocks.createDocument({ name: "s3", data: {}, block_type_id: type.id, block_schema_id: schema.id });
      const row = await create({ storage_document_id: doc.id, infrastructure_document_id: doc.id });
      expect(row).toMatchObject({ storage_document_id: doc.id, infrastructure_document_id: doc.id });
    });

    it("updates the existing deployment for the same flow and name, keeping what is not given", async () => {
      const first = await create({
        description: "keep me",
        tags: ["old"],
        job_variables: { image: "a" },
        created_by: { id: uuid(1), type: "USER", display_value: "creator" },
        updated_by: { id: uuid(1), type: "USER", display_value: "creator" },
        paused: true,
      });
      const again = await t.db.deployments.create({
        name: "nightly",
        flow_id: flow.id,
        tags: ["new"],
        job_variables: {},
        created_by: { id: uuid(2), type: "USER", display_value: "someone else" },
        updated_by: { id: uuid(2), type: "USER", display_value: "someone else" },
      });
      expect(again.created).toBe(false);
      expect(again.row.id).toBe(first.id);
      expect(again.row.created).toBe(first.created);
      expect(again.row.updated > first.updated).toBe(true);
      expect(again.row).toMatchObject({
        description: "keep me",
        tags: ["new"],
        paused: true,
        job_variables: { image: "a" },
        created_by: { id: uuid(1), display_value: "creator" },
        updated_by: { id: uuid(2), display_value: "someone else" },
      });
      expect(await t.db.deployments.count()).toBe(1);
    });

    it("keeps the id of the existing deployment on an upsert that names another id", async () => {
      const first = await create();
      const again = await t.db.deployments.create({ id: uuid(9), name: "nightly", flow_id: flow.id });
      expect(again).toMatchObject({ created: false, row: { id: first.id } });
      expect(await t.db.deployments.get(uuid(9))).toBeNull();
    });

    it("refuses an id another deployment has", async () => {
      await create({ id: uuid(1) });
      await expect(create({ id: uuid(1), name: "other" })).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("replaces the schedules on an upsert, removing them when none are given", async () => {
      const first = await create({ schedules: [{ schedule: { interval: 60 }, slug: "a" }, { schedule: { cron: "0 0 * * *" }, slug: "b" }] });
      expect(first.schedules.map((s) => s.slug).sort()).toEqual(["a", "b"]);
      const second = await create({ schedules: [{ schedule: { rrule: "DTSTART:20200101T000000\nFREQ=DAILY" }, slug: "c", active: false }] });
      expect(second.schedules).toMatchObject([{ slug: "c", active: false, schedule: { rrule: "DTSTART:20200101T000000\nFREQ=DAILY", timezone: "UTC" } }]);
      const third = await create();
      expect(third.schedules).toEqual([]);
      expect(await t.db.deployments.readSchedules(first.id)).toEqual([]);
    });

    it("deletes the deployment's future auto-scheduled runs on an upsert, and only those", async () => {
      const d = await create();
      const future = await run(d.id, { auto_scheduled: true, state: { type: "SCHEDULED" }, next_scheduled_start_time: FUTURE });
      const due = await run(d.id, { auto_scheduled: true, state: { type: "SCHEDULED" }, next_scheduled_start_time: PAST });
      const manual = await run(d.id, { auto_scheduled: false, state: { type: "SCHEDULED" }, next_scheduled_start_time: FUTURE });
      await create({ description: "changed" });
      expect(await t.db.flowRuns.get(future.id)).toBeNull();
      expect(await t.db.flowRuns.get(due.id)).not.toBeNull();
      expect(await t.db.flowRuns.get(manual.id)).not.toBeNull();
    });

    it("gives one deployment to concurrent creates of the same flow and name", async () => {
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => t.db.deployments.create({ name: "race", flow_id: flow.id, description: `d${i}` })));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
      expect(await t.db.deployments.count()).toBe(1);
    });

    it("refuses an unknown flow and unknown referenced rows", async () => {
      await expect(t.db.deployments.create({ name: "x", flow_id: MISSING })).rejects.toThrow(/Flow .* not found/);
      await expect(t.db.deployments.create({ name: "x", flow_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ concurrency_limit_id: MISSING })).rejects.toThrow(/Concurrency limit .* not found/);
      await expect(create({ work_queue_id: MISSING })).rejects.toThrow(/Work queue .* not found/);
      await expect(create({ storage_document_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ infrastructure_document_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.deployments.count()).toBe(0);
    });

    it("refuses malformed input", async () => {
      await expect(create({ name: "a/b" })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.create({ name: "x", flow_id: "not-a-uuid" })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ concurrency_limit: 0 })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ concurrency_options: { collision_strategy: "DROP" as "ENQUEUE" } })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ concurrency_options: { collision_strategy: "ENQUEUE", grace_period_seconds: 10 } })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.create({ name: "x", flow_id: flow.id, infra_overrides: {} } as DeploymentCreate)).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ schedules: [{ schedule: { interval: -1 } }] })).rejects.toThrow(/interval must be positive/);
      expect(await t.db.deployments.count()).toBe(0);
    });

    it("refuses both a concurrency limit and a global concurrency limit", async () => {
      const limit = await t.db.concurrencyLimits.create({ name: "shared", limit: 3 });
      await expect(create({ concurrency_limit: 2, concurrency_limit_id: limit.id })).rejects.toThrow(/both a concurrency limit and a global/);
    });
  });

  describe("concurrency limits", () => {
    it("gives a deployment its own limit, kept on an upsert that does not mention it", async () => {
      const d = await create({ concurrency_limit: 2, concurrency_options: { collision_strategy: "ENQUEUE" } });
      expect(d.concurrency_limit).toBe(2);
      expect(d.global_concurrency_limit).toMatchObject({ name: `deployment:${d.id}`, limit: 2 });
      expect(d.concurrency_limit_id).toBe(d.global_concurrency_limit?.id);
      const again = await create({ description: "no limit mentioned" });
      expect(again).toMatchObject({ concurrency_limit: 2, concurrency_limit_id: d.concurrency_limit_id, concurrency_options: { collision_strategy: "ENQUEUE" } });
      expect(await t.db.concurrencyLimits.getByName(`deployment:${d.id}`)).not.toBeNull();
    });

    it("reads a deployment's concurrency alone as get shows it, and null for an unknown deployment", async () => {
      const limited = await create({ concurrency_limit: 2, concurrency_options: { collision_strategy: "CANCEL_NEW" } });
      const pick = (d: Deployment) => ({ id: d.id, concurrency_limit_id: d.concurrency_limit_id, concurrency_options: d.concurrency_options, global_concurrency_limit: d.global_concurrency_limit });
      expect(await t.db.deployments.concurrency(limited.id)).toEqual(pick(limited));
      expect((await t.db.deployments.concurrency(limited.id))?.global_concurrency_limit).toMatchObject({ limit: 2, active_slots: 0 });
      const free = (await t.db.deployments.create({ name: "free", flow_id: flow.id })).row;
      expect(await t.db.deployments.concurrency(free.id)).toEqual({ id: free.id, concurrency_limit_id: null, concurrency_options: null, global_concurrency_limit: null });
      expect(await t.db.deployments.concurrency(MISSING)).toBeNull();
      await expect(t.db.deployments.concurrency("not-a-uuid")).rejects.toBeInstanceOf(InvalidError);
    });

    it("changes the limit, and removes it (deleting the limit row) when set to null", async () => {
      const d = await create({ concurrency_limit: 2 });
      const changed = await t.db.deployments.update(d.id, { concurrency_limit: 5 });
      expect(changed).toMatchObject({ concurrency_limit: 5, concurrency_limit_id: d.concurrency_limit_id, global_concurrency_limit: { limit: 5 } });
      const removed = await create({ concurrency_limit: null });
      expect(removed).toMatchObject({ concurrency_limit: null, concurrency_limit_id: null, global_concurrency_limit: null });
      expect(await t.db.concurrencyLimits.getByName(`deployment:${d.id}`)).toBeNull();
    });

    it("applies an existing global concurrency limit by id", async () => {
      const limit = await t.db.concurrencyLimits.create({ name: "shared", limit: 4 });
      const d = await create();
      const updated = await t.db.deployments.update(d.id, { concurrency_limit_id: limit.id });
      expect(updated).toMatchObject({ concurrency_limit_id: limit.id, global_concurrency_limit: { id: limit.id, limit: 4 } });
      expect((await t.db.deployments.update(d.id, { concurrency_limit_id: null })).concurrency_limit_id).toBeNull();
      expect(await t.db.concurrencyLimits.get(limit.id)).not.toBeNull();
    });
  });

  describe("get and getByName", () => {
    it("reads by flow name and deployment name", async () => {
      const d = await create();
      const other = (await t.db.flows.create({ name: "other" })).row;
      await t.db.deployments.create({ name: "nightly", flow_id: other.id, description: "other flow" });
      expect(await t.db.deployments.getByName("etl", "nightly")).toEqual(d);
      expect((await t.db.deployments.getByName("other", "nightly"))?.description).toBe("other flow");
      expect(await t.db.deployments.getByName("etl", "missing")).toBeNull();
      expect(await t.db.deployments.getByName("missing", "nightly")).toBeNull();
    });

    it("returns null for an unknown id, finds an upper-case id and refuses a malformed one", async () => {
      const d = await create();
      expect(await t.db.deployments.get(MISSING)).toBeNull();
      expect((await t.db.deployments.get(d.id.toUpperCase()))?.id).toBe(d.id);
      await expect(t.db.deployments.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("shows the queue's own name and its pool's name", async () => {
      const pool = await t.db.workPools.create({ name: "k8s", type: "kubernetes" });
      const queue = await t.db.workQueues.create(pool.id, { name: "gpu" });
      const d = await create({ work_queue_id: queue.id, work_queue_name: "stale-name" });
      expect(d).toMatchObject({ work_queue_id: queue.id, work_queue_name: "gpu", work_pool_name: "k8s" });
      await t.db.workQueues.delete(queue.id);
      expect(await t.db.deployments.get(d.id)).toMatchObject({ work_queue_id: null, work_queue_name: "stale-name", work_pool_name: null });
    });
  });

  describe("read and count", () => {
    let alpha: Deployment;
    let beta: Deployment;
    let gamma: Deployment;
    let other: Flow;

    beforeEach(async () => {
      other = (await t.db.flows.create({ name: "reports" })).row;
      const pool = await t.db.workPools.create({ name: "k8s", type: "kubernetes" });
      const queue = await t.db.workQueues.create(pool.id, { name: "gpu-queue" });
      alpha = await create({ name: "alpha-ETL", tags: ["prod", "etl"], work_queue_name: "gpu-queue", work_queue_id: queue.id, concurrency_limit: 3 });
      beta = await create({ name: "beta", tags: ["prod"], paused: true, work_queue_name: "default" });
      gamma = (await t.db.deployments.create({ name: "gamma-etl", flow_id: other.id })).row;
      const alphaRun = await run(alpha.id, { name: "r1", state: { type: "COMPLETED" } });
      await run(beta.id, { name: "r2", state: { type: "FAILED" } });
      await t.db.taskRuns.create({ flow_run_id: alphaRun.id, task_key: "extract", dynamic_key: "0", name: "extract-0" });
    });

    const names = async (options: DeploymentReadOptions = {}) => (await t.db.deployments.read(options)).map((d) => d.name);

    it("reads every deployment by name ascending by default, with schedules", async () => {
      await t.db.deployments.createSchedules(beta.id, [{ schedule: { interval: 60 } }]);
      const all = await t.db.deployments.read();
      expect(all.map((d) => d.name)).toEqual(["alpha-ETL", "beta", "gamma-etl"]);
      expect(all.map((d) => d.schedules.length)).toEqual([0, 1, 0]);
    });

    it("filters by id any_ and not_any_", async () => {
      expect(await names({ deployments: { id: { any_: [alpha.id, gamma.id] } } })).toEqual(["alpha-ETL", "gamma-etl"]);
      expect(await names({ deployments: { id: { not_any_: [alpha.id] } } })).toEqual(["beta", "gamma-etl"]);
      expect(await names({ deployments: { id: { any_: [] } } })).toEqual([]);
    });

    it("filters by name any_ and like_", async () => {
      expect(await names({ deployments: { name: { any_: ["beta", "nope"] } } })).toEqual(["beta"]);
      expect(await names({ deployments: { name: { like_: "EtL" } } })).toEqual(["alpha-ETL", "gamma-etl"]);
    });

    it("filters by flow or deployment name", async () => {
      expect(await names({ deployments: { flow_or_deployment_name: { like_: "REPORT" } } })).toEqual(["gamma-etl"]);
      expect(await names({ deployments: { flow_or_deployment_name: { like_: "bet" } } })).toEqual(["beta"]);
    });

    it("filters by paused", async () => {
      expect(await names({ deployments: { paused: { eq_: true } } })).toEqual(["beta"]);
      expect(await names({ deployments: { paused: { eq_: false } } })).toEqual(["alpha-ETL", "gamma-etl"]);
    });

    it("filters by tags all_, any_ and is_null_", async () => {
      expect(await names({ deployments: { tags: { all_: ["prod", "etl"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ deployments: { tags: { any_: ["etl", "nope"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ deployments: { tags: { any_: [] } } })).toEqual([]);
      expect(await names({ deployments: { tags: { is_null_: true } } })).toEqual(["gamma-etl"]);
      expect(await names({ deployments: { tags: { is_null_: false } } })).toEqual(["alpha-ETL", "beta"]);
    });

    it("filters by work_queue_name any_", async () => {
      expect(await names({ deployments: { work_queue_name: { any_: ["default"] } } })).toEqual(["beta"]);
    });

    it("accepts and ignores the deprecated concurrency_limit criterion, as Prefect does", async () => {
      expect(await names({ deployments: { concurrency_limit: { ge_: 10, le_: 20, is_null_: false } } })).toEqual(["alpha-ETL", "beta", "gamma-etl"]);
    });

    it("combines criteria with or_", async () => {
      expect(await names({ deployments: { operator: "or_", paused: { eq_: true }, name: { any_: ["gamma-etl"] } } })).toEqual(["beta", "gamma-etl"]);
    });

    it("keeps deployments whose flow matches flows", async () => {
      expect(await names({ flows: { name: { any_: ["reports"] } } })).toEqual(["gamma-etl"]);
    });

    it("keeps deployments with runs matching flow_runs, and with task runs matching task_runs", async () => {
      expect(await names({ flow_runs: { state: { type: { any_: ["FAILED"] } } } })).toEqual(["beta"]);
      expect(await names({ flow_runs: {} })).toEqual(["alpha-ETL", "beta"]);
      expect(await names({ task_runs: { name: { any_: ["extract-0"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ flow_runs: { name: { any_: ["r2"] } }, task_runs: { name: { any_: ["extract-0"] } } })).toEqual([]);
    });

    it("keeps deployments whose work pool and queue match", async () => {
      expect(await names({ work_pools: { name: { any_: ["k8s"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ work_pools: { type: { any_: ["process"] } } })).toEqual([]);
      expect(await names({ work_pool_queues: { name: { any_: ["gpu-queue"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ work_pool_queues: { name: { startswith_: ["GPU"] } } })).toEqual(["alpha-ETL"]);
      expect(await names({ work_pool_queues: {} })).toEqual(["alpha-ETL"]);
      expect(await names({ work_pools: { name: { any_: ["k8s"] } }, work_pool_queues: { name: { any_: ["default"] } } })).toEqual([]);
    });

    it("sorts by NAME_ASC, NAME_DESC, CREATED_DESC and UPDATED_DESC", async () => {
      expect(await names({ sort: "NAME_DESC" })).toEqual(["gamma-etl", "beta", "alpha-ETL"]);
      expect(await names({ sort: "CREATED_DESC" })).toEqual(["gamma-etl", "beta", "alpha-ETL"]);
      await t.db.deployments.update(alpha.id, { description: "touched" });
      expect(await names({ sort: "UPDATED_DESC" })).toEqual(["alpha-ETL", "gamma-etl", "beta"]);
    });

    it("pages with limit and offset", async () => {
      expect(await names({ limit: 2 })).toEqual(["alpha-ETL", "beta"]);
      expect(await names({ limit: 2, offset: 1 })).toEqual(["beta", "gamma-etl"]);
      expect(await names({ offset: 2 })).toEqual(["gamma-etl"]);
      expect(await names({ limit: 0 })).toEqual([]);
    });

    it("counts with the same criteria", async () => {
      expect(await t.db.deployments.count()).toBe(3);
      expect(await t.db.deployments.count({ deployments: { tags: { all_: ["prod"] } } })).toBe(2);
      expect(await t.db.deployments.count({ flow_runs: { state: { type: { any_: ["COMPLETED", "FAILED"] } } } })).toBe(2);
      expect(await t.db.deployments.count({ work_pools: { name: { any_: ["k8s"] } } })).toBe(1);
      expect(await t.db.deployments.count({ flows: { name: { any_: ["etl"] } } })).toBe(2);
    });

    it("refuses malformed filters and sorts", async () => {
      await expect(t.db.deployments.read({ deployments: { nope: {} } as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.read({ work_pools: { id: { any_: ["x"] } } })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.read({ sort: "ID_DESC" as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.count({ flow_runs: { bogus: 1 } as never })).rejects.toBeInstanceOf(InvalidError);
    });

    it("filters flows by whether they have deployments", async () => {
      const lonely = (await t.db.flows.create({ name: "lonely" })).row;
      const flowNames = async (is_null_: boolean) => (await t.db.flows.read({ flows: { deployment: { is_null_ } } })).map((f) => f.name);
      expect(await flowNames(true)).toEqual([lonely.name]);
      expect(await flowNames(false)).toEqual(["etl", "reports"]);
      expect(await t.db.flows.count({ flows: { deployment: { is_null_: false } } })).toBe(2);
      expect(await t.db.flows.count({ flows: { deployment: {} } })).toBe(3);
      await t.db.deployments.delete(gamma.id);
      expect(await flowNames(true)).toEqual([lonely.name, "reports"]);
      await expect(t.db.flows.read({ flows: { deployment: { is_null_: "yes" as never } } })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("update", () => {
    it("changes the fields given and leaves the others", async () => {
      const d = await create({ description: "before", tags: ["a"], job_variables: { image: "a" }, parameters: { x: 1 } });
      const updated = await t.db.deployments.update(d.id, {
        description: "after",
        version: "2",
        job_variables: { image: "b" },
        pull_steps: null,
        enforce_parameter_schema: false,
        updated_by: { type: "USER", display_value: "editor" },
      });
      expect(updated).toMatchObject({
        description: "after",
        version: "2",
        tags: ["a"],
        parameters: { x: 1 },
        job_variables: { image: "b" },
        pull_steps: null,
        enforce_parameter_schema: false,
        updated_by: { type: "USER", display_value: "editor" },
      });
      expect(updated.updated > d.updated).toBe(true);
      expect(await t.db.deployments.get(d.id)).toEqual(updated);
    });

    it("ignores empty job variables, as Prefect does", async () => {
      const d = await create({ job_variables: { image: "a" } });
      expect((await t.db.deployments.update(d.id, { job_variables: {} })).job_variables).toEqual({ image: "a" });
    });

    it("replaces the schedules when given", async () => {
      const d = await create({ schedules: [{ schedule: { interval: 60 }, slug: "a" }] });
      const updated = await t.db.deployments.update(d.id, { schedules: [{ schedule: { interval: 120 }, slug: "b" }] });
      expect(updated.schedules).toMatchObject([{ slug: "b", schedule: { interval: 120 } }]);
      expect((await t.db.deployments.update(d.id, { description: "x" })).schedules).toHaveLength(1);
      expect((await t.db.deployments.update(d.id, { schedules: [] })).schedules).toEqual([]);
    });

    it("deletes future auto-scheduled runs", async () => {
      const d = await create();
      const future = await run(d.id, { auto_scheduled: true, state: { type: "SCHEDULED" }, next_scheduled_start_time: FUTURE });
      const running = await run(d.id, { auto_scheduled: true, state: { type: "RUNNING" }, next_scheduled_start_time: FUTURE });
      await t.db.deployments.update(d.id, { tags: ["x"] });
      expect(await t.db.flowRuns.get(future.id)).toBeNull();
      expect(await t.db.flowRuns.get(running.id)).not.toBeNull();
    });

    it("throws NotFoundError for an unknown id and InvalidError for bad input", async () => {
      await expect(t.db.deployments.update(MISSING, { description: "x" })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.update("bad", { description: "x" })).rejects.toBeInstanceOf(InvalidError);
      const d = await create();
      await expect(t.db.deployments.update(d.id, { paused: "yes" as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.update(d.id, { work_queue_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.update(d.id, { name: "renamed" } as never)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.update(d.id, { schedules: [{ schedule: { interval: -1 } }] })).rejects.toThrow(/interval must be positive/);
      expect(await t.db.deployments.get(d.id)).toEqual(d);
    });
  });

  describe("delete", () => {
    it("deletes the deployment with its schedules and versions", async () => {
      const d = await create({ schedules: [{ schedule: { interval: 60 } }] });
      const version = await t.db.deployments.createVersion(d.id, { branch: "main" });
      await t.db.deployments.delete(d.id);
      expect(await t.db.deployments.get(d.id)).toBeNull();
      expect(await t.db.deployments.getVersion(version.id)).toBeNull();
      await expect(t.db.deployments.readSchedules(d.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.delete(d.id)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("deletes its scheduled runs that have not run, auto-scheduled or not, and keeps the rest", async () => {
      const d = await create();
      const auto = await run(d.id, { auto_scheduled: true, state: { type: "SCHEDULED" }, next_scheduled_start_time: FUTURE });
      const manualDue = await run(d.id, { state: { type: "SCHEDULED" }, next_scheduled_start_time: PAST });
      const awaiting = await run(d.id, { state: { type: "SCHEDULED", name: "AwaitingConcurrencySlot" } });
      const rerun = await run(d.id, { state: { type: "SCHEDULED", name: "AwaitingRetry" }, run_count: 1 });
      const done = await run(d.id, { state: { type: "COMPLETED" } });
      await t.db.deployments.delete(d.id);
      expect(await t.db.flowRuns.get(auto.id)).toBeNull();
      expect(await t.db.flowRuns.get(manualDue.id)).toBeNull();
      for (const kept of [awaiting, rerun, done]) expect(await t.db.flowRuns.get(kept.id)).not.toBeNull();
    });

    it("deletes the concurrency limit it points at", async () => {
      const d = await create({ concurrency_limit: 2 });
      await t.db.deployments.delete(d.id);
      expect(await t.db.concurrencyLimits.getByName(`deployment:${d.id}`)).toBeNull();
    });

    it("is deleted with its flow", async () => {
      const d = await create();
      await t.db.flows.delete(flow.id);
      expect(await t.db.deployments.get(d.id)).toBeNull();
    });

    it("refuses a malformed id", async () => {
      await expect(t.db.deployments.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("pause and resume", () => {
    it("sets and clears the paused flag", async () => {
      const d = await create();
      const paused = await t.db.deployments.pause(d.id);
      expect(paused.paused).toBe(true);
      expect(paused.updated > d.updated).toBe(true);
      expect((await t.db.deployments.resume(d.id)).paused).toBe(false);
      expect((await t.db.deployments.get(d.id))?.paused).toBe(false);
    });

    it("throws NotFoundError for an unknown deployment", async () => {
      await expect(t.db.deployments.pause(MISSING)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.deployments.resume(MISSING)).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe("status", () => {
    it("marks deployments ready with last_polled, leaving updated, and returns those that changed", async () => {
      const a = await create({ name: "a" });
      const b = await create({ name: "b" });
      expect(await t.db.deployments.markReady({ deploymentIds: [a.id] })).toEqual([a.id]);
      const ready = await t.db.deployments.get(a.id);
      expect(ready).toMatchObject({ status: "READY", updated: a.updated });
      expect(ready?.last_polled).not.toBeNull();
      expect(await t.db.deployments.markReady({ deploymentIds: [a.id, b.id] })).toEqual([b.id]);
      const polledAgain = await t.db.deployments.get(a.id);
      expect(polledAgain?.last_polled && ready?.last_polled && polledAgain.last_polled > ready.last_polled).toBe(true);
    });

    it("marks deployments not ready, keeping last_polled", async () => {
      const a = await create({ name: "a" });
      await t.db.deployments.markReady({ deploymentIds: [a.id] });
      const polled = (await t.db.deployments.get(a.id))?.last_polled;
      expect(await t.db.deployments.markNotReady({ deploymentIds: [a.id] })).toEqual([a.id]);
      expect(await t.db.deployments.get(a.id)).toMatchObject({ status: "NOT_READY", last_polled: polled, updated: a.updated });
      expect(await t.db.deployments.markNotReady({ deploymentIds: [a.id] })).toEqual([]);
    });

    it("marks the deployments of work queues", async () => {
      const pool = await t.db.workPools.create({ name: "p", type: "process" });
      const inQueue = await create({ name: "a", work_queue_id: pool.default_queue_id });
      const elsewhere = await create({ name: "b" });
      expect(await t.db.deployments.markReady({ workQueueIds: [pool.default_queue_id ?? MISSING] })).toEqual([inQueue.id]);
      expect((await t.db.deployments.get(elsewhere.id))?.status).toBe("NOT_READY");
      expect(await t.db.deployments.markNotReady({ workQueueIds: [pool.default_queue_id ?? MISSING], deploymentIds: [elsewhere.id] })).toEqual([inQueue.id]);
    });

    it("does nothing without targets and refuses malformed ids", async () => {
      expect(await t.db.deployments.markReady({})).toEqual([]);
      expect(await t.db.deployments.markReady({ deploymentIds: [MISSING] })).toEqual([]);
      await expect(t.db.deployments.markReady({ deploymentIds: ["bad"] })).rejects.toBeInstanceOf(InvalidError);
    });

    it("gives each change to exactly one of concurrent callers", async () => {
      const ids = await Promise.all(["a", "b", "c"].map(async (name) => (await create({ name })).id));
      const results = await Promise.all(Array.from({ length: 4 }, () => t.db.deployments.markReady({ deploymentIds: ids })));
      expect(results.flat().sort()).toEqual([...ids].sort());
    });
  });

  describe("versions", () => {
    it("creates, reads and gets versions", async () => {
      const d = await create();
      const pool = await t.db.workPools.create({ name: "p", type: "process" });
      const main = await t.db.deployments.createVersion(d.id, {
        branch: "main",
        version_info: { type: "vcs:git", version: "abc123" },
        description: "first",
        tags: ["t"],
        labels: { k: "v" },
        entrypoint: "flows.py:etl",
        pull_steps: [{ step: {} }],
        parameters: { n: 1 },
        parameter_openapi_schema: { type: "object" },
        enforce_parameter_schema: true,
        work_queue_id: pool.default_queue_id,
        work_queue_name: "default",
        job_variables: { image: "x" },
      });
      expect(main).toMatchObject({ deployment_id: d.id, branch: "main", version_info: { type: "vcs:git", version: "abc123" }, job_variables: { image: "x" } });
      expect(await t.db.deployments.getVersion(main.id)).toEqual(main);
      const dev = await t.db.deployments.createVersion(d.id, { branch: "dev" });
      expect(dev).toMatchObject({ version_info: {}, tags: [], parameters: {}, job_variables: {}, enforce_parameter_schema: false, labels: null });
      expect((await t.db.deployments.readVersions(d.id)).map((v) => v.branch)).toEqual(["dev", "main"]);
      expect(await t.db.deployments.getVersion(MISSING)).toBeNull();
    });

    it("allows one version per branch, and any number without a branch", async () => {
      const d = await create();
      await t.db.deployments.createVersion(d.id, { branch: "main" });
      await expect(t.db.deployments.createVersion(d.id, { branch: "main" })).rejects.toBeInstanceOf(AlreadyExistsError);
      await t.db.deployments.createVersion(d.id, {});
      await t.db.deployments.createVersion(d.id, {});
      const other = await create({ name: "other" });
      await t.db.deployments.createVersion(other.id, { branch: "main" });
      expect(await t.db.deployments.readVersions(d.id)).toHaveLength(3);
    });

    it("refuses an unknown deployment and bad input", async () => {
      await expect(t.db.deployments.createVersion(MISSING, {})).rejects.toBeInstanceOf(NotFoundError);
      const d = await create();
      await expect(t.db.deployments.createVersion(d.id, { version_info: "v1" as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.createVersion(d.id, { work_queue_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.deployments.getVersion("bad")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("transactions", () => {
    it("rolls a create back with the surrounding transaction", async () => {
      await expect(
        t.db.transaction(async (tx) => {
          await tx.deployments.create({ name: "rolled-back", flow_id: flow.id, concurrency_limit: 2, schedules: [{ schedule: { interval: 60 } }] });
          throw new Error("stop");
        }),
      ).rejects.toThrow("stop");
      expect(await t.db.deployments.count()).toBe(0);
      expect(await t.db.concurrencyLimits.read()).toEqual([]);
    });
  });
});
