import type { Dialect } from "../../dialect.js";
import { ArrayValue, JsonValue, render, sql } from "../../sql.js";
import { type Timestamp, toTimestamp } from "../../timestamps.js";

function encode(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  // JSON is always sent as text: node-postgres would turn a JS array into a PostgreSQL array.
  if (value instanceof JsonValue) return value.value === undefined ? null : JSON.stringify(value.value);
  if (value instanceof ArrayValue) return value.values;
  if (value instanceof Date) return toTimestamp(value);
  return value;
}

const placeholder = (index: number) => `$${index}`;

export const postgresDialect: Dialect = {
  placeholder,
  encode,
  render: (query) => render(query, placeholder, encode),

  decodeJson: (value) => value ?? null,
  decodeBool: (value) => value === true,
  // timestamptz values are parsed into canonical form by the pool's type parser (postgres/driver.ts).
  decodeTimestamp: (value) => (typeof value === "string" ? (value as Timestamp) : toTimestamp(value as Date)),

  inList(column, values) {
    if (values.length === 0) return sql.raw("FALSE");
    return sql`${column} = ANY(${new ArrayValue(values)})`;
  },
  notInList(column, values) {
    if (values.length === 0) return sql.raw("TRUE");
    return sql`NOT (${column} = ANY(${new ArrayValue(values)}))`;
  },
  jsonArrayContainsAll(column, values) {
    if (values.length === 0) return sql.raw("TRUE");
    return sql`${column} @> ${new JsonValue(values)}::jsonb`;
  },
  jsonArrayContainsAny(column, values) {
    if (values.length === 0) return sql.raw("FALSE");
    return sql`${column} ?| ${new ArrayValue(values)}::text[]`;
  },
  jsonArrayIsEmpty: (column) => sql`${column} = '[]'::jsonb`,
  jsonObjectContains(column, object) {
    if (Object.keys(object).length === 0) return sql.raw("TRUE");
    return sql`${column} @> ${new JsonValue(object)}::jsonb`;
  },
  jsonText: (column, key) => sql`(${column} ->> ${key})`,
  truncate: (expression) => sql`trunc(${expression})::integer`,
  epochSeconds: (column) => sql`EXTRACT(EPOCH FROM CAST(${column} AS timestamptz))::double precision`,
  asText: (column) => sql`(${column})::text`,
  startsWith: (column, prefix) => sql`starts_with(${column}, ${prefix}::text)`,
  containsInsensitive: (column, text) => sql`${column} ILIKE ${`%${text}%`}`,
  forUpdate: (alias) => sql.raw(` FOR UPDATE OF ${alias}`),
  forNoKeyUpdate: (alias) => sql.raw(` FOR NO KEY UPDATE OF ${alias}`),
  forShare: (alias) => sql.raw(` FOR SHARE OF ${alias}`),
  forUpdateSkipLocked: (alias) => sql.raw(` FOR UPDATE OF ${alias} SKIP LOCKED`),
  noLimit: sql.empty,
  randomUuid: () => sql.raw("gen_random_uuid()"),
};
