import { z } from "zod";
import { insertMany } from "../batch.js";
import { logFilterSql, page, where } from "../filters.js";
import type { Page } from "../schemas/common.js";
import { TimestampSchema, Uuid } from "../schemas/common.js";
import type { LogFilter, LogSort } from "../schemas/filters.js";
import { uuid7 } from "../ids.js";
import { sql } from "../sql.js";
import { rowDecoder, selectList, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface Log {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  level: number;
  message: string;
  /** When the client logged it. */
  timestamp: Timestamp;
  flow_run_id: string | null;
  task_run_id: string | null;
}

export const LogCreate = z.object({
  name: z.string(),
  level: z.number().int().min(-32768).max(32767),
  message: z.string(),
  timestamp: TimestampSchema,
  flow_run_id: Uuid.nullish(),
  task_run_id: Uuid.nullish(),
});
export type LogCreate = z.input<typeof LogCreate>;

const LogBatch = z.array(LogCreate);

export interface LogReadOptions extends Page {
  readonly filter?: LogFilter | null | undefined;
  readonly sort?: LogSort | undefined;
}

export interface LogRepository {
  /** Writes a batch of logs in as few statements as the backend allows, atomically. */
  createMany(logs: readonly LogCreate[]): Promise<Log[]>;
  read(options?: LogReadOptions): Promise<Log[]>;
  count(filter?: LogFilter | null): Promise<number>;
  /** Deletes the logs matching `filter`; returns how many. */
  delete(filter: LogFilter): Promise<number>;
}

const spec = tables.log;
const COLUMNS = Object.keys(spec.columns);
// PostgreSQL text cannot hold NUL characters; Prefect strips them too.
const stripNul = (text: string) => (text.includes("\u0000") ? text.replaceAll("\u0000", "") : text);

export function logRepository({ q }: RepositoryContext): LogRepository {
  const decode = rowDecoder<Log>(q.dialect, spec);

  return {
    async createMany(input) {
      const batch = parseInput(LogBatch, input, "logs");
      if (batch.length === 0) return [];
      const ts = now();
      const rows: Log[] = batch.map((log) => ({
        id: uuid7(),
        created: ts,
        updated: ts,
        name: stripNul(log.name),
        level: log.level,
        message: stripNul(log.message),
        timestamp: log.timestamp,
        flow_run_id: log.flow_run_id ?? null,
        task_run_id: log.task_run_id ?? null,
      }));
      const write = (tx: typeof q) => insertMany(tx, spec, COLUMNS, rows as unknown as Record<string, unknown>[]);
      if (rows.length <= 1000 || q.inTransaction) await write(q);
      else await q.transaction(write);
      return rows;
    },

    async read(options = {}) {
      const order = options.sort === "TIMESTAMP_DESC" ? `l."timestamp" DESC, l.id DESC` : `l."timestamp" ASC, l.id ASC`;
      const rows = await q.query(
        sql`SELECT ${selectList(spec, "l")} FROM log l${where(logFilterSql(q.dialect, options.filter, "l"))} ORDER BY ${sql.raw(order)}${page(
          q.dialect,
          options.limit,
          options.offset,
        )}`,
      );
      return rows.map(decode);
    },

    async count(filter) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM log l${where(logFilterSql(q.dialect, filter, "l"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async delete(filter) {
      const condition = logFilterSql(q.dialect, filter, "l");
      return q.execute(sql`DELETE FROM log WHERE id IN (SELECT l.id FROM log l${where(condition)})`);
    },
  };
}
