/**
 * Validating values against user-supplied JSON schemas as Prefect's `schema_tools.validate` does:
 * Draft 2020-12, no remote references, formats not asserted, optionally with `required` removed
 * everywhere and with the schema repaired the way Prefect repairs schemas pydantic v1 generated
 * (optional fields accept null, tuple `items` become `prefixItems`). Problems are worded as Prefect
 * and Python's jsonschema word them.
 */
import { InvalidError } from "@prefect/db";
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { isRecord } from "./json.js";
import { pythonRepr } from "./python.js";

/** A schema whose references loop (Prefect's CircularSchemaRefError). */
export class CircularSchemaError extends Error {
  constructor() {
    super("Invalid schema: Unable to validate schema with circular references.");
  }
}

export interface SchemaCheckOptions {
  /** Repair pydantic v1 schemas first (Prefect's `preprocess`, on by default there). */
  readonly preprocess?: boolean | undefined;
  /** Drop every `required` (a partial set of values is acceptable). */
  readonly ignoreRequired?: boolean | undefined;
  /** While repairing, optional fields with a default accept null too. */
  readonly allowNoneWithDefault?: boolean | undefined;
  /**
   * Which problem to report: jsonschema's `best_match` (the default, what `jsonschema.validate`
   * raises), or the first one found (what the work pool's job variable defaults report).
   */
  readonly report?: "best" | "first" | undefined;
}

/** Why a value does not fit: Prefect's message and, for one failing keyword, jsonschema's own. */
export interface SchemaProblem {
  /** "Validation failed for field 'x'. Failure reason: ..." */
  readonly message: string;
  /** The bare jsonschema message ("1 is not of type 'string'"). */
  readonly reason: string;
}

type Json = Record<string, unknown>;
/** The one way this server builds a validator: fresh each time, as schemas may reuse each other's `$id`s. */
const newAjv = (options: { allErrors?: boolean } = {}) =>
  new Ajv2020.default({ strict: false, allErrors: options.allErrors ?? false, validateFormats: false, verbose: true });

/**
 * Null when `value` fits `schema`, else the first problem. Throws CircularSchemaError for a schema
 * whose references loop. A schema that is not valid JSON Schema is a problem too (Prefect would fail).
 */
export function schemaProblem(value: unknown, schema: unknown, options: SchemaCheckOptions = {}): SchemaProblem | null {
  if (!isRecord(schema)) return { message: "Validation failed. Failure reason: the schema is not an object", reason: "the schema is not an object" };
  let prepared: Json = cleanCopy(schema);
  if (options.preprocess ?? true) prepared = preprocessSchema(prepared, options.allowNoneWithDefault ?? false);
  if (options.ignoreRequired) prepared = withoutKey(prepared, "required") as Json;
  const invalid = metaSchemaProblem(prepared);
  if (invalid) return { message: `The provided schema is not a valid json schema. Schema error: ${invalid}`, reason: invalid };
  let validate: ValidateFunction;
  try {
    validate = newAjv().compile(prepared);
  } catch (error) {
    if (error instanceof RangeError) throw new CircularSchemaError();
    const reason = (error as Error).message;
    return { message: `Validation failed. Failure reason: ${reason}`, reason };
  }
  let valid: boolean;
  try {
    valid = validate(value) as boolean;
  } catch (error) {
    if (error instanceof RangeError) throw new CircularSchemaError();
    throw error;
  }
  if (valid) return null;
  const first = options.report === "first" ? validate.errors?.[0] : bestMatch(validate.errors ?? []);
  if (!first) return { message: "Validation failed.", reason: "is not valid" };
  const reason = errorMessage(first);
  const path = jsonPath(first);
  const where = path === "$" ? "Validation failed." : `Validation failed for field ${pythonRepr(path.replace(/^\$\./, ""))}.`;
  return { message: `${where} Failure reason: ${reason}`, reason };
}

/** `schemaProblem`, with a looping schema answered as Prefect answers it (422). */
export function schemaCheck(value: unknown, schema: unknown, options: SchemaCheckOptions = {}): SchemaProblem | null {
  try {
    return schemaProblem(value, schema, options);
  } catch (error) {
    if (error instanceof CircularSchemaError) throw new InvalidError(error.message, [{ path: [], message: error.message }]);
    throw error;
  }
}

