import { randomUUID } from "node:crypto";
import { InvalidError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks an id passed to a repository, so both backends refuse a malformed one the same way. */
export function checkId(id: string, what = "id"): string {
  if (typeof id !== "string" || !UUID.test(id)) {
    throw new InvalidError(`${what} must be a UUID (got ${JSON.stringify(id)})`, [{ path: [what], message: "Input should be a valid UUID" }]);
  }
  return id.toLowerCase();
}

let lastMillis = 0;
let sequence = 0;

/**
 * A version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, 12 bits of a counter that keeps ids
 * minted in one millisecond in order within this process, then random bits (those of a version 4
 * UUID, whose variant bits are already right). The ids of rows written in the same moment sort
 * together, so a batch of them lands in one or two pages of an index instead of a page each: on
 * SQLite every page a transaction changes is written again at its COMMIT.
 */
export function uuid7(): string {
  let millis = Date.now();
  if (millis <= lastMillis) {
    millis = lastMillis;
    sequence = (sequence + 1) & 0xfff;
    if (sequence === 0) millis = ++lastMillis;
  } else {
    // Start each millisecond low in the counter's range, so that it rarely runs out within it.
    sequence = Math.floor(Math.random() * 0x800);
  }
  lastMillis = millis;
  const time = millis.toString(16).padStart(12, "0");
  const random = randomUUID();
  return `${time.slice(0, 8)}-${time.slice(8)}-7${sequence.toString(16).padStart(3, "0")}-${random.slice(19)}`;
}
