/**
 * JSON as Python's `json` module writes it, for what must be byte-identical to Prefect: block schema
 * checksums (sha256 over `json.dumps(..., sort_keys=True)`) and the plaintext of encrypted block data.
 *
 * JavaScript reads `10.0` and `10` as the same number, while Python keeps one a float and the other an
 * int and writes them differently; a checksum over a schema with `"default": 10.0` depends on it. So
 * `parseJsonLosslessly` keeps every number written with a fraction or an exponent as a `PyFloat`,
 * which `pythonJsonDumps` writes as Python would and `JSON.stringify` writes as a plain number.
 */

/** A JSON number that Python reads as a float (it was written with a `.` or an exponent). */
export class PyFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

/** A JSON value as read by `parseJsonLosslessly`: like `JSON.parse`'s, with floats kept as `PyFloat`. */
export type PyJson = null | boolean | number | string | PyFloat | PyJson[] | { [key: string]: PyJson };

export function isJsonObject(value: unknown): value is Record<string, unknown> {
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
  if (isJsonObject(value)) {
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

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  const sign = value < 0 ? "-" : "";
  // Python switches to exponent notation when the decimal point would sit before -4 or after 16.
  if (exponent < -4 || exponent >= 16) {
    const fraction = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exponent);
    return `${sign}${fraction}e${exponent < 0 ? "-" : "+"}${e < 10 ? `0${e}` : e}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction || "0"}`;
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

/** Python's `repr()` of a string, as it appears in Prefect's error messages. */
export function pythonRepr(value: string): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of value) {
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}
