/**
 * A small SQL builder: tagged templates whose interpolations become bound parameters, fragments that
 * nest, and rendering to each backend's placeholder style (`?` for SQLite, `$n` for PostgreSQL).
 * Identifiers and keywords only ever enter through `sql.raw` / `sql.ident`, never from values.
 */

/** Marks a value to be stored as JSON text (SQLite) or jsonb (PostgreSQL). */
export class JsonValue {
  constructor(readonly value: unknown) {}
}

/** Marks an array to be bound as one array parameter (PostgreSQL `= ANY($n)`). */
export class ArrayValue {
  constructor(readonly values: readonly unknown[]) {}
}

type Part = string | { readonly param: unknown };

export class Sql {
  constructor(readonly parts: readonly Part[]) {}

  /** True when the fragment renders to nothing. */
  get isEmpty(): boolean {
    return this.parts.every((p) => typeof p === "string" && p.trim() === "");
  }
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): Sql {
  const parts: Part[] = [];
  strings.forEach((text, i) => {
    if (text) parts.push(text);
    if (i < values.length) {
      const value = values[i];
      if (value instanceof Sql) parts.push(...value.parts);
      else parts.push({ param: value });
    }
  });
  return new Sql(parts);
}

sql.raw = (text: string): Sql => new Sql([text]);

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A double-quoted identifier (table or column name). Only plain names are accepted. */
sql.ident = (name: string): Sql => {
  if (!IDENT.test(name)) throw new Error(`not a plain SQL identifier: ${name}`);
  return new Sql([`"${name}"`]);
};

sql.join = (fragments: readonly Sql[], separator = ", "): Sql => {
  const parts: Part[] = [];
  fragments.forEach((fragment, i) => {
    if (i > 0) parts.push(separator);
    parts.push(...fragment.parts);
  });
  return new Sql(parts);
};

sql.empty = new Sql([]);

/** Conjunction of the non-empty conditions; TRUE when there are none. */
sql.and = (conditions: readonly Sql[]): Sql => {
  const present = conditions.filter((c) => !c.isEmpty);
  if (present.length === 0) return sql.raw("1=1");
  if (present.length === 1) return present[0]!;
  return sql`(${sql.join(present, ") AND (")})`;
};

/**
 * Disjunction of the non-empty conditions; TRUE when there are none. Parenthesised as a whole, so it
 * stays one condition after a plain `AND` in a template (`... WHERE x = y AND ${sql.or(...)}`).
 */
sql.or = (conditions: readonly Sql[]): Sql => {
  const present = conditions.filter((c) => !c.isEmpty);
  if (present.length === 0) return sql.raw("1=1");
  if (present.length === 1) return present[0]!;
  return sql`((${sql.join(present, ") OR (")}))`;
};

sql.json = (value: unknown): JsonValue => new JsonValue(value);

export interface RenderedSql {
  readonly text: string;
  readonly params: unknown[];
}

export function render(query: Sql, placeholder: (index: number) => string, encode: (value: unknown) => unknown): RenderedSql {
  let text = "";
  const params: unknown[] = [];
  for (const part of query.parts) {
    if (typeof part === "string") text += part;
    else {
      params.push(encode(part.param));
      text += placeholder(params.length);
    }
  }
  return { text, params };
}
