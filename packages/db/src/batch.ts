/**
 * Multi-row INSERTs for batched writes (logs, events). Rows go in chunks that stay well under both
 * backends' bound-parameter limits; the statement text depends only on the chunk size, so each size is
 * prepared once.
 */
import type { Dialect } from "./dialect.js";
import type { Queryable } from "./driver/types.js";
import { bindValue, checkIndexedText, type TableSpec } from "./tables.js";
import { quote, TextCache } from "./writes.js";

const MAX_PARAMS = 30_000;
const MAX_ROWS = 1_000;
/** Statement texts per dialect (their placeholders differ). */
const textsByDialect = new WeakMap<Dialect, TextCache>();

export interface InsertManyOptions {
  /** e.g. `ON CONFLICT (id) DO NOTHING` */
  readonly conflict?: string;
  /** Return the ids of the rows actually inserted. */
  readonly returnIds?: boolean;
}

export function chunkSize(columnCount: number): number {
  return Math.max(1, Math.min(MAX_ROWS, Math.floor(MAX_PARAMS / columnCount)));
}

/** Inserts `rows` (values keyed by column) in chunks; returns the inserted ids when asked. */
export async function insertMany(
  q: Queryable,
  spec: TableSpec,
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  options: InsertManyOptions = {},
): Promise<string[]> {
  const size = chunkSize(columns.length);
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
  for (let start = 0; start < rows.length; start += size) {
    const chunk = rows.slice(start, start + size);
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
