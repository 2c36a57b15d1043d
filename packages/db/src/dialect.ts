/**
 * The SQL that is spelled differently on SQLite and PostgreSQL, one implementation per backend
 * (backends/sqlite/dialect.ts, backends/postgres/dialect.ts): parameter placeholders and encoding, how
 * values come back, and the few fragments that differ (JSON containment, case-insensitive matching,
 * list membership, row locks, fresh ids). Everything else in the repositories is shared SQL.
 */
import { type RenderedSql, type Sql, sql } from "./sql.js";
import type { Timestamp } from "./timestamps.js";

export interface Dialect {
  /** Parameter marker for the 1-based parameter `index`. */
  placeholder(index: number): string;
  /** Encodes one bound value (booleans, JSON, timestamps, arrays) for the driver. */
  encode(value: unknown): unknown;
  render(query: Sql): RenderedSql;

  /** A JSON column's value as read by the driver, decoded. */
  decodeJson(value: unknown): unknown;
  decodeBool(value: unknown): boolean;
  /** A timestamp column's value as read by the driver, in canonical form. */
  decodeTimestamp(value: unknown): Timestamp;

  /** `column IN (values)`; FALSE for an empty list. */
  inList(column: Sql, values: readonly unknown[]): Sql;
  /** `column NOT IN (values)`; TRUE for an empty list. */
  notInList(column: Sql, values: readonly unknown[]): Sql;
  /** The JSON array in `column` contains every one of `values`. */
  jsonArrayContainsAll(column: Sql, values: readonly string[]): Sql;
  /** The JSON array in `column` contains at least one of `values`. */
  jsonArrayContainsAny(column: Sql, values: readonly string[]): Sql;
  /** The JSON array in `column` is empty. */
  jsonArrayIsEmpty(column: Sql): Sql;
  /** The JSON object in `column` has every key/value pair of `object` (string values). */
  jsonObjectContains(column: Sql, object: Readonly<Record<string, string>>): Sql;
  /** The text value under `key` of the JSON object in `column`. */
  jsonText(column: Sql, key: string): Sql;
  /** A non-negative number expression truncated to an integer. */
  truncate(expression: Sql): Sql;
  /** A timestamp column as seconds since the Unix epoch (fractional). */
  epochSeconds(column: Sql): Sql;
  /** A column's value as text (JSON included), for substring search. */
  asText(column: Sql): Sql;
  /** Case-sensitive prefix match. */
  startsWith(column: Sql, prefix: string): Sql;
  /** Case-insensitive "contains" match, as Prefect's `like_` filters. */
  containsInsensitive(column: Sql, text: string): Sql;
  /**
   * Appended to a SELECT that reads rows of `alias` it will update in the same transaction: a row lock
   * on PostgreSQL; nothing on SQLite, where the IMMEDIATE transaction already excludes other writers.
   */
  forUpdate(alias: string): Sql;
  /**
   * As `forUpdate`, for changes that leave the rows' keys alone: `FOR NO KEY UPDATE` on PostgreSQL, which
   * such changes conflict on while inserts of rows referring to them go on; nothing on SQLite.
   */
  forNoKeyUpdate(alias: string): Sql;
  /** Appended to a SELECT whose rows must not change until the transaction ends; nothing on SQLite. */
  forShare(alias: string): Sql;
  /** As `forUpdate`, passing over rows another transaction holds (`FOR UPDATE SKIP LOCKED`); nothing on SQLite. */
  forUpdateSkipLocked(alias: string): Sql;
  /** What an OFFSET without a LIMIT needs before it (SQLite accepts no OFFSET alone). */
  readonly noLimit: Sql;
  /** A new random UUID for each row a statement writes. */
  randomUuid(): Sql;
}

/** `later - earlier` in seconds, for two timestamp expressions (columns or bound values). */
export function secondsBetween(d: Dialect, later: Sql, earlier: Sql): Sql {
  return sql`(${d.epochSeconds(later)} - ${d.epochSeconds(earlier)})`;
}
