/**
 * Errors become Prefect's responses: 404/409 `{"detail": ...}`, 422 with every problem and where
 * (`exception_detail` as Prefect's server sends it, and `detail` as its OpenAPI document declares),
 * 503 with `Retry-After` when the database is busy (Prefect's client retries those), never a stack
 * trace.
 */
import { AlreadyExistsError, BusyError, InvalidError, MigrationError, NotFoundError } from "@prefect/db";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ObjectNotFoundError, PrefectError, ValidationProblems } from "../prefect/errors.js";
import { RequestValidationError } from "./zod.js";

interface ValidationProblem {
  loc: (string | number)[];
  msg: string;
  type: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

const LOCATIONS = { body: "body", querystring: "query", params: "path", headers: "header" } as const;

/** zod issues in pydantic's words (what Prefect's clients and users are used to reading). */
function problemsOf(error: RequestValidationError, request: FastifyRequest): ValidationProblem[] {
  const prefix = LOCATIONS[error.part];
  return error.issues.flatMap((issue): ValidationProblem[] => {
    const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
    const input = error.part === "body" ? { input: pick(request.body, issue.path) } : {};
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ loc: [prefix, ...path, key], msg: "Extra inputs are not permitted", type: "extra_forbidden" }));
    }
    if (issue.code === "invalid_type" && pick(request.body, issue.path) === undefined && error.part === "body") {
      return [{ loc: [prefix, ...path], msg: "Field required", type: "missing" }];
    }
    if (issue.code === "invalid_type" && issue.expected === "object" && error.part === "body" && typeof pick(request.body, issue.path) === "string") {
      // A body sent as text (not JSON) to a route that takes an object, as pydantic words it.
      return [{ loc: [prefix, ...path], msg: "Input should be a valid dictionary or object to extract fields from", type: "model_attributes_type", ...input }];
    }
    return [{ loc: [prefix, ...path], msg: issue.message, type: issue.code, ...input }];
  });
}

function pick(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function unprocessable(reply: FastifyReply, problems: ValidationProblem[], body: unknown) {
  return reply.code(422).send({
    exception_message: "Invalid request received.",
    exception_detail: problems,
    request_body: body ?? null,
    detail: problems,
  });
}

export function errorHandler(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  const cause = (error as { cause?: unknown }).cause;
  const validation = error instanceof RequestValidationError ? error : cause instanceof RequestValidationError ? cause : undefined;
  if (validation) return unprocessable(reply, problemsOf(validation, request), request.body);
  if (error instanceof ValidationProblems) return unprocessable(reply, error.problems, error.requestBody);
  if (error instanceof PrefectError) return reply.code(error.status).headers(error.headers).send({ detail: error.detail });
  if (error instanceof ObjectNotFoundError) return reply.code(404).send({ exception_message: error.message, detail: error.message });
  if (error instanceof NotFoundError) return reply.code(404).send({ detail: error.message });
  if (error instanceof AlreadyExistsError) return reply.code(409).send({ detail: error.message });
  if (error instanceof InvalidError) {
    return unprocessable(
      reply,
      error.issues.length
        ? error.issues.map((i) => ({ loc: ["body", ...i.path], msg: i.message, type: "value_error" }))
        : [{ loc: ["body"], msg: error.message, type: "value_error" }],
      request.body,
    );
  }
  if (error instanceof BusyError) {
    return reply
      .code(503)
      .header("Retry-After", String(Math.max(1, Math.ceil(error.retryAfterSeconds))))
      .send({ exception_message: "Service Unavailable", detail: error.message });
  }
  const code = (error as FastifyError).code;
  if (code === "FST_ERR_CTP_INVALID_JSON_BODY" || code === "FST_ERR_CTP_EMPTY_JSON_BODY" || (error as SyntaxError).name === "SyntaxError") {
    // FastAPI's answer: where the decoder stopped, and why.
    const position = /position (\d+)/.exec(error.message);
    return unprocessable(
      reply,
      [{ loc: ["body", position ? Number(position[1]) : 0], msg: "JSON decode error", type: "json_invalid", ctx: { error: error.message } }],
      null,
    );
  }
  if (code === "FST_ERR_CTP_BODY_TOO_LARGE") return reply.code(413).send({ detail: "Request body is too large." });
  if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return reply.code(415).send({ detail: "Unsupported media type: send application/json." });
  const status = (error as FastifyError).statusCode;
  if (status && status >= 400 && status < 500) return reply.code(status).send({ detail: error.message });
  if (error instanceof MigrationError) request.log.error({ err: error }, "database migration problem");
  else request.log.error({ err: error }, "unhandled error");
  return reply.code(500).send({ exception_message: "Internal Server Error" });
}
