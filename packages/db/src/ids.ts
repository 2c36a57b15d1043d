import { InvalidError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks an id passed to a repository, so both backends refuse a malformed one the same way. */
export function checkId(id: string, what = "id"): string {
  if (typeof id !== "string" || !UUID.test(id)) {
    throw new InvalidError(`${what} must be a UUID (got ${JSON.stringify(id)})`, [{ path: [what], message: "Input should be a valid UUID" }]);
  }
  return id.toLowerCase();
}