/** Null when `schema` is valid Draft 2020-12 JSON Schema, else jsonschema's wording of why not. */
export function metaSchemaProblem(schema: Json): string | null {
  const ajv = newAjv();
  let valid: boolean;
  try {
    valid = ajv.validateSchema(cleanCopy(schema)) as boolean;
  } catch (error) {
    return (error as Error).message;
  }
  if (valid) return null;
  const errors = ajv.errors ?? [];
  // jsonschema reports the failing alternative as a whole ("... is not valid under any of the given schemas").
  const chosen = errors.find((e) => e.keyword === "anyOf" || e.keyword === "oneOf") ?? errors[0];
  return chosen ? errorMessage(chosen) : "the schema is not valid";
}

/**
 * The error jsonschema's `best_match` would report: a failed `anyOf`/`oneOf` as a whole when its
 * alternatives failed alike (same keyword at the same depth), else the deepest of their errors.
 */
function bestMatch(errors: readonly ErrorObject[]): ErrorObject | undefined {
  const wrapper = errors.find((e) => e.keyword === "anyOf" || e.keyword === "oneOf");
  if (!wrapper) return errors[0];
  const context = errors.filter((e) => e !== wrapper && e.schemaPath.startsWith(`${wrapper.schemaPath}/`));
  if (context.length === 0) return wrapper;
  const depth = (e: ErrorObject) => e.instancePath.split("/").length;
  const alike = context.every((e) => e.keyword === context[0]!.keyword && depth(e) === depth(context[0]!));
  if (alike) return wrapper;
  return context.reduce((deepest, e) => (depth(e) > depth(deepest) ? e : deepest));
}

/** A deep copy without `$schema` (the meta-schema is always 2020-12 here, as Prefect's validator). */
function cleanCopy(schema: Json): Json {
  const copy = structuredClone(schema);
  delete copy.$schema;
  return copy;
}

/** Removes every property named `key`, at any depth (Prefect's `remove_nested_keys`). */
export function withoutKey(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return value.map((v) => withoutKey(v, key));
  if (!isRecord(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== key).map(([k, v]) => [k, withoutKey(v, key)]));
}

/** Prefect's `preprocess_schema`: repairs what pydantic v1 generated for optional fields and tuples. */
export function preprocessSchema(schema: Json, allowNoneWithDefault = false): Json {
  const out = structuredClone(schema);
  const processProperties = (properties: Json, required: unknown, allowNone: boolean) => {
    const requiredFields = Array.isArray(required) ? required : [];
    for (const [key, field] of Object.entries(properties)) {
      if (!isRecord(field)) continue;
      if (!requiredFields.includes(key) && "type" in field && field.type !== "null" && (!("default" in field) || allowNone)) {
        field.anyOf = [{ type: field.type }, { type: "null" }];
        delete field.type;
      }
      if (Array.isArray(field.items) && field.items.length > 0 && !field.prefixItems) {
        field.prefixItems = structuredClone(field.items);
        delete field.items;
      }
      // Nested models are repaired without the null allowance, as Prefect does.
      if (isRecord(field.properties)) processProperties(field.properties, field.required, false);
    }
  };
  if (isRecord(out.properties)) processProperties(out.properties, out.required, allowNoneWithDefault);
  if (isRecord(out.definitions)) {
    const definitions = out.definitions;
    for (const definition of Object.values(definitions)) {
      if (!isRecord(definition)) continue;
      if (isRecord(definition.properties)) processProperties(definition.properties, definition.required, allowNoneWithDefault);
      // A block may be given by reference to a block document instead of by value.
      if ("block_type_slug" in definition && typeof definition.title === "string") {
        definitions[definition.title] = {
          oneOf: [
            definition,
            {
              type: "object",
              properties: {
                $ref: { oneOf: [{ type: "string", format: "uuid" }, { type: "object", additionalProperties: { type: "string" }, minProperties: 1 }] },
              },
              required: ["$ref"],
            },
          ],
        };
      }
    }
  }
  return out;
}

