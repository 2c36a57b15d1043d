/**
 * Prefect's `POST /ui/schemas/validate`: values a form sends (with `{"__prefect_kind": ...}` objects
 * for workspace variables, JSON and Jinja), hydrated without raising as Prefect's `hydrate` does, then
 * checked against the schema; every problem is reported in Prefect's `build_error_obj` shape.
 */
import type { Repositories } from "@prefect/db";
import { metaSchemaProblem, preprocessSchema, type SchemaError, schemaErrors } from "../../api/json-schema.js";
import { HttpError } from "../../http/errors.js";

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/** A value hydration stands in for: an error to report, or a value valid as it is (a template). */
class Placeholder {
  // Private, so that the schema validator sees an object without properties.
  readonly #error: string | null;
  constructor(error: string | null) {
    this.#error = error;
  }
  get error(): string | null {
    return this.#error;
  }
}
/** `{"__prefect_kind": "json"}` without a value: removed from its parent, as Prefect's RemoveValue. */
const REMOVE = Symbol("remove");

interface HydrationContext {
  readonly variables: ReadonlyMap<string, unknown>;
}

function hydrateValue(value: unknown, ctx: HydrationContext): unknown {
  if (Array.isArray(value)) return value.map((v) => hydrateValue(v, ctx)).filter((v) => v !== REMOVE);
  if (!isRecord(value)) return value;
  if (!("__prefect_kind" in value)) {
    const out: Json = {};
    for (const [key, v] of Object.entries(value)) {
      const hydrated = hydrateValue(v, ctx);
      if (hydrated !== REMOVE) out[key] = hydrated;
    }
    return out;
  }
  const nested = (v: unknown) => (isRecord(v) ? hydrateValue(v, ctx) : v);
  switch (value.__prefect_kind) {
    case "none":
      return "value" in value ? hydrateValue(value.value, ctx) : new Placeholder("Missing 'value' key in __prefect object");
    case "json": {
      if (!("value" in value)) return REMOVE;
      const text = nested(value.value);
      if (text instanceof Placeholder || typeof text !== "string") return text;
      try {
        return JSON.parse(text);
      } catch (error) {
        return new Placeholder(`Invalid JSON: ${(error as Error).message}`);
      }
    }
    case "jinja": {
      if (!("template" in value)) return new Placeholder("Missing 'template' key in __prefect object");
      const template = nested(value.template);
      if (template instanceof Placeholder) return template;
      if (typeof template !== "string") return new Placeholder("Invalid jinja: the template is not text");
      // Templates are not rendered here (Prefect's `render_jinja=False`): a template stands for a valid value.
      return new Placeholder(null);
    }
    case "workspace_variable": {
      if (!("variable_name" in value)) return REMOVE;
      const name = nested(value.variable_name);
      if (name instanceof Placeholder) return name;
      if (typeof name === "string" && ctx.variables.has(name)) return ctx.variables.get(name);
      return new Placeholder(`Variable '${String(name)}' not found in workspace.`);
    }
    default:
      return value.value ?? null;
  }
}

/** Where hydration left an error, as jsonschema's placeholder validator reports it. */
function placeholderErrors(value: unknown, path: (string | number)[] = []): SchemaError[] {
  if (value instanceof Placeholder) return value.error === null ? [] : [{ path, keyword: "_placeholders", message: value.error, instance: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => placeholderErrors(v, [...path, i]));
  if (isRecord(value)) return Object.entries(value).flatMap(([k, v]) => placeholderErrors(v, [...path, k]));
  return [];
}

interface ErrorNode {
  property?: string;
  index?: number;
  errors: (string | ErrorNode)[];
}

/** Prefect's `build_error_obj`: problems nested by property and index, placeholders' first. */
export function buildErrorObject(errors: readonly SchemaError[]): { errors: (string | ErrorNode)[]; valid: boolean } {
  const byPath = new Map<string, SchemaError[]>();
  for (const error of errors) {
    const key = error.path.join("->");
    byPath.set(key, [...(byPath.get(key) ?? []), error]);
  }
  const kept = [...byPath.values()].flatMap((group) => {
    const placeholders = group.filter((e) => e.keyword === "_placeholders");
    return placeholders.length > 0 ? placeholders : group;
  });
  const root: (string | ErrorNode)[] = [];
  for (const error of kept) {
    // A placeholder that is not an error (a template) is valid where it stands.
    if (error.instance instanceof Placeholder && error.instance.error === null) continue;
    const path = [...error.path];
    // "'x' is a required property" belongs to property x.
    if (error.keyword === "required") path.push(error.message.split(" ")[0]!.replace(/^'|'$/g, ""));
    if (path.length === 0) root.push(error.message);
    let current = root;
    path.forEach((part, i) => {
      const last = i === path.length - 1;
      const key = typeof part === "number" ? "index" : "property";
      if (last) {
        current.push({ [key]: part, errors: [error.message] } as ErrorNode);
        return;
      }
      let entry = current.find((e): e is ErrorNode => typeof e === "object" && e[key] === part);
      if (!entry) {
        entry = { [key]: part, errors: [] } as ErrorNode;
        current.push(entry);
      }
      current = entry.errors;
    });
  }
  return { errors: root, valid: root.length === 0 };
}

export async function validateSchemaValues(db: Repositories, schema: Json, values: Json) {
  const prepared = preprocessSchema(schema);
  const invalid = metaSchemaProblem(prepared);
  if (invalid) throw new HttpError(422, `Invalid schema: ${invalid}`);
  const variables = new Map<string, unknown>();
  for (let offset = 0; ; offset += 1000) {
    const page = await db.variables.read({ limit: 1000, offset });
    for (const variable of page) variables.set(variable.name, variable.value);
    if (page.length < 1000) break;
  }
  const hydrated = hydrateValue(values, { variables });
  const instance = hydrated === REMOVE ? {} : hydrated;
  let errors: SchemaError[];
  try {
    errors = [...placeholderErrors(instance), ...schemaErrors(instance, prepared)];
  } catch (error) {
    // Circular references, or references that cannot be resolved.
    const message = (error as Error).message;
    throw new HttpError(422, message.startsWith("Invalid schema") ? message : `Invalid schema: Validation failed. Failure reason: ${message}`);
  }
  return buildErrorObject(errors);
}
