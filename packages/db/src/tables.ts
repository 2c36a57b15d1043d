/**
 * The columns of each table and what kind of value each holds, for encoding parameters and decoding
 * rows on both backends. The Prisma schemas are the model of record: prisma-fit.ts checks at compile
 * time that these specs, and the rows the repositories return, fit both generated Prisma clients'
 * models (and a test checks the same against the schema files at run time).
 */
import type { Dialect } from "./dialect.js";
import { InvalidError } from "./errors.js";
import { JsonValue, type Sql, sql } from "./sql.js";

/** `indexed_text`: text under an index, at most INDEXED_TEXT_MAX_BYTES long (see `checkIndexedText`). */
export type ColumnKind = "uuid" | "text" | "indexed_text" | "int" | "float" | "bool" | "json" | "timestamp" | "enum";

/**
 * The longest value (UTF-8 bytes) of a text column under an index, on both backends. A PostgreSQL
 * B-tree index entry holds at most about 2.7 kB (composite indexes sum their columns), so a longer
 * value fails there while SQLite stores it; refusing it up front gives the same answer on both.
 */
export const INDEXED_TEXT_MAX_BYTES = 1024;

/** Why a value does not fit an indexed text column. */
export const INDEXED_TEXT_TOO_LONG = `String should have at most ${INDEXED_TEXT_MAX_BYTES} bytes (UTF-8) to be stored and indexed`;

/** Whether `value` fits an indexed text column (INDEXED_TEXT_MAX_BYTES of UTF-8). */
export function fitsIndexedText(value: string): boolean {
  return value.length * 3 <= INDEXED_TEXT_MAX_BYTES || Buffer.byteLength(value, "utf8") <= INDEXED_TEXT_MAX_BYTES;
}

/** Refuses a value of an indexed text column longer than INDEXED_TEXT_MAX_BYTES, naming the column. */
export function checkIndexedText(spec: TableSpec, column: string, value: unknown): void {
  if (spec.columns[column] !== "indexed_text" || typeof value !== "string" || fitsIndexedText(value)) return;
  throw new InvalidError(`${spec.name}.${column} is too long`, [{ path: [column], message: INDEXED_TEXT_TOO_LONG }]);
}

export interface TableSpec<Name extends string = string, Columns extends Record<string, ColumnKind> = Record<string, ColumnKind>, Model extends string = string> {
  readonly name: Name;
  /** The Prisma model of the table. */
  readonly model: Model;
  readonly columns: Columns;
}

function table<const Name extends string, const Model extends string, const Columns extends Record<string, ColumnKind>>(
  name: Name,
  model: Model,
  columns: Columns,
): TableSpec<Name, Columns & typeof base, Model> {
  return { name, model, columns: { ...base, ...columns } };
}

const base = { id: "uuid", created: "timestamp", updated: "timestamp" } as const;

const runColumns = {
  name: "indexed_text",
  state_type: "enum",
  state_name: "indexed_text",
  state_timestamp: "timestamp",
  run_count: "int",
  expected_start_time: "timestamp",
  next_scheduled_start_time: "timestamp",
  start_time: "timestamp",
  end_time: "timestamp",
  total_run_time: "float",
} as const;

const stateColumns = {
  type: "enum",
  timestamp: "timestamp",
  // Not indexed (a run's states are read by run); the run's own `state_name` is, and holds the same name.
  name: "text",
  message: "text",
  state_details: "json",
  data: "json",
  result_artifact_id: "uuid",
} as const;

