/**
 * Prefect's `POST /ui/schemas/validate`: values a form sends (with `{"__prefect_kind": ...}` objects
 * for workspace variables, JSON and Jinja), hydrated without raising as Prefect's `hydrate` does, then
 * checked against the schema; every problem is reported in Prefect's `build_error_obj` shape.
 */
import type { Repositories } from "@prefect/db";
import { unprocessableDetail } from "../../prefect/errors.js";
import { HydrationPlaceholder, hydrateForValidation, workspaceVariables } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { metaSchemaProblem, preprocessSchema, type SchemaError, schemaErrors } from "../../prefect/json-schema.js";

type Json = Record<string, unknown>;

/** Where hydration left an error, as jsonschema's placeholder validator reports it. */
function placeholderErrors(value: unknown, path: (string | number)[] = []): SchemaError[] {
  if (value instanceof HydrationPlaceholder) return value.error === null ? [] : [{ path, keyword: "_placeholders", message: value.error, instance: value }];
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
    if (error.instance instanceof HydrationPlaceholder && error.instance.error === null) continue;
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
  if (invalid) throw unprocessableDetail(`Invalid schema: ${invalid}`);
  const instance = await hydrateForValidation(values, workspaceVariables(db));
  let errors: SchemaError[];
  try {
    errors = [...placeholderErrors(instance), ...schemaErrors(instance, prepared)];
  } catch (error) {
    // Circular references, or references that cannot be resolved.
    const message = (error as Error).message;
    throw unprocessableDetail(message.startsWith("Invalid schema") ? message : `Invalid schema: Validation failed. Failure reason: ${message}`);
  }
  return buildErrorObject(errors);
}
