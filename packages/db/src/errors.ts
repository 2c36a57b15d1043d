/**
 * The errors that leave @prefect/db. Every driver error is translated into one of these at the edge
 * (see driver/errors.ts), so callers map them to responses (404, 409, 503, 422) without knowing
 * which database answered.
 */
export abstract class DatabaseError extends Error {
  abstract readonly code: "NOT_FOUND" | "ALREADY_EXISTS" | "BUSY" | "INVALID" | "MIGRATION_FAILED";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The row asked for does not exist. */
export class NotFoundError extends DatabaseError {
  readonly code = "NOT_FOUND" as const;
}

/** A unique key is already taken (Prefect answers 409). */
export class AlreadyExistsError extends DatabaseError {
  readonly code = "ALREADY_EXISTS" as const;
  constructor(
    message: string,
    readonly constraint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The database could not serve the call now (locked SQLite file, exhausted pool, deadlock,
 * statement timeout, lost connection). Nothing was written; the same call may succeed later.
 */
export class BusyError extends DatabaseError {
  readonly code = "BUSY" as const;
  /** Seconds after which a retry is sensible. */
  readonly retryAfterSeconds: number;
  constructor(message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 1;
  }
}

/**
 * Why an input was refused, so that callers can answer each case without reading the message:
 * - `invalid_input`: it breaks a rule of the data model (a missing field, a malformed or out-of-range
 *   value, a call the repository does not allow);
 * - `missing_reference`: it refers to a row that does not exist (a foreign key, or a row the
 *   repository looked up first);
 * - `constraint_violation`: the database refused it under another integrity rule (not null, check);
 * - `invalid_value`: the database cannot store one of its values (malformed uuid, number out of
 *   range, bad JSON);
 * - `transaction_aborted`: an earlier statement of the transaction failed, so nothing is committed;
 * - `misconfigured`: a database setting, or the database server itself, cannot be used.
 */
export type InvalidReason = "invalid_input" | "missing_reference" | "constraint_violation" | "invalid_value" | "transaction_aborted" | "misconfigured";

/**
 * A state written as its transaction's last statement (`setState` with `final`) found the run already
 * holding a state at its timestamp: the transaction was rolled back, nothing of it committed. Run it
 * again without `final`, which moves the timestamp on.
 */
export class StateTimestampTakenError extends AlreadyExistsError {}

/** The input breaks a rule of the data model (bad reference, missing field, malformed value); `reason` says which kind. */
export class InvalidError extends DatabaseError {
  readonly code = "INVALID" as const;
  readonly reason: InvalidReason;
  constructor(
    message: string,
    readonly issues: readonly { path: (string | number)[]; message: string }[] = [],
    options?: { cause?: unknown; reason?: InvalidReason },
  ) {
    super(message, options);
    this.reason = options?.reason ?? "invalid_input";
  }
}

/** A migration could not be applied; the database was left as it was before that migration. */
export class MigrationError extends DatabaseError {
  readonly code = "MIGRATION_FAILED" as const;
  constructor(
    readonly migration: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isDatabaseError(error: unknown): error is DatabaseError {
  return error instanceof DatabaseError;
}
