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
    return sql`${column} IN (${sql.join(values.map((v) => sql`${v}`))})`;
  },
  notInList(column, values) {
    if (values.length === 0) return sql.raw("1=1");
    return sql`${column} NOT IN (${sql.join(values.map((v) => sql`${v}`))})`;
  },
  jsonArrayContainsAll(column, values) {
    if (values.length === 0) return sql.raw("1=1");
    return sql.and(values.map((v) => sql`EXISTS (SELECT 1 FROM json_each(${column}) WHERE json_each.value = ${v})`));
  },
  jsonArrayContainsAny(column, values) {
    if (values.length === 0) return sql.raw("0=1");
    return sql`EXISTS (SELECT 1 FROM json_each(${column}) WHERE json_each.value IN (${sql.join(values.map((v) => sql`${v}`))}))`;
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
