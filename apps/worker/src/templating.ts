/**
 * Job templates: Prefect's placeholder substitution (`prefect.utilities.templating.apply_values` and
 * `resolve_variables`). A placeholder is `{{ name }}` where the name is a dotted path into the
 * values (`env.FOO`, `items[0]`), `$NAME` for the worker's environment, or `prefect.variables.NAME`
 * for a workspace variable. A string that is exactly one placeholder becomes the value itself (an
 * object stays an object); placeholders inside longer text are replaced by the value as text; a
 * placeholder without a value removes the key (or becomes "" inside text).
 *
 * Prefect renders nothing else (no expressions, filters or blocks); whatever is left that looks like
 * template syntax, and references to block documents, which this worker cannot read, are reported as
 * a TemplateError instead of being passed on as literal text.
 */

export class TemplateError extends Error {}

/** Prefect's PLACEHOLDER_CAPTURE_REGEX. */
const PLACEHOLDER = /{{\s*([\w.\-[\]$]+)\s*}}/g;
const BLOCK_PREFIX = "prefect.blocks.";
const VARIABLE_PREFIX = "prefect.variables.";
const ENV_PREFIX = "$";

/** The value a placeholder stands for is missing (Prefect's NotSet). */
const NOT_SET: unique symbol = Symbol("NotSet");
type Maybe<T> = T | typeof NOT_SET;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

interface Placeholder {
  readonly fullMatch: string;
  readonly name: string;
  readonly kind: "standard" | "block" | "variable" | "env";
}

function placeholdersIn(text: string): Placeholder[] {
  const seen = new Map<string, Placeholder>();
  for (const match of text.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    const kind = name.startsWith(BLOCK_PREFIX) ? "block" : name.startsWith(VARIABLE_PREFIX) ? "variable" : name.startsWith(ENV_PREFIX) ? "env" : "standard";
    seen.set(match[0], { fullMatch: match[0], name, kind });
  }
  return [...seen.values()];
}

/** Prefect's `get_from_dict`: a dotted path with `[i]` list indexes. */
export function getFromDict(values: unknown, path: string): Maybe<unknown> {
  let current: unknown = values;
  for (const key of path.replaceAll("[", ".").replaceAll("]", "").split(".")) {
    if (Array.isArray(current) && /^-?\d+$/.test(key)) {
      const index = Number(key);
      const at = index < 0 ? current.length + index : index;
      if (at < 0 || at >= current.length) return NOT_SET;
      current = current[at];
    } else if (isObject(current) && Object.hasOwn(current, key)) {
      current = current[key];
    } else {
      return NOT_SET;
    }
  }
  return current;
}

/** How Python's `str()` shows a JSON value, as Prefect puts values into text. */
export function pythonStr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}

function applyToString(template: string, values: Record<string, unknown>, env: NodeJS.ProcessEnv): Maybe<unknown> {
  const placeholders = placeholdersIn(template);
  if (placeholders.length === 0) return template;
  const only = placeholders[0]!;
  if (placeholders.length === 1 && only.fullMatch === template && only.kind === "standard") return getFromDict(values, only.name);
  let text = template;
  for (const p of placeholders) {
    let value: Maybe<unknown> = NOT_SET;
    if (p.kind === "standard") value = getFromDict(values, p.name);
    else if (p.kind === "env") value = env[p.name.slice(ENV_PREFIX.length)] ?? NOT_SET;
    else continue;
    text = text.replaceAll(p.fullMatch, value === NOT_SET ? "" : pythonStr(value));
  }
  return text;
}

/** Prefect's `apply_values` (with `remove_notset`). */
export function applyValues(template: unknown, values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Maybe<unknown> {
  if (template === null || template === undefined || typeof template === "number" || typeof template === "boolean") return template;
  if (typeof template === "string") return applyToString(template, values, env);
  if (Array.isArray(template)) {
    const out: unknown[] = [];
    for (const item of template) {
      const applied = applyValues(item, values, env);
      if (applied !== NOT_SET) out.push(applied);
    }
    return out;
  }
  if (isObject(template)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(template)) {
      const applied = applyValues(value, values, env);
      if (applied !== NOT_SET) out[key] = applied;
    }
    return out;
  }
  throw new TemplateError(`Unexpected template type ${JSON.stringify(typeof template)}`);
}

/** A workspace variable's value, or `undefined` when there is no such variable. */
export type VariableLookup = (name: string) => Promise<unknown>;

/** Prefect's `resolve_variables`: `{{ prefect.variables.NAME }}` becomes the variable's value ("" when missing). */
export async function resolveVariables(template: unknown, lookup: VariableLookup): Promise<unknown> {
  const cache = new Map<string, unknown>();
  const read = async (name: string) => {
    const key = name.slice(VARIABLE_PREFIX.length);
    if (!cache.has(key)) cache.set(key, await lookup(key));
    return cache.get(key);
  };
  const resolve = async (value: unknown): Promise<unknown> => {
    if (typeof value === "string") {
      const placeholders = placeholdersIn(value);
      if (!placeholders.some((p) => p.kind === "variable")) return value;
      const only = placeholders[0]!;
      if (placeholders.length === 1 && only.fullMatch === value) {
        const found = await read(only.name);
        return found === undefined ? "" : found;
      }
      let text = value;
      for (const p of placeholders) {
        if (p.kind !== "variable") continue;
        const found = await read(p.name);
        text = text.replaceAll(p.fullMatch, found === undefined ? "" : pythonStr(found));
      }
      return text;
    }
    if (Array.isArray(value)) return Promise.all(value.map(resolve));
    if (isObject(value)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = await resolve(item);
      return out;
    }
    return value;
  };
  return resolve(template);
}

/**
 * Throws a TemplateError for what this worker cannot render: block document references (`$ref`
 * objects, `{{ prefect.blocks.* }}`) and any template syntax left after substitution (Jinja
 * expressions, filters, statements, comments).
 */
export function assertFullyRendered(value: unknown, path = "job configuration"): void {
  if (typeof value === "string") {
    const block = placeholdersIn(value).find((p) => p.kind === "block");
    if (block) {
      throw new TemplateError(`${path} refers to the block document ${block.fullMatch}; this worker cannot resolve block documents in job templates.`);
    }
    const syntax = /{{.*?}}|{%.*?%}|{#.*?#}/s.exec(value);
    if (syntax) {
      throw new TemplateError(
        `${path} uses template syntax this worker cannot render: ${JSON.stringify(syntax[0])}. Only simple placeholders such as {{ command }}, {{ env.NAME }}, {{ $ENV_VAR }} and {{ prefect.variables.NAME }} are substituted.`,
      );
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) assertFullyRendered(item, `${path}[${i}]`);
    return;
  }
  if (isObject(value)) {
    if (isObject(value.$ref) && "block_document_id" in value.$ref) {
      throw new TemplateError(`${path} refers to a block document ($ref); this worker cannot resolve block documents in job templates.`);
    }
    for (const [key, item] of Object.entries(value)) assertFullyRendered(item, `${path}.${key}`);
  }
}

export { NOT_SET };
