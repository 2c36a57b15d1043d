/**
 * Prefect's filter objects compiled to SQL conditions. Each function takes the alias its table has in
 * the surrounding query; criteria on related tables become correlated EXISTS sub-queries.
 */
import type { Dialect } from "./dialect.js";
import type { z } from "zod";
import { checkId } from "./ids.js";
import { parseInput } from "./repositories/context.js";
import {
  BlockDocumentFilter,
  BlockSchemaFilter,
  BlockTypeFilter,
  DeploymentFilter,
  FlowFilter,
  FlowRunFilter,
  LogFilter,
  type RunCriteria,
  TaskRunFilter,
} from "./schemas/filters.js";

/** Validates a filter given by a caller; canonical values (timestamps, ids) come out. */
function parsed<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> | null {
  return input === null || input === undefined ? null : parseInput(schema, input, what);
}

type Parsed<S extends z.ZodType> = z.output<S> | null | undefined;
import { type Sql, sql } from "./sql.js";
import { textSearchSql } from "./text-search.js";

type Op = "and_" | "or_" | undefined;

const combine = (op: Op, parts: Sql[]): Sql => {
  const present = parts.filter((p) => !p.isEmpty);
  if (present.length === 0) return sql.empty;
  return op === "or_" ? sql.or(present) : sql.and(present);
};

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);

const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

function idCriteria(d: Dialect, column: Sql, c: { any_?: readonly string[] | null; not_any_?: readonly string[] | null } | null | undefined): Sql[] {
  if (!c) return [];
  return [has(c.any_) ? d.inList(column, c.any_) : sql.empty, has(c.not_any_) ? d.notInList(column, c.not_any_) : sql.empty];
}

function nameCriteria(d: Dialect, column: Sql, c: { any_?: readonly string[] | null; like_?: string | null } | null | undefined): Sql[] {
  if (!c) return [];
  return [has(c.any_) ? d.inList(column, c.any_) : sql.empty, has(c.like_) ? d.containsInsensitive(column, c.like_) : sql.empty];
}

function timeCriteria(column: Sql, c: { before_?: string | null; after_?: string | null; is_null_?: boolean | null } | null | undefined): Sql[] {
  if (!c) return [];
  return [
    has(c.before_) ? sql`${column} <= ${c.before_}` : sql.empty,
    has(c.after_) ? sql`${column} >= ${c.after_}` : sql.empty,
    has(c.is_null_) ? (c.is_null_ ? sql`${column} IS NULL` : sql`${column} IS NOT NULL`) : sql.empty,
  ];
}

function tagCriteria(
  d: Dialect,
  column: Sql,
  c: { operator?: Op; all_?: readonly string[] | null; any_?: readonly string[] | null; is_null_?: boolean | null } | null | undefined,
): Sql {
  if (!c) return sql.empty;
  return combine(c.operator, [
    has(c.all_) ? d.jsonArrayContainsAll(column, c.all_) : sql.empty,
    has(c.any_) ? d.jsonArrayContainsAny(column, c.any_) : sql.empty,
    has(c.is_null_) ? (c.is_null_ ? d.jsonArrayIsEmpty(column) : sql`NOT (${d.jsonArrayIsEmpty(column)})`) : sql.empty,
  ]);
}

function stateCriteria(d: Dialect, typeColumn: Sql, nameColumn: Sql, c: NonNullable<Parsed<typeof FlowRunFilter>>["state"]): Sql {
  if (!c) return sql.empty;
  return combine(c.operator, [
    combine("and_", idCriteria(d, typeColumn, c.type)),
    combine("and_", idCriteria(d, nameColumn, c.name)),
  ]);
}

function nullableList(d: Dialect, column: Sql, c: { any_?: readonly string[] | null; is_null_?: boolean | null; operator?: Op } | null | undefined): Sql {
  if (!c) return sql.empty;
  return combine(c.operator, [
    has(c.any_) ? d.inList(column, c.any_) : sql.empty,
    has(c.is_null_) ? (c.is_null_ ? sql`${column} IS NULL` : sql`${column} IS NOT NULL`) : sql.empty,
  ]);
}

