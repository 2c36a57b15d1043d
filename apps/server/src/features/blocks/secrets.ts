/**
 * Secret fields of block documents, handled as Prefect does. A schema's `secret_fields` are dotted
 * paths into the data (`"password"`, `"credentials.token"`, `"headers.*"` for every value under a key).
 * Reads mask the values at those paths as `"********"` unless secrets are asked for; an update that
 * sends the mask back for a stored secret keeps the stored value.
 *
 * Paths work on Prefect's flattened view of the data: nested non-empty objects are walked, everything
 * else (lists, empty objects, scalars) is a leaf, so a secret list is masked as a whole.
 */
import { isRecord, setOwn } from "../../prefect/json.js";

export const OBFUSCATED = "********";

type Flat = Map<string, { path: string[]; value: unknown }>;

const keyOf = (path: readonly string[]) => JSON.stringify(path);

/** Prefect's `dict_to_flatdict`, keyed by the path (in document order). */
export function flatten(data: Record<string, unknown>): Flat {
  const flat: Flat = new Map();
  const walk = (value: Record<string, unknown>, parent: string[]) => {
    for (const [key, item] of Object.entries(value)) {
      const path = [...parent, key];
      if (isRecord(item) && Object.keys(item).length > 0) walk(item, path);
      else flat.set(keyOf(path), { path, value: item });
    }
  };
  walk(data, []);
  return flat;
}

/** Prefect's `flatdict_to_dict`. */
export function unflatten(flat: Flat): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const { path, value } of flat.values()) {
    let current = result;
    for (const key of path.slice(0, -1)) {
      const next = Object.hasOwn(current, key) ? current[key] : undefined;
      if (isRecord(next)) current = next;
      else {
        const created: Record<string, unknown> = {};
        setOwn(current, key, created);
        current = created;
      }
    }
    setOwn(current, path[path.length - 1]!, value);
  }
  return result;
}

/** The schema's secret paths (`fields.secret_fields`), split on dots. */
export function secretPaths(fields: Record<string, unknown> | null | undefined): string[][] {
  const declared = fields?.secret_fields;
  if (!Array.isArray(declared)) return [];
  return declared.filter((field): field is string => typeof field === "string").map((field) => field.split("."));
}

const samePrefix = (a: readonly string[], b: readonly string[], length: number) =>
  a.length >= length && b.length >= length && a.slice(0, length).every((key, i) => key === b[i]);

/** The data with every secret value replaced by the mask (Prefect's `BlockDocument.from_orm_model`). */
export function maskSecrets(data: Record<string, unknown>, fields: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const paths = secretPaths(fields);
  if (paths.length === 0) return data;
  const flat = flatten(data);
  for (const secret of paths) {
    const entry = flat.get(keyOf(secret));
    if (entry && entry.value !== null && entry.value !== undefined) entry.value = OBFUSCATED;
    else if (secret.includes("*")) {
      const wildcard = secret.indexOf("*");
      for (const candidate of flat.values()) if (samePrefix(secret, candidate.path, wildcard)) candidate.value = OBFUSCATED;
    }
  }
  return unflatten(flat);
}

/**
 * Update data with masks sent back for stored secrets replaced by the stored values (Prefect's
 * `update_block_document`): someone saving every field of a document they read without secrets.
 */
export function restoreMaskedSecrets(
  update: Record<string, unknown>,
  current: Record<string, unknown>,
  fields: Record<string, unknown> | null | undefined,
): Record<string, unknown> {
  const paths = secretPaths(fields);
  if (paths.length === 0) return update;
  const flatUpdate = flatten(update);
  const flatCurrent = flatten(current);
  for (const secret of paths) {
    const stored = flatCurrent.get(keyOf(secret));
    if (stored && stored.value !== null && stored.value !== undefined) {
      const sent = flatUpdate.get(keyOf(secret));
      if (sent && sent.value === OBFUSCATED) sent.value = stored.value;
    } else if (secret.includes("*")) {
      const wildcard = secret.indexOf("*");
      for (const candidate of flatUpdate.values()) {
        if (!samePrefix(secret, candidate.path, wildcard) || candidate.value !== OBFUSCATED) continue;
        // Prefect fails here when nothing is stored at that path; we keep what was sent.
        const previous = flatCurrent.get(keyOf(candidate.path));
        if (previous) candidate.value = previous.value;
      }
    }
  }
  return unflatten(flatUpdate);
}
