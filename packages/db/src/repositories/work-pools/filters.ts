/** The SQL of Prefect's work pool, work queue and worker filters. */
import type { Dialect } from "../../dialect.js";
import { WorkerFilter, WorkPoolFilter, WorkQueueFilter } from "../../schemas/work-pools.js";
import { type Sql, sql } from "../../sql.js";
import { parseInput } from "../context.js";

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);
export const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

function combine(operator: "and_" | "or_", parts: Sql[]): Sql {
  const present = parts.filter((p) => !p.isEmpty);
  if (present.length === 0) return sql.empty;
  return operator === "or_" ? sql.or(present) : sql.and(present);
}

/** The SQL condition of a work pool filter on the `work_pool` row aliased `a`. */
export function workPoolFilterSql(d: Dialect, input: WorkPoolFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkPoolFilter, input, "work pool filter");
  return combine(f.operator, [
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.name && has(f.name.any_) ? d.inList(col(a, "name"), f.name.any_) : sql.empty,
    f.type && has(f.type.any_) ? d.inList(col(a, "type"), f.type.any_) : sql.empty,
  ]);
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The SQL condition of a work queue filter on the `work_queue` row aliased `a`. */
export function workQueueFilterSql(d: Dialect, input: WorkQueueFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkQueueFilter, input, "work queue filter");
  const prefixes = f.name?.startswith_;
  return combine(f.operator, [
    f.id && has(f.id.any_) ? d.inList(col(a, "id"), f.id.any_) : sql.empty,
    f.name && has(f.name.any_) ? d.inList(col(a, "name"), f.name.any_) : sql.empty,
    has(prefixes)
      ? prefixes.length === 0
        ? sql.raw("1=0")
        : sql.or(prefixes.map((p) => sql`lower(${col(a, "name")}) LIKE lower(${`${escapeLike(p)}%`}) ESCAPE '\\'`))
      : sql.empty,
  ]);
}

/** The SQL condition of a worker filter on the `worker` row aliased `a`. */
export function workerFilterSql(d: Dialect, input: WorkerFilter | null | undefined, a: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(WorkerFilter, input, "worker filter");
  const heartbeat = f.last_heartbeat_time;
  return combine(f.operator, [
    heartbeat && has(heartbeat.before_) ? sql`${col(a, "last_heartbeat_time")} <= ${heartbeat.before_}` : sql.empty,
    heartbeat && has(heartbeat.after_) ? sql`${col(a, "last_heartbeat_time")} >= ${heartbeat.after_}` : sql.empty,
    f.status && has(f.status.any_) ? d.inList(col(a, "status"), f.status.any_) : sql.empty,
    f.status && has(f.status.not_any_) && f.status.not_any_.length > 0 ? d.notInList(col(a, "status"), f.status.not_any_) : sql.empty,
  ]);
}
