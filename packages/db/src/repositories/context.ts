import type { z } from "zod";
import type { Backend } from "../backends/backend.js";
import type { Queryable } from "../driver/types.js";
import { InvalidError } from "../errors.js";

/**
 * What every repository is built on: where to run SQL (the pool or one transaction), and the backend
 * for what its SQL cannot say the same way on both (run writes, claims).
 */
export interface RepositoryContext {
  readonly q: Queryable;
  readonly backend: Backend;
}

/** Validates repository input with its zod schema; a failure becomes an InvalidError listing each problem. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.map((p) => (typeof p === "symbol" ? String(p) : p)),
    message: issue.message,
  }));
  const summary = issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
  throw new InvalidError(`Invalid ${what}: ${summary}`, issues);
}
