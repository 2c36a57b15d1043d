/**
 * Prefect's hydration of the values the UI and clients send (`schema_tools.hydrate`): objects such as
 * `{"__prefect_kind": "workspace_variable", ...}` become the values they stand for.
 */
import type { Repositories } from "@prefect/db";
import { isRecord } from "./json.js";
import { maybeTemplate, type RenderOptions, renderTemplate, TemplateRenderError, templateProblem } from "./templates.js";

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
 * templates rendered): `{"__prefect_kind": ...}` objects the UI sends become their values. Jinja
 * templates are rendered in the sandbox (templates.ts) with `jinjaContext` (Prefect's server gives
 * none when it hydrates a run's parameters).
 */
export async function hydrate(
  value: Record<string, unknown>,
  variable: VariableLookup,
  jinja: { context?: Record<string, unknown>; options?: RenderOptions } = {},
): Promise<Record<string, unknown>> {
  const result = await hydrateValue(value, { variable, forValidation: false, jinjaContext: jinja.context ?? {}, renderOptions: jinja.options ?? {} });
  return result === REMOVE || !isRecord(result) ? {} : result;
}

/**
 * Hydration for validating a form (Prefect's `hydrate` with `raise_on_error=False` and
 * `render_jinja=False`): what cannot be resolved becomes a HydrationPlaceholder where it stands.
 */
export async function hydrateForValidation(value: Record<string, unknown>, variable: VariableLookup | null): Promise<unknown> {
  const result = await hydrateValue(value, { variable, forValidation: true, jinjaContext: {}, renderOptions: {} });
  return result === REMOVE ? {} : result;
}

/**
 * Prefect's `RunDeployment.validate_parameters`: the parameters (v1 templates upgraded) hydrated
 * without rendering and without reading workspace variables; each problem by its dotted key (Prefect
 * does not look inside lists). Empty when the parameters can be saved.
 */
export async function parameterProblems(parameters: Record<string, unknown>): Promise<{ key: string; message: string }[]> {
  const hydrated = await hydrateForValidation(upgradeV1Templates(structuredClone(parameters)), null);
  const problems: { key: string; message: string }[] = [];
  const collect = (value: unknown, prefix: string) => {
    if (value instanceof HydrationPlaceholder) {
      if (value.error !== null) problems.push({ key: prefix, message: value.error });
      return;
    }
    if (!isRecord(value)) return;
    for (const [key, v] of Object.entries(value)) {
      if (v instanceof HydrationPlaceholder) {
        if (v.error !== null) problems.push({ key: `${prefix}${key}`, message: v.error });
      } else if (isRecord(v)) collect(v, `${prefix}${key}.`);
    }
  };
  collect(hydrated, "");
  return problems;
}

/** A single `{{ expression }}` keeps its value's JSON type (Prefect's `_wrap_v1_template`). */
function wrapV1Template(template: string): Record<string, unknown> {
  const stripped = template.trim();
  if (stripped.startsWith("{{") && stripped.endsWith("}}") && stripped.split("{{").length === 2) {
    const inner = stripped.slice(2, -2).trim();
    return { __prefect_kind: "json", value: { __prefect_kind: "jinja", template: `{{ ${inner} | tojson }}` } };
  }
  return { __prefect_kind: "jinja", template };
}

/**
 * Prefect's `RunDeployment._upgrade_v1_templates`: plain strings holding Jinja become `jinja` values
 * (in dicts and lists, but not inside values that already have a `__prefect_kind`). Changes and
 * returns `parameters`.
 */
export function upgradeV1Templates(parameters: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(parameters)) {
    if (isRecord(value)) {
      if (!("__prefect_kind" in value)) upgradeV1Templates(value);
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (isRecord(item)) upgradeV1Templates(item);
        else if (typeof item === "string" && maybeTemplate(item)) value[i] = wrapV1Template(item);
      });
    } else if (typeof value === "string" && maybeTemplate(value)) {
      parameters[key] = wrapV1Template(value);
    }
  }
  return parameters;
}

const REMOVE = Symbol("remove");

interface HydrationMode {
  /** How workspace variables are read; null: they are left as they are (valid placeholders). */
  readonly variable: VariableLookup | null;
  /** Problems become placeholders instead of HydrationErrors, and templates are left unrendered. */
  readonly forValidation: boolean;
  readonly jinjaContext: Record<string, unknown>;
  readonly renderOptions: RenderOptions;
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
      const invalid = await templateProblem(template);
      if (invalid) return problem(mode, `Invalid jinja: ${invalid.message}`);
      // A form's templates are not rendered (Prefect's `render_jinja=False`): they stand for valid values.
      if (mode.forValidation) return new HydrationPlaceholder(null);
      try {
        return await renderTemplate(template, mode.jinjaContext, mode.renderOptions);
      } catch (error) {
        if (error instanceof TemplateRenderError) return problem(mode, `Invalid jinja: ${error.message}`);
        throw error;
      }
    }
    case "workspace_variable": {
      if (!("variable_name" in value)) return REMOVE;
      const name = await nested(value.variable_name);
      if (name instanceof HydrationPlaceholder) return name;
      if (mode.variable === null) return new HydrationPlaceholder(null);
      const found = typeof name === "string" ? await mode.variable(name) : undefined;
      if (found === undefined) return problem(mode, `Variable '${String(name)}' not found in workspace.`);
      return found;
    }
    default:
      return value.value ?? null;
  }
}
