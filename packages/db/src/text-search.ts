/**
 * Prefect's text search syntax (logs, events): space-separated terms match if ANY appears; `-term` or
 * `!term` excludes; `+term` is required; "quoted phrases" (with \" escapes) match as a whole. Matching
 * is case-insensitive and by substring, over the columns the caller names.
 */
import type { Dialect } from "./dialect.js";
import { type Sql, sql } from "./sql.js";

export interface TextSearchQuery {
  readonly include: string[];
  readonly exclude: string[];
  readonly required: string[];
}

function unescapePhrase(phrase: string): string {
  return phrase.replace(/\\(["\\])/g, "$1");
}

export function parseTextSearch(query: string): TextSearchQuery {
  const result: TextSearchQuery = { include: [], exclude: [], required: [] };
  let i = 0;
  const add = (prefix: string | undefined, term: string) => {
    if (!term.trim()) return;
    if (prefix === "-" || prefix === "!") result.exclude.push(term);
    else if (prefix === "+") result.required.push(term);
    else result.include.push(term);
  };
  while (i < query.length) {
    if (/\s/.test(query[i]!)) {
      i++;
      continue;
    }
    let prefix: string | undefined;
    if ("-!+".includes(query[i]!)) {
      // A prefix counts only when a term follows it directly.
      if (i + 1 < query.length && !/\s/.test(query[i + 1]!)) prefix = query[i];
      i++;
      if (prefix === undefined) continue;
    }
    if (query[i] === '"') {
      const start = ++i;
      while (i < query.length && query[i] !== '"') i += query[i] === "\\" && i + 1 < query.length ? 2 : 1;
      add(prefix, unescapePhrase(query.slice(start, i)));
      if (i < query.length) i++;
      continue;
    }
    const start = i;
    while (i < query.length && !/\s/.test(query[i]!) && query[i] !== '"') i++;
    add(prefix, query.slice(start, i));
  }
  return result;
}

/** The condition for `query` over `columns` (each a text expression). */
export function textSearchSql(d: Dialect, query: string, columns: readonly Sql[]): Sql {
  const { include, exclude, required } = parseTextSearch(query);
  const anywhere = (term: string) => sql.or(columns.map((c) => d.containsInsensitive(c, term)));
  return sql.and([
    include.length ? sql.or(include.map(anywhere)) : sql.empty,
    ...required.map(anywhere),
    ...exclude.map((term) => sql`NOT (${anywhere(term)})`),
  ]);
}
