/**
 * Multi-row INSERTs for batched writes (logs, events). Rows go in chunks whose sizes come from a fixed
 * series and stay well under both backends' bound-parameter limits, so that a table has a handful of
 * statement texts, each prepared once and kept. (Every distinct row count is a statement of its own: on
 * SQLite one of n rows holds about 100 bytes per bound parameter while cached, so batches of every size
 * from 1 to 500 kept 173 MB of statements, and each new size cost its preparation: 1 ms for 500 event
 * rows.)
 */
import type { Dialect } from "./dialect.js";
import type { Queryable } from "./driver/types.js";
import { bindValue, checkIndexedText, type TableSpec } from "./tables.js";
import { quote, TextCache } from "./writes.js";

const MAX_PARAMS = 30_000;
/** Rows per statement, largest first (1-2-5: the round batch sizes clients send are one statement). */
const CHUNK_SIZES = [200, 100, 50, 20, 10, 5, 2, 1] as const;
/** Statement texts per dialect (their placeholders differ). */
const textsByDialect = new WeakMap<Dialect, TextCache>();

export interface InsertManyOptions {
  /** e.g. `ON CONFLICT (id) DO NOTHING` */
  readonly conflict?: string;
  /** Return the ids of the rows actually inserted. */
  readonly returnIds?: boolean;
}

/** Most rows in one statement of a table with `columnCount` columns. */
export function chunkSize(columnCount: number): number {
  return CHUNK_SIZES.find((size) => size * columnCount <= MAX_PARAMS) ?? 1;
}

/** The sizes `total` rows are cut into: the series' sizes, largest that fits first. */
export function chunkPlan(total: number, columnCount: number): number[] {
  const max = chunkSize(columnCount);
  const plan: number[] = [];
  let left = total;
  for (const size of CHUNK_SIZES) {
    if (size > max) continue;
    for (; left >= size; left -= size) plan.push(size);
  }
  return plan;
}

/** `items` cut as `chunkPlan` says. */
export function planChunks<T>(items: readonly T[], columnCount: number): T[][] {
  const parts: T[][] = [];
  let start = 0;
  for (const size of chunkPlan(items.length, columnCount)) {
    parts.push(items.slice(start, start + size));
    start += size;
  }
  return parts;
}

/** Inserts `rows` (values keyed by column) in chunks; returns the inserted ids when asked. */
export async function insertMany(
  q: Queryable,
  spec: TableSpec,
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  options: InsertManyOptions = {},
): Promise<string[]> {
  const kinds = columns.map((c) => {
    const kind = spec.columns[c];
    if (!kind) throw new Error(`${spec.name} has no column ${c}`);
    return kind;
  });
  const encode = q.dialect.encode;
  let texts = textsByDialect.get(q.dialect);
  if (!texts) {
    texts = new TextCache();
    textsByDialect.set(q.dialect, texts);
  }
  const ids: string[] = [];
  for (const chunk of planChunks(rows, columns.length)) {
    const text = texts.get(`${spec.name}:${columns.join(",")}:${chunk.length}:${options.conflict ?? ""}:${options.returnIds ?? false}`, () => {
      let n = 0;
      const tuples = chunk.map(() => `(${columns.map(() => q.dialect.placeholder(++n)).join(", ")})`).join(", ");
      return `INSERT INTO ${quote(spec.name)} (${columns.map(quote).join(", ")}) VALUES ${tuples}${options.conflict ? ` ${options.conflict}` : ""}${
        options.returnIds ? " RETURNING id" : ""
      }`;
    });
    const params: unknown[] = new Array(chunk.length * columns.length);
    let i = 0;
    for (const row of chunk) {
      for (let c = 0; c < columns.length; c++) {
        checkIndexedText(spec, columns[c]!, row[columns[c]!]);
        params[i++] = encode(bindValue(kinds[c]!, row[columns[c]!]));
      }
    }
    if (options.returnIds) {
      const inserted = await q.queryText<{ id: string }>(text, params);
      for (const r of inserted) ids.push(r.id);
    } else {
      await q.executeText(text, params);
    }
  }
  return ids;
}