export const tables = {
  flow: table("flow", "Flow", { name: "indexed_text", tags: "json", labels: "json" }),
  flow_run: table("flow_run", "FlowRun", {
    ...runColumns,
    flow_id: "uuid",
    deployment_id: "uuid",
    work_queue_name: "indexed_text",
    flow_version: "indexed_text",
    deployment_version: "indexed_text",
    parameters: "json",
    idempotency_key: "indexed_text",
    context: "json",
    empirical_policy: "json",
    tags: "json",
    labels: "json",
    created_by: "json",
    infrastructure_pid: "text",
    job_variables: "json",
    infrastructure_document_id: "uuid",
    parent_task_run_id: "uuid",
    auto_scheduled: "bool",
    state_id: "uuid",
    work_queue_id: "uuid",
  }),
  flow_run_state: table("flow_run_state", "FlowRunState", { flow_run_id: "uuid", ...stateColumns }),
  task_run: table("task_run", "TaskRun", {
    ...runColumns,
    flow_run_id: "uuid",
    task_key: "indexed_text",
    dynamic_key: "indexed_text",
    cache_key: "text",
    cache_expiration: "timestamp",
    task_version: "text",
    flow_run_run_count: "int",
    empirical_policy: "json",
    task_inputs: "json",
    tags: "json",
    labels: "json",
    state_id: "uuid",
  }),
  task_run_state: table("task_run_state", "TaskRunState", { task_run_id: "uuid", ...stateColumns }),
  task_run_state_cache: table("task_run_state_cache", "TaskRunStateCache", {
    cache_key: "indexed_text",
    cache_expiration: "timestamp",
    task_run_state_id: "uuid",
  }),
  log: table("log", "Log", {
    name: "text",
    level: "int",
    flow_run_id: "uuid",
    task_run_id: "uuid",
    message: "text",
    timestamp: "timestamp",
  }),
  events: table("events", "Event", {
    occurred: "timestamp",
    event: "indexed_text",
    resource_id: "indexed_text",
    resource: "json",
    related_resource_ids: "json",
    related: "json",
    payload: "json",
    received: "timestamp",
    recorded: "timestamp",
    follows: "uuid",
    position: "int",
  }),
  event_consumer_group: table("event_consumer_group", "EventConsumerGroup", { name: "indexed_text", position: "int" }),
  event_resources: table("event_resources", "EventResource", {
    occurred: "timestamp",
    resource_id: "indexed_text",
    resource_role: "text",
    resource: "json",
    event_id: "uuid",
  }),
  block_type: table("block_type", "BlockType", {
    name: "indexed_text",
    slug: "indexed_text",
    logo_url: "text",
    documentation_url: "text",
    description: "text",
    code_example: "text",
    is_protected: "bool",
  }),
  block_schema: table("block_schema", "BlockSchema", {
    checksum: "indexed_text",
    fields: "json",
    capabilities: "json",
    version: "indexed_text",
    block_type_id: "uuid",
  }),
  block_schema_reference: table("block_schema_reference", "BlockSchemaReference", {
    name: "text",
    parent_block_schema_id: "uuid",
    reference_block_schema_id: "uuid",
  }),
  block_document: table("block_document", "BlockDocument", {
    name: "indexed_text",
    data: "json",
    is_anonymous: "bool",
    block_type_name: "indexed_text",
    block_type_id: "uuid",
    block_schema_id: "uuid",
  }),
  block_document_reference: table("block_document_reference", "BlockDocumentReference", {
    name: "text",
    parent_block_document_id: "uuid",
    reference_block_document_id: "uuid",
  }),
  configuration: table("configuration", "Configuration", { key: "indexed_text", value: "json" }),
  deployment: table("deployment", "Deployment", {
    name: "indexed_text",
    version: "text",
    description: "text",
    work_queue_name: "indexed_text",
    infra_overrides: "json",
    path: "text",
    entrypoint: "text",
    last_polled: "timestamp",
    status: "enum",
    flow_id: "uuid",
    work_queue_id: "uuid",
    paused: "bool",
    concurrency_limit: "int",
    concurrency_limit_id: "uuid",
    concurrency_options: "json",
    tags: "json",
    labels: "json",
    parameters: "json",
    pull_steps: "json",
    parameter_openapi_schema: "json",
    enforce_parameter_schema: "bool",
    created_by: "json",
    updated_by: "json",
    infrastructure_document_id: "uuid",
    storage_document_id: "uuid",
    version_id: "uuid",
  }),
  deployment_schedule: table("deployment_schedule", "DeploymentSchedule", {
    deployment_id: "uuid",
    schedule: "json",
    active: "bool",
    max_scheduled_runs: "int",
    parameters: "json",
    slug: "indexed_text",
  }),
  deployment_version: table("deployment_version", "DeploymentVersion", {
    deployment_id: "uuid",
    branch: "indexed_text",
    version_info: "json",
    description: "text",
    tags: "json",
    labels: "json",
    entrypoint: "text",
    pull_steps: "json",
    parameters: "json",
    parameter_openapi_schema: "json",
    enforce_parameter_schema: "bool",
    work_queue_id: "uuid",
    work_queue_name: "indexed_text",
    infra_overrides: "json",
  }),
  work_pool: table("work_pool", "WorkPool", {
    name: "indexed_text",
    description: "text",
    type: "indexed_text",
    base_job_template: "json",
    is_paused: "bool",
    default_queue_id: "uuid",
    concurrency_limit: "int",
    status: "enum",
    last_transitioned_status_at: "timestamp",
    last_status_event_id: "uuid",
    storage_configuration: "json",
  }),
  work_queue: table("work_queue", "WorkQueue", {
    name: "indexed_text",
    filter: "json",
    description: "text",
    is_paused: "bool",
    concurrency_limit: "int",
    priority: "int",
    last_polled: "timestamp",
    status: "enum",
    work_pool_id: "uuid",
  }),
  worker: table("worker", "Worker", {
    work_pool_id: "uuid",
    name: "indexed_text",
    last_heartbeat_time: "timestamp",
    heartbeat_interval_seconds: "int",
    status: "enum",
  }),
  agent: table("agent", "Agent", { name: "indexed_text", work_queue_id: "uuid", last_activity_time: "timestamp" }),
  concurrency_limit: table("concurrency_limit", "ConcurrencyLimit", { tag: "indexed_text", concurrency_limit: "int", active_slots: "json" }),
  concurrency_limit_v2: table("concurrency_limit_v2", "ConcurrencyLimitV2", {
    active: "bool",
    name: "indexed_text",
    limit: "int",
    active_slots: "int",
    denied_slots: "int",
    slot_decay_per_second: "float",
    avg_slot_occupancy_seconds: "float",
  }),
  concurrency_lease: table("concurrency_lease", "ConcurrencyLease", {
    resource_ids: "json",
    expiration: "timestamp",
    slots: "int",
    holder_type: "text",
    holder_id: "uuid",
  }),
  variable: table("variable", "Variable", { name: "indexed_text", value: "json", tags: "json" }),
  artifact: table("artifact", "Artifact", {
    key: "indexed_text",
    task_run_id: "uuid",
    flow_run_id: "uuid",
    type: "text",
    data: "json",
    description: "text",
    metadata_: "json",
  }),
  artifact_collection: table("artifact_collection", "ArtifactCollection", {
    key: "indexed_text",
    latest_id: "uuid",
    task_run_id: "uuid",
    flow_run_id: "uuid",
    type: "text",
    data: "json",
    description: "text",
    metadata_: "json",
  }),
  saved_search: table("saved_search", "SavedSearch", { name: "indexed_text", filters: "json" }),
  flow_run_input: table("flow_run_input", "FlowRunInput", { flow_run_id: "uuid", key: "indexed_text", value: "text", sender: "text" }),
  csrf_token: table("csrf_token", "CsrfToken", { token: "text", client: "indexed_text", expiration: "timestamp" }),
  automation: table("automation", "Automation", {
    name: "text",
    description: "text",
    enabled: "bool",
    tags: "json",
    trigger: "json",
    actions: "json",
    actions_on_trigger: "json",
    actions_on_resolve: "json",
  }),
  automation_bucket: table("automation_bucket", "AutomationBucket", {
    automation_id: "uuid",
    trigger_id: "uuid",
    bucketing_key: "json",
    last_event: "json",
    start: "timestamp",
    end: "timestamp",
    count: "int",
    last_operation: "text",
    triggered_at: "timestamp",
  }),
  automation_related_resource: table("automation_related_resource", "AutomationRelatedResource", {
    automation_id: "uuid",
    resource_id: "indexed_text",
    automation_owned_by_resource: "bool",
  }),
  composite_trigger_child_firing: table("composite_trigger_child_firing", "CompositeTriggerChildFiring", {
    automation_id: "uuid",
    parent_trigger_id: "uuid",
    child_trigger_id: "uuid",
    child_firing_id: "uuid",
    child_fired_at: "timestamp",
    child_firing: "json",
  }),
  automation_event_follower: table("automation_event_follower", "AutomationEventFollower", {
    scope: "indexed_text",
    leader_event_id: "uuid",
    follower_event_id: "uuid",
    received: "timestamp",
    follower: "json",
  }),
  automation_action_queue: table("automation_action_queue", "AutomationActionQueue", {
    automation_id: "uuid",
    action_index: "int",
    triggered_action: "json",
    available_at: "timestamp",
    attempts: "int",
  }),
} as const;

