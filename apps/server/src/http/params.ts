/** Request pieces the route groups share: ids, paging, pydantic's lax booleans and wording. */
import { InvalidError, Uuid } from "@prefect/db";
import { z } from "zod";

/** Prefect's PREFECT_API_DEFAULT_LIMIT: the default and the largest page a read returns. */
export const DEFAULT_LIMIT = 200;

export const IdParams = z.strictObject({ id: Uuid });

/** Prefect answers 201 when the call created the row and 200 when it returned an existing one. */
export const createdStatus = (created: boolean) => (created ? 201 : 200);

/** A body's `limit`: Prefect's default when absent, refused above it. */
export function limitOf(limit: number | null | undefined): number {
  if (limit === null || limit === undefined) return DEFAULT_LIMIT;
  if (limit < 0 || limit > DEFAULT_LIMIT) {
    const message = `Input should be less than or equal to ${DEFAULT_LIMIT} and greater than or equal to 0`;
    throw new InvalidError(message, [{ path: ["limit"], message }]);
  }
  return limit;
}

/** Prefect's `/paginate` response envelope. */
export function paginated<T>(results: T[], count: number, limit: number, page: number) {
  return { results, count, limit, pages: pageCount(count, limit), page };
}

/** Prefect's page count. */
export const pageCount = (count: number, limit: number) => (limit > 0 ? Math.ceil(count / limit) : 0);

/**
 * Starlette's `{id:uuid}`: only a UUID matches, so any other segment matches no route and Prefect
 * answers 404 "Not Found" rather than 422.
 */
export const UUID_ID = ":id([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

/**
 * Any JSON value, null included (pydantic's `Any`), that must be present: left out, it is pydantic's
 * "Field required" (the error handler words an `invalid_type` on a missing value that way).
 */
export const RequiredAnyValue = z.unknown().superRefine((value, ctx) => {
  if (value === undefined) ctx.addIssue({ code: "invalid_type", expected: "unknown", message: "Field required", input: value });
});

/** A string field checked by a Prefect validator: its message, as pydantic prefixes it. */
export const valueError = (message: string) => `Value error, ${message}`;

const TRUE = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE = new Set(["0", "off", "f", "false", "n", "no"]);

/** A boolean given as text (a query parameter, a header), read as pydantic reads one. */
export const LaxBoolean = z.string().transform((value, ctx) => {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  ctx.addIssue({ code: "custom", message: "Input should be a valid boolean, unable to interpret input" });
  return z.NEVER;
});
