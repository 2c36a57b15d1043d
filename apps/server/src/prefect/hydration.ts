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
 * What a value hydration could not resolve stands for while a form is validated (Prefect's
 * `hydrate` without raising): an error to report at its place, or (`error` null) a value that is
 * valid as it is, such as a template that is not rendered.
 */
export class HydrationPlaceholder {
  // Private, so that a schema validator sees an object without properties.
  readonly #error: string | null;
  constructor(error: string | null) {
    this.#error = error;
  }
  get error(): string | null {
    return this.#error;
  }
}

/**
 * Prefect's run-input hydration (`schema_tools.hydrate` with errors raised, workspace variables and
 * templates rendered): `{"__prefect_kind": ...}` objects the UI sends become their values. Templates
 * are taken as they are when they hold no Jinja syntax; rendering Jinja is not supported here.
 */
export async function hydrate(value: Record<string, unknown>, variable: VariableLookup): Promise<Record<string, unknown>> {
  const result = await hydrateValue(value, { variable, forValidation: false });
  return result === REMOVE || !isRecord(result) ? {} : result;
}

/**
 * Hydration for validating a form (Prefect's `hydrate` with `raise_on_error=False` and
 * `render_jinja=False`): what cannot be resolved becomes a HydrationPlaceholder where it stands.
 */
export async function hydrateForValidation(value: Record<string, unknown>, variable: VariableLookup): Promise<unknown> {
  const result = await hydrateValue(value, { variable, forValidation: true });
  return result === REMOVE ? {} : result;
}

const REMOVE = Symbol("remove");

interface HydrationMode {
  readonly variable: VariableLookup;
  /** Problems become placeholders instead of HydrationErrors, and templates are left unrendered. */
  readonly forValidation: boolean;
}

function problem(mode: HydrationMode, message: string): HydrationPlaceholder {
  if (mode.forValidation) return new HydrationPlaceholder(message);
  throw new HydrationError(message);
}

async function hydrateValue(value: unknown, mode: HydrationMode): Promise<unknown> {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      const hydrated = await hydrateValue(v, mode);
      if (hydrated !== REMOVE) out.push(hydrated);
    }
    return out;
  }
  if (!isRecord(value)) return value;
  if (!("__prefect_kind" in value)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const hydrated = await hydrateValue(v, mode);
      if (hydrated !== REMOVE) out[key] = hydrated;
    }
    return out;
  }
  const nested = async (v: unknown) => (isRecord(v) ? hydrateValue(v, mode) : v);
  switch (value.__prefect_kind) {
    case "none":
      if (!("value" in value)) return problem(mode, "Missing 'value' key in __prefect object");
      return hydrateValue(value.value, mode);
    case "json": {
      if (!("value" in value)) return REMOVE;
      const text = await nested(value.value);
      if (typeof text !== "string") return text;
      try {
        return JSON.parse(text);
      } catch (error) {
        return problem(mode, `Invalid JSON: ${(error as Error).message}`);
      }
    }
    case "jinja": {
      if (!("template" in value)) return problem(mode, "Missing 'template' key in __prefect object");
      const template = await nested(value.template);
      if (template instanceof HydrationPlaceholder) return template;
      if (typeof template !== "string") return problem(mode, "Invalid jinja: the template is not text");
      // A form's templates are not rendered (Prefect's `render_jinja=False`): they stand for valid values.
      if (mode.forValidation) return new HydrationPlaceholder(null);
      if (/\{\{|\{%|\{#/.test(template)) return problem(mode, "Invalid jinja: rendering templates is not supported by this server");
      return template;
    }
    case "workspace_variable": {
      if (!("variable_name" in value)) return REMOVE;
      const name = await nested(value.variable_name);
      if (name instanceof HydrationPlaceholder) return name;
      const found = typeof name === "string" ? await mode.variable(name) : undefined;
      if (found === undefined) return problem(mode, `Variable '${String(name)}' not found in workspace.`);
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