export type Tables = typeof tables;
export type TableName = keyof Tables;

/** Decoded row of a table: JSON parsed, booleans as booleans, timestamps canonical. */
export type DecodedRow = Record<string, unknown>;

type Decoder = (row: Record<string, unknown>) => DecodedRow;
const decoders = new WeakMap<Dialect, WeakMap<TableSpec, Map<string, Decoder>>>();

/**
 * A fast row decoder for `spec` (optionally reading columns under a prefix, for joins). Built once per
 * dialect, table and prefix: repositories bound to a new transaction reuse it.
 */
export function rowDecoder<R = DecodedRow>(dialect: Dialect, spec: TableSpec, prefix = ""): (row: Record<string, unknown>) => R {
  let bySpec = decoders.get(dialect);
  if (!bySpec) {
    bySpec = new WeakMap();
    decoders.set(dialect, bySpec);
  }
  let byPrefix = bySpec.get(spec);
  if (!byPrefix) {
    byPrefix = new Map();
    bySpec.set(spec, byPrefix);
  }
  let decoder = byPrefix.get(prefix);
  if (!decoder) {
    decoder = buildDecoder(dialect, spec, prefix);
    byPrefix.set(prefix, decoder);
  }
  return decoder as (row: Record<string, unknown>) => R;
}