function flowFilterSql(d: Dialect, f: Parsed<typeof FlowFilter>, a: string): Sql {
  if (!f) return sql.empty;
  return combine(f.operator, [
    combine("and_", idCriteria(d, col(a, "id"), f.id)),
    combine("and_", nameCriteria(d, col(a, "name"), f.name)),
    tagCriteria(d, col(a, "tags"), f.tags),
    f.deployment && has(f.deployment.is_null_)
      ? f.deployment.is_null_
        ? sql`${col(a, "id")} NOT IN (SELECT fdep.flow_id FROM deployment fdep)`
        : sql`${col(a, "id")} IN (SELECT fdep.flow_id FROM deployment fdep)`
      : sql.empty,
  ]);
}

function flowRunFilterSql(d: Dialect, f: Parsed<typeof FlowRunFilter>, a: string): Sql {
  if (!f) return sql.empty;
  const createdBy = f.created_by
    ? combine(f.created_by.operator, [
        has(f.created_by.id_) ? d.inList(d.jsonText(col(a, "created_by"), "id"), f.created_by.id_) : sql.empty,
        has(f.created_by.type_) ? d.inList(d.jsonText(col(a, "created_by"), "type"), f.created_by.type_) : sql.empty,
        has(f.created_by.is_null_) ? (f.created_by.is_null_ ? sql`${col(a, "created_by")} IS NULL` : sql`${col(a, "created_by")} IS NOT NULL`) : sql.empty,
      ])
    : sql.empty;
  const parentFlowRun =
    f.parent_flow_run_id && has(f.parent_flow_run_id.any_)
      ? sql`${col(a, "parent_task_run_id")} IN (SELECT ptr.id FROM task_run ptr WHERE ${d.inList(sql.raw("ptr.flow_run_id"), f.parent_flow_run_id.any_)})`
      : sql.empty;
  return combine(f.operator, [
    combine("and_", idCriteria(d, col(a, "id"), f.id)),
    combine("and_", nameCriteria(d, col(a, "name"), f.name)),
    tagCriteria(d, col(a, "tags"), f.tags),
    nullableList(d, col(a, "deployment_id"), f.deployment_id),
    nullableList(d, col(a, "work_queue_name"), f.work_queue_name),
    stateCriteria(d, col(a, "state_type"), col(a, "state_name"), f.state),
    f.flow_version && has(f.flow_version.any_) ? d.inList(col(a, "flow_version"), f.flow_version.any_) : sql.empty,
    combine("and_", timeCriteria(col(a, "start_time"), f.start_time)),
    combine("and_", timeCriteria(col(a, "end_time"), f.end_time)),
    combine("and_", timeCriteria(col(a, "expected_start_time"), f.expected_start_time)),
    combine("and_", timeCriteria(col(a, "next_scheduled_start_time"), f.next_scheduled_start_time)),
    parentFlowRun,
    nullableList(d, col(a, "parent_task_run_id"), f.parent_task_run_id),
    combine("and_", idCriteria(d, col(a, "idempotency_key"), f.idempotency_key)),
    createdBy,
  ]);
}

function taskRunFilterSql(d: Dialect, f: Parsed<typeof TaskRunFilter>, a: string): Sql {
  if (!f) return sql.empty;
  const subflows =
    f.subflow_runs && has(f.subflow_runs.exists_)
      ? f.subflow_runs.exists_
        ? sql`EXISTS (SELECT 1 FROM flow_run sfr WHERE sfr.parent_task_run_id = ${col(a, "id")})`
        : sql`NOT EXISTS (SELECT 1 FROM flow_run sfr WHERE sfr.parent_task_run_id = ${col(a, "id")})`
      : sql.empty;
  return combine(f.operator, [
    combine("and_", idCriteria(d, col(a, "id"), f.id)),
    combine("and_", nameCriteria(d, col(a, "name"), f.name)),
    tagCriteria(d, col(a, "tags"), f.tags),
    stateCriteria(d, col(a, "state_type"), col(a, "state_name"), f.state),
    combine("and_", timeCriteria(col(a, "start_time"), f.start_time)),
    combine("and_", timeCriteria(col(a, "end_time"), f.end_time)),
    combine("and_", timeCriteria(col(a, "expected_start_time"), f.expected_start_time)),
    subflows,
    nullableList(d, col(a, "flow_run_id"), f.flow_run_id),
  ]);
}

