/**
 * Block schema checksums as Prefect's client and server compute them (`Block._calculate_schema_checksum`):
 * the fields without any `secret_fields` key, with `definitions` narrowed to the definitions of
 * non-block objects they reference (or dropped when none), hashed as
 * `sha256(json.dumps([[fields], {}], sort_keys=True))` (`hash_objects`) and prefixed `sha256:`.
 * Prefect's client looks schemas up by the checksum it computes, so ours must be byte-identical.
 */
import { createHash } from "node:crypto";
import { isRecord, pythonJsonDumps, setOwn } from "../../prefect/json.js";

type Fields = Record<string, unknown>;

/** Every `$ref` value found in `value`, depth first, in document order. */
export function collectNestedReferenceStrings(value: unknown): unknown[] {
  const found: unknown[] = [];
  if (isRecord(value)) {
    const ref = value.$ref;
    if (ref !== undefined && ref !== null && ref !== "" && ref !== false && ref !== 0) found.push(ref);
    for (const item of Object.values(value)) found.push(...collectNestedReferenceStrings(item));
  } else if (Array.isArray(value)) {
    for (const item of value) found.push(...collectNestedReferenceStrings(item));
  }
  return found;
}

/**
 * The definitions of objects referenced from `objectDefinition` (directly or through other such
 * definitions) that are not blocks (have no `block_type_slug`).
 */
export function nonBlockReferenceDefinitions(objectDefinition: unknown, definitions: Fields, seen: Set<string> = new Set()): Fields {
  let result: Fields = {};
  for (const reference of collectNestedReferenceStrings(objectDefinition)) {
    if (typeof reference !== "string") continue;
    const key = reference.replaceAll("#/definitions/", "");
    const definition = Object.hasOwn(definitions, key) ? definitions[key] : undefined;
    if (isRecord(definition) && Object.keys(definition).length > 0 && (definition.block_type_slug === undefined || definition.block_type_slug === null)) {
      // Prefect recurses without a guard; a self-referencing model would never finish there, so stop
      // at definitions already being expanded (the result is the same for acyclic schemas).
      const nested = seen.has(key) ? {} : nonBlockReferenceDefinitions(definition, definitions, new Set([...seen, key]));
      const merged: Fields = {};
      for (const [k, v] of Object.entries(result)) setOwn(merged, k, v);
      setOwn(merged, key, definition);
      for (const [k, v] of Object.entries(nested)) setOwn(merged, k, v);
      result = merged;
    }
  }
  return result;
}

/** A copy of `value` without the given keys in any nested object (lists are left as they are). */
export function removeNestedKeys(keys: readonly string[], value: unknown): unknown {
  if (!isRecord(value)) return value;
  const copy: Fields = {};
  for (const [key, item] of Object.entries(value)) if (!keys.includes(key)) setOwn(copy, key, removeNestedKeys(keys, item));
  return copy;
}

export function calculateSchemaChecksum(fields: Fields): string {
  const forChecksum = removeNestedKeys(["secret_fields"], fields) as Fields;
  const definitions = forChecksum.definitions;
  if (isTruthy(definitions)) {
    const nonBlock = nonBlockReferenceDefinitions(forChecksum, isRecord(definitions) ? definitions : {});
    if (Object.keys(nonBlock).length > 0) forChecksum.definitions = nonBlock;
    else delete forChecksum.definitions;
  }
  const text = pythonJsonDumps([[forChecksum], {}], { sortKeys: true });
  return `sha256:${createHash("sha256").update(text, "utf8").digest("hex")}`;
}

/** Python's truthiness of a JSON value. */
export function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}
