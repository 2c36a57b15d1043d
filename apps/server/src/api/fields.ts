/**
 * Request pieces shared by the variables, artifacts, saved searches and flow run input routes, worded
 * as pydantic words its problems.
 */
import { z } from "zod";

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