/** Conditions for `flow` rows (alias `a`) from criteria on the flow, its runs and their task runs. */
/** Validates the run criteria a caller gave. */
function parseCriteria(c: RunCriteria) {
  return {
    flows: parsed(FlowFilter, c.flows, "flow filter"),
    flow_runs: parsed(FlowRunFilter, c.flow_runs, "flow run filter"),
    task_runs: parsed(TaskRunFilter, c.task_runs, "task run filter"),
  };
}

/** Conjunction of the non-empty conditions; empty when there are none. */
const allOf = (parts: Sql[]): Sql => combine("and_", parts);

/** The deployment and work queue restrictions of `criteria` on the flow run aliased `a`. */
function runPlacementSql(d: Dialect, criteria: RunCriteria, a: string): Sql {
  const ids = (values: readonly string[]) => values.map((v) => checkId(v, "id"));
  return allOf([
    has(criteria.deployment_ids) ? d.inList(col(a, "deployment_id"), ids(criteria.deployment_ids)) : sql.empty,
    has(criteria.work_queue_ids) ? d.inList(col(a, "work_queue_id"), ids(criteria.work_queue_ids)) : sql.empty,
  ]);
}

export function flowCriteriaSql(d: Dialect, criteria: RunCriteria, a: string): Sql {
  const c = parseCriteria(criteria);
  const runs = allOf([flowRunFilterSql(d, c.flow_runs, "cfr"), runPlacementSql(d, criteria, "cfr")]);
  const tasks = taskRunFilterSql(d, c.task_runs, "ctr");
  const taskExists = tasks.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM task_run ctr WHERE ctr.flow_run_id = cfr.id AND ${tasks})`;
  const runConditions = sql.and([runs, taskExists].filter((s) => !s.isEmpty));
  return sql.and([
    flowFilterSql(d, c.flows, a),
    runs.isEmpty && tasks.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM flow_run cfr WHERE cfr.flow_id = ${col(a, "id")} AND ${runConditions})`,
  ]);
}

/** Conditions for `flow_run` rows (alias `a`) from criteria on the run, its flow and its task runs. */
export function flowRunCriteriaSql(d: Dialect, criteria: RunCriteria, a: string): Sql {
  const c = parseCriteria(criteria);
  const flows = flowFilterSql(d, c.flows, "cf");
  const tasks = taskRunFilterSql(d, c.task_runs, "ctr");
  return sql.and([
    flowRunFilterSql(d, c.flow_runs, a),
    runPlacementSql(d, criteria, a),
    flows.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM flow cf WHERE cf.id = ${col(a, "flow_id")} AND ${flows})`,
    tasks.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM task_run ctr WHERE ctr.flow_run_id = ${col(a, "id")} AND ${tasks})`,
  ]);
}