/** jsonschema's `json_path` of the instance an error is about: `$`, `$.a.b`, `$.a[0]`. */
function jsonPath(error: ErrorObject): string {
  const segments = error.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  return segments.reduce((path, s) => (/^\d+$/.test(s) ? `${path}[${s}]` : `${path}.${s}`), "$");
}

/** Python's jsonschema messages for the common keywords; Ajv's for the others. */
function errorMessage(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const data = error.data;
  switch (error.keyword) {
    case "type": {
      const types = Array.isArray(params.type) ? params.type : String(params.type).split(",");
      return `${pythonRepr(data)} is not of type ${types.map((t) => pythonRepr(String(t))).join(", ")}`;
    }
    case "required":
      return `${pythonRepr(String(params.missingProperty))} is a required property`;
    case "enum":
      return `${pythonRepr(data)} is not one of ${pythonRepr(params.allowedValues)}`;
    case "const":
      return `${pythonRepr(params.allowedValue)} was expected`;
    case "anyOf":
    case "oneOf":
      return `${pythonRepr(data)} is not valid under any of the given schemas`;
    case "minimum":
      return `${pythonRepr(data)} is less than the minimum of ${pythonRepr(params.limit)}`;
    case "maximum":
      return `${pythonRepr(data)} is greater than the maximum of ${pythonRepr(params.limit)}`;
    case "exclusiveMinimum":
      return `${pythonRepr(data)} is less than or equal to the minimum of ${pythonRepr(params.limit)}`;
    case "exclusiveMaximum":
      return `${pythonRepr(data)} is greater than or equal to the maximum of ${pythonRepr(params.limit)}`;
    case "minLength":
    case "minItems":
      return `${pythonRepr(data)} is too short`;
    case "maxLength":
    case "maxItems":
      return `${pythonRepr(data)} is too long`;
    case "pattern":
      return `${pythonRepr(data)} does not match ${pythonRepr(params.pattern)}`;
    case "additionalProperties":
      return `Additional properties are not allowed (${pythonRepr(params.additionalProperty)} was unexpected)`;
    default:
      return error.message ?? "is not valid";
  }
}
/** One problem as jsonschema's `iter_errors` yields it: where in the instance, which keyword, its message. */
export interface SchemaError {
  /** The instance path (`relative_path`): property names, and indexes into arrays. */
  readonly path: readonly (string | number)[];
  readonly keyword: string;
  readonly message: string;
  /** The value the problem is about. */
  readonly instance: unknown;
}

/**
 * Every problem of `value` against an already prepared `schema`, as jsonschema's `iter_errors`
 * reports them: a failed `anyOf` / `oneOf` once, as a whole, not its alternatives' problems. Throws
 * CircularSchemaError for references that loop, and Error (with jsonschema-like wording) for a
 * reference that cannot be resolved.
 */
export function schemaErrors(value: unknown, schema: Json): SchemaError[] {
  let validate: ValidateFunction;
  try {
    validate = newAjv({ allErrors: true }).compile(schema);
  } catch (error) {
    if (error instanceof RangeError) throw new CircularSchemaError();
    throw error;
  }
  try {
    if (validate(value)) return [];
  } catch (error) {
    if (error instanceof RangeError) throw new CircularSchemaError();
    throw error;
  }
  const errors = validate.errors ?? [];
  const wrappers = errors.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf");
  const insideWrapper = (e: ErrorObject) => wrappers.some((w) => w !== e && e.schemaPath.startsWith(`${w.schemaPath}/`) && e.instancePath.startsWith(w.instancePath));
  return errors
    .filter((e) => !insideWrapper(e))
    .map((e) => ({ path: instancePath(value, e.instancePath), keyword: e.keyword, message: errorMessage(e), instance: e.data }));
}

/** A JSON pointer into `value` as path segments: numbers where the container is an array. */
function instancePath(value: unknown, pointer: string): (string | number)[] {
  const path: (string | number)[] = [];
  let current = value;
  for (const raw of pointer.split("/").slice(1)) {
    const segment = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(current)) {
      path.push(Number(segment));
      current = current[Number(segment)];
    } else {
      path.push(segment);
      current = isRecord(current) ? current[segment] : undefined;
    }
  }
  return path;
}
