/**
 * better-sqlite3's errors become the package's own errors here, once, at the edge: callers never see
 * a driver error.
 */
import { AlreadyExistsError, BusyError, DatabaseError, InvalidError } from "../../errors.js";

interface SqliteError {
  code: string;
  message: string;
}

export function isSqliteBusy(error: unknown): boolean {
  const code = (error as Partial<SqliteError> | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

export function translateSqliteError(error: unknown): unknown {
  if (error instanceof DatabaseError) return error;
  const e = error as Partial<SqliteError> | null;
  if (!e || typeof e.code !== "string" || !e.code.startsWith("SQLITE_")) return error;
  const message = e.message ?? e.code;
  if (isSqliteBusy(error)) {
    return new BusyError("The SQLite database is locked by another writer; try again.", { cause: error });
  }
  if (e.code === "SQLITE_CONSTRAINT_UNIQUE" || e.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    const columns = message.split("constraint failed: ")[1];
    return new AlreadyExistsError(`A row with the same ${columns ?? "key"} already exists.`, columns, { cause: error });
  }
  if (e.code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
    return new InvalidError("The row refers to a row that does not exist.", [], { cause: error, reason: "missing_reference" });
  }
  if (e.code.startsWith("SQLITE_CONSTRAINT")) {
    return new InvalidError(`The row breaks a constraint: ${message}`, [], { cause: error, reason: "constraint_violation" });
  }
  return error;
}
