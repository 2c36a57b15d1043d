/**
 * Validating the input a paused flow run receives against the JSON schema the run stored when it
 * paused (Prefect's `schema_tools.validate`), with Prefect's wording of the first problem found.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";

/** Null when `input` fits `schema`, else Prefect's reason ("Reason: Validation failed ..."). */
export function validateRunInput(input: unknown, schema: unknown): string | null {
  let validate: ValidateFunction;
  try {
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new Error("the schema is not an object");
    // A fresh validator each time: schemas are the runs' own, and may reuse each other's `$id`s.
    validate = new Ajv2020.default({ strict: false, allErrors: false, validateFormats: false, verbose: true }).compile(schema);
  } catch (error) {
    return `Reason: Validation failed. Failure reason: ${(error as Error).message}`;
  }
  if (validate(input)) return null;
  const first = validate.errors?.[0];
  if (!first) return "Reason: Validation failed.";
  const path = jsonPath(first);
  return `Reason: ${path === "$" ? "Validation failed." : `Validation failed for field ${pythonRepr(path.replace(/^\$\./, ""))}.`} Failure reason: ${message(first)}`;
}

/** jsonschema's `json_path` of the instance an error is about: `$`, `$.a.b`, `$.a[0]`. */
function jsonPath(error: ErrorObject): string {
  const segments = error.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  return segments.reduce((path, s) => (/^\d+$/.test(s) ? `${path}[${s}]` : `${path}.${s}`), "$");
}

/** The messages of Python's jsonschema for the common keywords; Ajv's for the others. */
function message(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "type":
      return `${pythonRepr(error.data)} is not of type ${(Array.isArray(params.type) ? params.type : String(params.type).split(",")).map((t) => pythonRepr(String(t))).join(", ")}`;
    case "required":
      return `${pythonRepr(String(params.missingProperty))} is a required property`;
    case "enum":
      return `${pythonRepr(error.data)} is not one of ${pythonRepr(params.allowedValues)}`;
    case "const":
      return `${pythonRepr(params.allowedValue)} was expected`;
    default:
      return error.message ?? "is not valid";
  }
}

/** Python's repr() of a JSON value. */
function pythonRepr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(", ")}]`;
  if (typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${pythonRepr(k)}: ${pythonRepr(v)}`)
      .join(", ")}}`;
  }
  return String(value);
}

/**
 * Prefect's check of a flow run's job variables (`validate_job_variables_for_deployment_flow_run`):
 * the work pool's variable defaults (those that fit their own schema), then the deployment's, then
 * the run's, against the pool's `variables` schema, required fields included unless a default was
 * dropped. Defaults that refer to blocks are left out. Null when they fit (or there is no schema).
 */
export function validateJobVariables(baseJobTemplate: Record<string, unknown>, ...jobVariables: Record<string, unknown>[]): string | null {
  const schema = baseJobTemplate.variables;
  if (!isRecord(schema)) return null;
  const properties = isRecord(schema.properties) ? schema.properties : {};
  const merged: Record<string, unknown> = {};
  let droppedDefault = false;
  for (const [name, attributes] of Object.entries(properties)) {
    if (!isRecord(attributes) || !("default" in attributes)) continue;
    const value = attributes.default;
    if (isRecord(value) && "$ref" in value) continue;
    if (validateRunInput({ [name]: value }, withoutRequired(schema)) === null) merged[name] = value;
    else droppedDefault = true;
  }
  for (const variables of jobVariables) Object.assign(merged, variables);
  const problem = validateRunInput(merged, droppedDefault ? withoutRequired(schema) : schema);
  return problem?.replace(/^Reason: /, "") ?? null;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The schema with every `required` list removed (Prefect's `ignore_required`). */
function withoutRequired(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRequired);
  if (!isRecord(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== "required").map(([key, v]) => [key, withoutRequired(v)]));
}
