import type { Dialect } from "../../dialect.js";
import { ArrayValue, JsonValue, render, sql } from "../../sql.js";
import { type Timestamp, toTimestamp } from "../../timestamps.js";

function encode(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof JsonValue) return value.value === undefined ? null : JSON.stringify(value.value);
  if (value instanceof Date) return toTimestamp(value);
  if (value instanceof ArrayValue || Array.isArray(value)) {
    throw new TypeError("SQLite binds no arrays: expand lists with dialect.inList");
  }
  return value;
}

const placeholder = () => "?";

/** Lists longer than this are sent as they are (they are rare, and padding them could pass SQLite's limit of bound parameters). */
const MAX_PADDED_LIST = 1024;

/**
 * A list of values as a statement binds it: padded to the next power of two by repeating its last
 * value, which changes neither IN nor NOT IN. Each length of a list is another statement text, which
 * SQLite prepares again and the driver keeps (about 100 bytes per bound parameter), so a query sent
 * with lists of every length from 1 to 1000 would be a thousand statements; padded, it is eleven.
 */
export function paddedList(values: readonly unknown[]): readonly unknown[] {
  const n = values.length;
  if (n > MAX_PADDED_LIST) return values;
  let size = 1;
  while (size < n) size *= 2;
  if (size === n) return values;
  const padded = values.slice();
  const last = values[n - 1];
  while (padded.length < size) padded.push(last);
  return padded;
}

const bindList = (values: readonly unknown[]) => sql.join(paddedList(values).map((v) => sql`${v}`));

export const sqliteDialect: Dialect = {
  placeholder,
  encode,
  render: (query) => render(query, placeholder, encode),

  decodeJson(value) {
    // JSON columns are declared JSONB, which SQLite gives numeric affinity: a JSON number comes back
    // as a number, everything else as its JSON text.
    if (typeof value === "string") return JSON.parse(value);
    return value ?? null;
  },
  decodeBool: (value) => value === 1 || value === true || value === 1n,
  decodeTimestamp: (value) => (typeof value === "string" ? toTimestamp(value) : (value as Timestamp)),

  inList(column, values) {
    if (values.length === 0) return sql.raw("0=1");
    return sql`${column} IN (${bindList(values)})`;
  },
  notInList(column, values) {
    if (values.length === 0) return sql.raw("1=1");
    return sql`${column} NOT IN (${bindList(values)})`;
  },
  jsonArrayContainsAll(column, values) {
    if (values.length === 0) return sql.raw("1=1");
    return sql.and(values.map((v) => sql`EXISTS (SELECT 1 FROM json_each(${column}) WHERE json_each.value = ${v})`));
  },
  jsonArrayContainsAny(column, values) {
    if (values.length === 0) return sql.raw("0=1");
    return sql`EXISTS (SELECT 1 FROM json_each(${column}) WHERE json_each.value IN (${bindList(values)}))`;
  },
  jsonArrayIsEmpty: (column) => sql`json_array_length(${column}) = 0`,
  jsonObjectContains(column, object) {
    const entries = Object.entries(object);
    if (entries.length === 0) return sql.raw("1=1");
    return sql.and(entries.map(([key, value]) => sql`json_extract(${column}, ${jsonPath(key)}) = ${value}`));
  },
  jsonText: (column, key) => sql`json_extract(${column}, ${jsonPath(key)})`,
  truncate: (expression) => sql`CAST(${expression} AS INTEGER)`,
  // Whole seconds from strftime plus the fraction written after them (".ffffff"): exact to the
  // microsecond, where julianday() would lose tens of them.
  epochSeconds: (column) => sql`(CAST(strftime('%s', ${column}) AS INTEGER) + CAST(substr(${column}, 20, 7) AS REAL))`,
  asText: (column) => column,
  startsWith: (column, prefix) => sql`substr(${column}, 1, ${[...prefix].length}) = ${prefix}`,
  containsInsensitive: (column, text) => sql`${column} LIKE ${`%${text}%`}`,
  // An IMMEDIATE transaction holds the database's write lock: no row lock is needed, nor possible.
  forUpdate: () => sql.empty,
  forNoKeyUpdate: () => sql.empty,
  forShare: () => sql.empty,
  forUpdateSkipLocked: () => sql.empty,
  noLimit: sql.raw(" LIMIT -1"),
  randomUuid: () =>
    sql.raw(
      "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || " +
        "substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))",
    ),
};

function jsonPath(key: string): string {
  return `$."${key.replace(/"/g, '""')}"`;
}
