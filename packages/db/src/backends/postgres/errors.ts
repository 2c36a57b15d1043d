/**
 * node-postgres' errors become the package's own errors here, once, at the edge: callers never see
 * a driver error.
 */
import { AlreadyExistsError, BusyError, DatabaseError, InvalidError } from "../../errors.js";

interface PgError {
  code: string;
  message: string;
  constraint?: string;
  detail?: string;
  column?: string;
}

const PG_BUSY = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available
  "57014", // query_canceled (statement timeout)
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "08000",
  "08003",
  "08006",
  "08001",
  "08004",
]);
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"]);

export function translatePostgresError(error: unknown): unknown {
  if (error instanceof DatabaseError) return error;
  const e = error as Partial<PgError> | null;
  if (!e) return error;
  const code = e.code;
  if (typeof code === "string" && NETWORK.has(code)) {
    return new BusyError("The PostgreSQL server cannot be reached; try again.", { cause: error });
  }
  if (error instanceof Error && /timeout exceeded when trying to connect|Connection terminated/i.test(error.message)) {
    return new BusyError("No PostgreSQL connection became free in time; try again.", { cause: error });
  }
  // node-postgres' answers on a connection that died under a transaction (server restart, terminated
  // backend), or that was closed meanwhile.
  if (error instanceof Error && /Client has encountered a connection error and is not queryable|Client was closed and is not queryable/i.test(error.message)) {
    return new BusyError("The connection to PostgreSQL was lost; try again.", { cause: error });
  }
  if (typeof code !== "string" || code.length !== 5) return error;
  if (PG_BUSY.has(code)) {
    return new BusyError(`PostgreSQL could not complete the statement now (${e.message}); try again.`, { cause: error });
  }
  if (code === "25P02") {
    return new InvalidError("An earlier statement in this transaction failed, so PostgreSQL ignores the rest of it; nothing will be committed.", [], {
      cause: error,
      reason: "transaction_aborted",
    });
  }
  if (code === "23505") {
    return new AlreadyExistsError(`A row with the same key already exists${e.detail ? `: ${e.detail}` : "."}`, e.constraint, { cause: error });
  }
  if (code === "23503") {
    return new InvalidError(`The row refers to a row that does not exist${e.detail ? `: ${e.detail}` : "."}`, [], { cause: error, reason: "missing_reference" });
  }
  if (code.startsWith("23") || code.startsWith("22")) {
    // integrity (not null, check) and data exceptions (malformed uuid, out-of-range number, bad JSON)
    return new InvalidError(e.message ?? "invalid value", e.column ? [{ path: [e.column], message: e.message ?? "" }] : [], {
      cause: error,
      reason: code.startsWith("23") ? "constraint_violation" : "invalid_value",
    });
  }
  return error;
}
