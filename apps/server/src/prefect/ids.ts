/** Ids as Python's `UUID(...)` reads them: with or without hyphens, any case. */

/** A UUID with or without hyphens (what `UUID(hex)` accepts besides its braced and URN forms). */
export const LOOSE_UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Hyphenated lower case, as Python prints a UUID; `value` must hold 32 hex digits (hyphens aside). */
export function canonicalUuid(value: string): string {
  const hex = value.replaceAll("-", "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Starlette's `Union[UUID, str]` path parameter: any form Python's `UUID()` reads is an id; null otherwise. */
export function uuidOrNull(value: string): string | null {
  const hex = value
    .trim()
    .replace(/^urn:uuid:/i, "")
    .replace(/^\{(.*)\}$/, "$1")
    .replaceAll("-", "");
  return /^[0-9a-fA-F]{32}$/.test(hex) ? canonicalUuid(hex) : null;
}
