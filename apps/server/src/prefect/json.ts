/**
 * JSON as Prefect's Python reads and writes it. `pythonJsonDumps` is `json.dumps`, for what must be
 * byte-identical to Prefect: block schema checksums (sha256 over `json.dumps(..., sort_keys=True)`)
 * and the plaintext of encrypted block data.
 *
 * JavaScript reads `10.0` and `10` as the same number, while Python keeps one a float and the other an
 * int and writes them differently; a checksum over a schema with `"default": 10.0` depends on it. So
 * `parseJsonLosslessly` keeps every number written with a fraction or an exponent as a `PyFloat`,
 * which `pythonJsonDumps` writes as Python would and `JSON.stringify` writes as a plain number.
 */

import { pythonFloatRepr } from "./python.js";

/** A JSON number that Python reads as a float (it was written with a `.` or an exponent). */
export class PyFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

/** A JSON value as read by `parseJsonLosslessly`: like `JSON.parse`'s, with floats kept as `PyFloat`. */
export type PyJson = null | boolean | number | string | PyFloat | PyJson[] | { [key: string]: PyJson };

/** A JSON object (not an array, not null, not a `PyFloat`). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof PyFloat);
}

/** Sets a property even when its name is `__proto__` (as `JSON.parse` does). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

/** A deep copy that keeps `PyFloat`s (and `__proto__` keys) as they are. */
export function deepCopy<T>(value: T): T {
  if (Array.isArray(value)) return value.map((item) => deepCopy(item)) as T;
  if (isRecord(value)) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setOwn(copy, key, deepCopy(item));
    return copy as T;
  }
  return value;
}

class JsonSyntaxError extends SyntaxError {}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * Parses JSON text (which `JSON.parse` must accept too), keeping floats as `PyFloat`. Duplicate keys:
 * the last one wins, as with `JSON.parse` and Python.
 */
export function parseJsonLosslessly(text: string): PyJson {
  let at = 0;
  const fail = (): never => {
    throw new JsonSyntaxError(`Unexpected token in JSON at position ${at}`);
  };
  const space = () => {
    while (at < text.length) {
      const c = text.charCodeAt(at);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) at++;
      else break;
    }
  };
  const value = (): PyJson => {
    space();
    const c = text[at];
    if (c === "{") {
      at++;
      const object: Record<string, PyJson> = {};
      space();
      if (text[at] === "}") {
        at++;
        return object;
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail();
        const key = string();
        space();
        if (text[at] !== ":") fail();
        at++;
        setOwn(object, key, value());
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "}") {
          at++;
          return object;
        } else fail();
      }
    }
    if (c === "[") {
      at++;
      const array: PyJson[] = [];
      space();
      if (text[at] === "]") {
        at++;
        return array;
      }
      for (;;) {
        array.push(value());
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "]") {
          at++;
          return array;
        } else fail();
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", at)) {
      at += 4;
      return true;
    }
    if (text.startsWith("false", at)) {
      at += 5;
      return false;
    }
    if (text.startsWith("null", at)) {
      at += 4;
      return null;
    }
    NUMBER.lastIndex = at;
    const match = NUMBER.exec(text);
    if (!match) return fail();
    at += match[0].length;
    const number = Number(match[0]);
    return match[1] !== undefined || match[2] !== undefined ? new PyFloat(number) : number;
  };
  const string = (): string => {
    // The opening quote is at `at`; find the closing one, skipping escapes, and let JSON.parse decode.
    let end = at + 1;
    while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
    if (end >= text.length) fail();
    const decoded: unknown = JSON.parse(text.slice(at, end + 1));
    at = end + 1;
    return decoded as string;
  };
  const result = value();
  space();
  if (at !== text.length) fail();
  return result;
}

const ESCAPES: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** Python's `json.dumps` of a string with `ensure_ascii=True`: everything outside ' '..'~' escaped. */
function pythonString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const code = value.charCodeAt(i);
    if (code >= 0x20 && code <= 0x7e && ch !== '"' && ch !== "\\") out += ch;
    else out += ESCAPES[ch] ?? `\\u${code.toString(16).padStart(4, "0")}`;
  }
  return `${out}"`;
}

/** Python's ordering of `str` keys: by code point (JavaScript's default sort compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const difference = left[i]!.codePointAt(0)! - right[i]!.codePointAt(0)!;
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

/**
 * `json.dumps(value, sort_keys=sortKeys)` with Python's defaults: `", "` and `": "` separators,
 * ASCII only, integers as integers and `PyFloat`s as Python floats. Non-integral JavaScript numbers
 * are written as Python floats too.
 */
export function pythonJsonDumps(value: unknown, options: { sortKeys?: boolean } = {}): string {
  const write = (item: unknown): string => {
    if (item === null || item === undefined) return "null";
    if (item === true) return "true";
    if (item === false) return "false";
    if (item instanceof PyFloat) return pythonFloatRepr(item.value);
    if (typeof item === "number") return Number.isInteger(item) ? BigInt(item).toString() : pythonFloatRepr(item);
    if (typeof item === "string") return pythonString(item);
    if (Array.isArray(item)) return item.length === 0 ? "[]" : `[${item.map(write).join(", ")}]`;
    if (typeof item === "object") {
      const keys = Object.keys(item);
      if (options.sortKeys) keys.sort(compareCodePoints);
      if (keys.length === 0) return "{}";
      return `{${keys.map((key) => `${pythonString(key)}: ${write((item as Record<string, unknown>)[key])}`).join(", ")}}`;
    }
    throw new TypeError(`Object of type ${typeof item} is not JSON serializable`);
  };
  return write(value);
}

/** Deep equality of JSON values, object key order ignored (Python's `==` on dicts and lists). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return false;
}

/** `{field: {from, to}}` for the given fields whose values differ (missing counts as null), as Prefect's update events list them. */
export function changedFields<T extends object>(previous: T, current: T, fields: readonly (keyof T & string)[]): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const field of fields) {
    const from = previous[field] ?? null;
    const to = current[field] ?? null;
    if (!sameJson(from, to)) changes[field] = { from, to };
  }
  return changes;
}
