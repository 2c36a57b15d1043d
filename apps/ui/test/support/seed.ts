/**
 * Seeds a server through Prefect's API as Prefect's clients would: a flow with a deployment on a
 * process work pool, finished runs with task runs, a subflow, logs and an artifact, a failed run,
 * blocks, variables, events and concurrency limits. Returns the names and ids the pages must show.
 */
import { randomUUID } from "node:crypto";

async function call<T = Record<string, unknown>>(api: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

type Row = { id: string; name: string };

async function setState(api: string, kind: "flow_runs" | "task_runs", id: string, type: string): Promise<void> {
  await call(api, "POST", `/${kind}/${id}/set_state`, { state: { type } });
}

async function finishedRun(api: string, fields: Record<string, unknown>, final: string): Promise<Row> {
  const run = await call<Row>(api, "POST", "/flow_runs/", { ...fields, state: { type: "PENDING" } });
  await setState(api, "flow_runs", run.id, "RUNNING");
  await setState(api, "flow_runs", run.id, final);
  return run;
}

async function taskRun(api: string, flowRunId: string, name: string, final: string): Promise<Row> {
  const task = await call<Row>(api, "POST", "/task_runs/", { flow_run_id: flowRunId, task_key: name, dynamic_key: "0", name, state: { type: "PENDING" } });
  await setState(api, "task_runs", task.id, "RUNNING");
  await setState(api, "task_runs", task.id, final);
  return task;
}

export interface Seeded {
  flow: Row;
  deployment: Row;
  pool: string;
  queue: string;
  run: Row;
  failedRun: Row;
  subflowRun: Row;
  task: Row;
  logMessage: string;
  artifactKey: string;
  artifactId: string;
  variable: string;
  block: Row;
  event: { id: string; name: string; occurred: string };
  globalLimit: Row;
  tagLimit: { id: string; tag: string };
}

export async function seed(api: string): Promise<Seeded> {
  const flow = await call<Row>(api, "POST", "/flows/", { name: "etl-pipeline" });
  const worker = await call<{ prefect: { process: { default_base_job_configuration: Record<string, unknown> } } }>(api, "GET", "/collections/views/aggregate-worker-metadata");
  const pool = "local-processes";
  await call(api, "POST", "/work_pools/", { name: pool, type: "process", base_job_template: worker.prefect.process.default_base_job_configuration });
  const queue = "critical";
  await call(api, "POST", `/work_pools/${pool}/queues/`, { name: queue, priority: 2 });
  const deployment = await call<Row>(api, "POST", "/deployments/", {
    name: "nightly-load",
    flow_id: flow.id,
    work_pool_name: pool,
    description: "Loads the day's rows into the warehouse.",
    parameters: { rows: 10, table: "users" },
    parameter_openapi_schema: {
      type: "object",
      title: "Parameters",
      properties: { rows: { type: "integer", title: "rows", default: 10, position: 0 }, table: { type: "string", title: "table", position: 1 } },
      required: ["table"],
    },
    enforce_parameter_schema: true,
    schedules: [{ schedule: { interval: 3600 }, active: true }],
    tags: ["warehouse"],
  });
  await call(api, "POST", `/deployments/${deployment.id}/create_flow_run`, { name: "upcoming-load", state: { type: "SCHEDULED" } });

  const run = await finishedRun(api, { flow_id: flow.id, deployment_id: deployment.id, name: "brave-otter", parameters: { rows: 10, table: "users" }, tags: ["warehouse"] }, "COMPLETED");
  const task = await taskRun(api, run.id, "extract-rows", "COMPLETED");
  await taskRun(api, run.id, "load-rows", "COMPLETED");
  const wrapper = await taskRun(api, run.id, "child-flow", "COMPLETED");
  const subflowRun = await finishedRun(api, { flow_id: flow.id, name: "quiet-heron", parent_task_run_id: wrapper.id }, "COMPLETED");
  const failedRun = await finishedRun(api, { flow_id: flow.id, deployment_id: deployment.id, name: "stormy-lynx" }, "FAILED");

  const logMessage = "Loaded 10 rows into users";
  const now = new Date().toISOString();
  await call(api, "POST", "/logs/", [
    { name: "prefect.flow_runs", level: 20, message: "Starting the load", timestamp: now, flow_run_id: run.id, task_run_id: null },
    { name: "prefect.task_runs", level: 20, message: logMessage, timestamp: now, flow_run_id: run.id, task_run_id: task.id },
  ]);
  const artifactKey = "row-report";
  const artifact = await call<{ id: string }>(api, "POST", "/artifacts/", {
    key: artifactKey,
    type: "markdown",
    description: "Rows loaded per table",
    data: "# Rows loaded\n\n| table | rows |\n|---|---|\n| users | 10 |",
    flow_run_id: run.id,
    task_run_id: task.id,
  });

  const variable = "warehouse_region";
  await call(api, "POST", "/variables/", { name: variable, value: "eu-west-1", tags: ["warehouse"] });

  const secretType = await call<{ id: string }>(api, "GET", "/block_types/slug/secret");
  const [secretSchema] = await call<{ id: string }[]>(api, "POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [secretType.id] } } });
  const block = await call<Row>(api, "POST", "/block_documents/", {
    name: "warehouse-password",
    data: { value: "s3cr3t" },
    block_schema_id: secretSchema!.id,
    block_type_id: secretType.id,
  });

  const event = { id: randomUUID(), name: "warehouse.rows.loaded", occurred: now };
  await call(api, "POST", "/events", [
    {
      id: event.id,
      occurred: now,
      event: event.name,
      resource: { "prefect.resource.id": "warehouse.table.users", "prefect.resource.name": "users" },
      related: [{ "prefect.resource.id": `prefect.flow-run.${run.id}`, "prefect.resource.role": "flow-run", "prefect.resource.name": "brave-otter" }],
      payload: { rows: 10 },
    },
  ]);

  const globalLimit = await call<Row>(api, "POST", "/v2/concurrency_limits/", { name: "warehouse-connections", limit: 5 });
  const tagLimit = await call<{ id: string; tag: string }>(api, "POST", "/concurrency_limits/", { tag: "warehouse", concurrency_limit: 2 });

  return {
    flow,
    deployment,
    pool,
    queue,
    run,
    failedRun,
    subflowRun,
    task,
    logMessage,
    artifactKey,
    artifactId: artifact.id,
    variable,
    block,
    event,
    globalLimit,
    tagLimit,
  };
}
