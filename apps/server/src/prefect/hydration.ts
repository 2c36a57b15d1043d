/**
 * Prefect's hydration of the values the UI and clients send (`schema_tools.hydrate`): objects such as
 * `{"__prefect_kind": "workspace_variable", ...}` become the values they stand for.
 */
import type { Repositories } from "@prefect/db";
import { isRecord } from "./json.js";

/** A value `hydrate` could not resolve (Prefect's HydrationError); its message is Prefect's. */
export class HydrationError extends Error {}

/** A workspace variable's value by name; `undefined` when there is no such variable. */
export type VariableLookup = (name: string) => Promise<unknown>;

/** The workspace variables as `db` reads them. */
export const workspaceVariables =
  (db: Repositories): VariableLookup =>
  async (name) =>
    (await db.variables.getByName(name))?.value;

/**
 * Prefect's run-input hydration (`schema_tools.hydrate` with errors raised, workspace variables and
 * templates rendered): `{"__prefect_kind": ...}` objects the UI sends become their values. Templates
 * are taken as they are when they hold no Jinja syntax; rendering Jinja is not supported here.
 */
export async function hydrate(value: Record<string, unknown>, variable: VariableLookup): Promise<Record<string, unknown>> {
  const result = await hydrateValue(value, variable);
  return result === REMOVE || !isRecord(result) ? {} : result;
}

const REMOVE = Symbol("remove");

async function hydrateValue(value: unknown, variable: VariableLookup): Promise<unknown> {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      const hydrated = await hydrateValue(v, variable);
      if (hydrated !== REMOVE) out.push(hydrated);
    }
    return out;
  }
  if (!isRecord(value)) return value;
  if (!("__prefect_kind" in value)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const hydrated = await hydrateValue(v, variable);
      if (hydrated !== REMOVE) out[key] = hydrated;
    }
    return out;
  }
  const nested = async (v: unknown) => (isRecord(v) ? hydrateValue(v, variable) : v);
  switch (value.__prefect_kind) {
    case "none":
      if (!("value" in value)) throw new HydrationError("Missing 'value' key in __prefect object");
      return hydrateValue(value.value, variable);
    case "json": {
      if (!("value" in value)) return REMOVE;
      const text = await nested(value.value);
      if (typeof text !== "string") return text;
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new HydrationError(`Invalid JSON: ${(error as Error).message}`);
      }
    }
    case "jinja": {
      if (!("template" in value)) throw new HydrationError("Missing 'template' key in __prefect object");
      const template = await nested(value.template);
      if (typeof template !== "string") throw new HydrationError("Invalid jinja: the template is not text");
      if (/\{\{|\{%|\{#/.test(template)) throw new HydrationError("Invalid jinja: rendering templates is not supported by this server");
      return template;
    }
    case "workspace_variable": {
      if (!("variable_name" in value)) return REMOVE;
      const name = await nested(value.variable_name);
      const found = typeof name === "string" ? await variable(name) : undefined;
      if (found === undefined) throw new HydrationError(`Variable '${String(name)}' not found in workspace.`);
      return found;
    }
    default:
      return value.value ?? null;
  }
}

/** A template the server would have to render with Jinja (hydration of `jinja` values). */
export function needsJinja(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(needsJinja);
  if (!isRecord(value)) return false;
  if (value.__prefect_kind === "jinja" && typeof value.template === "string" && /\{\{|\{%|\{#/.test(value.template)) return true;
  return Object.values(value).some(needsJinja);
}

export const JINJA_UNSUPPORTED =
  "Jinja templates in parameters are not supported by this server: give the value itself, or a workspace variable ({'__prefect_kind': 'workspace_variable'}).";
