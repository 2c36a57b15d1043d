/**
 * The failures Prefect's API reports in its own words, raised by the feature services and mapped to
 * responses by the HTTP error handler (`http/errors.ts`). Failures of the data layer travel as
 * @prefect/db's errors (NotFoundError 404, AlreadyExistsError 409, InvalidError 422, BusyError 503).
 */
import { AlreadyExistsError, InvalidError, NotFoundError } from "@prefect/db";

/** Prefect's `HTTPException(status, detail)`: answered as `{"detail": ...}` with that status. */
export class PrefectError extends Error {
  constructor(
    readonly status: number,
    readonly detail: unknown,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
  }
}

export const badRequest = (detail: string) => new PrefectError(400, detail);
export const forbidden = (detail: string) => new PrefectError(403, detail);
export const notFound = (detail: string) => new PrefectError(404, detail);
export const conflict = (detail: string) => new PrefectError(409, detail);
export const gone = (detail: string) => new PrefectError(410, detail);
/** A 422 with a plain `detail` (not a list of validation problems). */
export const unprocessableDetail = (detail: string) => new PrefectError(422, detail);
export const locked = (detail: string, headers: Record<string, string> = {}) => new PrefectError(423, detail, headers);
/** A 500 Prefect reports with a reason (not an unhandled error). */
export const internalError = (detail: string) => new PrefectError(500, detail);

/**
 * Prefect's ObjectNotFoundError: a 404 whose body carries the message as `exception_message` (what
 * Prefect's handler sends) and as `detail` (what its API document declares for errors).
 */
export class ObjectNotFoundError extends Error {}

/** A Prefect validation failure that its API reports as a 422 naming only the message (and where). */
export function unprocessable(message: string, path: (string | number)[] = []): InvalidError {
  return new InvalidError(message, [{ path, message }]);
}

/** Prefect's answer to a broken unique or foreign key (its IntegrityError handler). */
export const INTEGRITY_CONFLICT_MESSAGE =
  "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.";

export const integrityConflict = () => conflict(INTEGRITY_CONFLICT_MESSAGE);

/** Whether a data-layer error is a reference to a missing row (a foreign key). */
export const isMissingReference = (error: unknown): boolean => error instanceof InvalidError && error.reason === "missing_reference";

/** A taken unique key or a reference to a missing row, as Prefect answers both (409); anything else as it is. */
export function asIntegrityConflict(error: unknown): never {
  if (error instanceof AlreadyExistsError || isMissingReference(error)) throw integrityConflict();
  throw error;
}

/** A NotFoundError of the data layer (a row deleted meanwhile) as the given error; anything else as it is. */
export function notFoundAs(make: () => Error) {
  return (error: unknown): never => {
    if (error instanceof NotFoundError) throw make();
    throw error;
  };
}

/** One problem as pydantic reports it (`loc`, `msg`, `type`, and `input`/`ctx` when known). */
export interface ValidationProblem {
  loc: (string | number)[];
  msg: string;
  type: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

/**
 * Prefect's RequestValidationError raised by a route itself: a 422 listing these problems as given
 * (their `loc` already complete), with `requestBody` as the request body it echoes.
 */
export class ValidationProblems extends Error {
  constructor(
    readonly problems: ValidationProblem[],
    readonly requestBody: unknown,
  ) {
    super(problems[0]?.msg ?? "Invalid request");
  }
}