/** Conditions for `task_run` rows (alias `a`) from criteria on the task run, its flow run and flow. */
export function taskRunCriteriaSql(d: Dialect, criteria: RunCriteria, a: string): Sql {
  const c = parseCriteria(criteria);
  const runs = allOf([flowRunFilterSql(d, c.flow_runs, "cfr"), runPlacementSql(d, criteria, "cfr")]);
  const flows = flowFilterSql(d, c.flows, "cf");
  const flowExists = flows.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM flow cf WHERE cf.id = cfr.flow_id AND ${flows})`;
  const runConditions = sql.and([runs, flowExists].filter((s) => !s.isEmpty));
  return sql.and([
    taskRunFilterSql(d, c.task_runs, a),
    runs.isEmpty && flows.isEmpty ? sql.empty : sql`EXISTS (SELECT 1 FROM flow_run cfr WHERE cfr.id = ${col(a, "flow_run_id")} AND ${runConditions})`,
  ]);
}

export function logFilterSql(d: Dialect, input: LogFilter | null | undefined, a: string): Sql {
  const f = parsed(LogFilter, input, "log filter");
  if (!f) return sql.empty;
  return combine(f.operator, [
    f.level && has(f.level.ge_) ? sql`${col(a, "level")} >= ${f.level.ge_}` : sql.empty,
    f.level && has(f.level.le_) ? sql`${col(a, "level")} <= ${f.level.le_}` : sql.empty,
    combine("and_", timeCriteria(col(a, "timestamp"), f.timestamp)),
    f.flow_run_id && has(f.flow_run_id.any_) ? d.inList(col(a, "flow_run_id"), f.flow_run_id.any_) : sql.empty,
    f.task_run_id ? nullableList(d, col(a, "task_run_id"), f.task_run_id) : sql.empty,
    f.text?.query.trim() ? textSearchSql(d, f.text.query, [col(a, "message"), col(a, "name")]) : sql.empty,
  ]);
}

export function blockTypeFilterSql(d: Dialect, input: BlockTypeFilter | null | undefined, a: string): Sql {
  const f = parsed(BlockTypeFilter, input, "block type filter");
  if (!f) return sql.empty;
  return sql.and([
    f.name && has(f.name.like_) ? d.containsInsensitive(col(a, "name"), f.name.like_) : sql.empty,
    f.slug && has(f.slug.any_) ? d.inList(col(a, "slug"), f.slug.any_) : sql.empty,
  ]);
}

export function blockSchemaFilterSql(d: Dialect, input: BlockSchemaFilter | null | undefined, a: string): Sql {
  const f = parsed(BlockSchemaFilter, input, "block schema filter");
  if (!f) return sql.empty;
  return combine(f.operator, [
    f.block_type_id && has(f.block_type_id.any_) ? d.inList(col(a, "block_type_id"), f.block_type_id.any_) : sql.empty,
    f.block_capabilities && has(f.block_capabilities.all_) ? d.jsonArrayContainsAll(col(a, "capabilities"), f.block_capabilities.all_) : sql.empty,
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.version && has(f.version.any_) ? d.inList(col(a, "version"), f.version.any_) : sql.empty,
  ]);
}

export function blockDocumentFilterSql(d: Dialect, input: BlockDocumentFilter | null | undefined, a: string): Sql {
  const f = parsed(BlockDocumentFilter, input, "block document filter");
  if (!f) return sql.empty;
  return combine(f.operator, [
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.is_anonymous && has(f.is_anonymous.eq_) ? sql`${col(a, "is_anonymous")} = ${f.is_anonymous.eq_}` : sql.empty,
    f.block_type_id && has(f.block_type_id.any_) ? d.inList(col(a, "block_type_id"), f.block_type_id.any_) : sql.empty,
    combine("and_", nameCriteria(d, col(a, "name"), f.name)),
  ]);
}

/** Conditions for `deployment` rows (alias `a`); `flow_or_deployment_name` also looks at the deployment's flow. */
export function deploymentFilterSql(d: Dialect, input: DeploymentFilter | null | undefined, a: string): Sql {
  const f = parsed(DeploymentFilter, input, "deployment filter");
  if (!f) return sql.empty;
  const like = f.flow_or_deployment_name?.like_;
  return combine(f.operator, [
    combine("and_", idCriteria(d, col(a, "id"), f.id)),
    combine("and_", nameCriteria(d, col(a, "name"), f.name)),
    like
      ? sql.or([
          d.containsInsensitive(col(a, "name"), like),
          sql`EXISTS (SELECT 1 FROM flow dff WHERE dff.id = ${col(a, "flow_id")} AND ${d.containsInsensitive(sql.raw("dff.name"), like)})`,
        ])
      : sql.empty,
    f.paused && has(f.paused.eq_) ? sql`${col(a, "paused")} = ${f.paused.eq_}` : sql.empty,
    tagCriteria(d, col(a, "tags"), f.tags),
    f.work_queue_name && has(f.work_queue_name.any_) ? d.inList(col(a, "work_queue_name"), f.work_queue_name.any_) : sql.empty,
  ]);
}

/** `WHERE cond` or nothing. */
export function where(condition: Sql): Sql {
  return condition.isEmpty ? sql.empty : sql` WHERE ${condition}`;
}

/** `LIMIT n OFFSET m` (either may be absent). */
export function page(d: Dialect, limit: number | null | undefined, offset: number | null | undefined): Sql {
  const parts: Sql[] = [];
  if (has(limit)) parts.push(sql` LIMIT ${limit}`);
  else if (has(offset) && offset > 0) parts.push(d.noLimit);
  if (has(offset) && offset > 0) parts.push(sql` OFFSET ${offset}`);
  return sql.join(parts, "");
}