/**
 * The decoder is generated code: one object literal with the table's columns as fixed keys, each read
 * from the row by a constant name. V8 then builds every decoded row from one shape, without the
 * dynamic stores and shape changes of filling an empty object column by column (which made a read of
 * a run with its state cost about twice as much). Column names come from the table specs above.
 */
function buildDecoder(dialect: Dialect, spec: TableSpec, prefix: string): Decoder {
  const fields = Object.entries(spec.columns).map(([column, kind]) => {
    const value = `row[${JSON.stringify(prefix + column)}]`;
    const read = (decode: string) => `(v = ${value}) === null || v === undefined ? null : ${decode}`;
    let expression: string;
    switch (kind) {
      case "json":
        expression = read("d.decodeJson(v)");
        break;
      case "bool":
        expression = `d.decodeBool(${value})`;
        break;
      case "timestamp":
        expression = read("d.decodeTimestamp(v)");
        break;
      case "int":
      case "float":
        expression = read("Number(v)");
        break;
      default:
        expression = `(v = ${value}) === undefined ? null : v`;
    }
    return `${JSON.stringify(column)}: ${expression}`;
  });
  const factory = new Function("d", `"use strict"; return function decode(row) { let v; return { ${fields.join(", ")} }; };`) as (d: Dialect) => Decoder;
  return factory(dialect);
}

/** Wraps a value for binding according to its column kind. */
export function bindValue(kind: ColumnKind, value: unknown): unknown {
  if (value === undefined) return null;
  if (kind === "json") return value === null ? null : new JsonValue(value);
  return value;
}

const selectLists = new WeakMap<TableSpec, Map<string, Sql>>();

/** `alias.col AS prefixcol, ...` for every column of `spec` (built once per table, alias and prefix). */
export function selectList(spec: TableSpec, alias: string, prefix = ""): Sql {
  let lists = selectLists.get(spec);
  if (!lists) {
    lists = new Map();
    selectLists.set(spec, lists);
  }
  const key = `${alias} ${prefix}`;
  let list = lists.get(key);
  if (!list) {
    list = sql.raw(
      Object.keys(spec.columns)
        .map((c) => (prefix ? `${alias}."${c}" AS "${prefix}${c}"` : `${alias}."${c}"`))
        .join(", "),
    );
    lists.set(key, list);
  }
  return list;
}

/** INSERT of one row: columns in `values` only (others take their defaults). */
export function insertSql(spec: TableSpec, values: Record<string, unknown>, suffix: Sql = sql.empty): Sql {
  const columns = Object.keys(values).filter((c) => values[c] !== undefined);
  for (const c of columns) if (!(c in spec.columns)) throw new Error(`${spec.name} has no column ${c}`);
  for (const c of columns) checkIndexedText(spec, c, values[c]);
  return sql`INSERT INTO ${sql.ident(spec.name)} (${sql.raw(columns.map((c) => `"${c}"`).join(", "))}) VALUES (${sql.join(
    columns.map((c) => sql`${bindValue(spec.columns[c]!, values[c])}`),
  )})${suffix}`;
}

/** `col = value, ...` for the given values (skipping undefined ones). */
export function assignments(spec: TableSpec, values: Record<string, unknown>): Sql {
  const columns = Object.keys(values).filter((c) => values[c] !== undefined);
  for (const c of columns) if (!(c in spec.columns)) throw new Error(`${spec.name} has no column ${c}`);
  for (const c of columns) checkIndexedText(spec, c, values[c]);
  return sql.join(columns.map((c) => sql`${sql.ident(c)} = ${bindValue(spec.columns[c]!, values[c])}`));
}
