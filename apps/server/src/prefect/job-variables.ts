/**
 * Job variables checked against a work pool's base job template as Prefect's
 * `_validate_work_pool_job_variables` does, for every caller (a deployment's variables, a run's, a
 * new pool's defaults): the template's variable defaults (a default given as a block reference,
 * `{"$ref": {"block_document_id": ...}}`, stands for that block document's data), then each set of
 * variables over them, against the template's `variables` schema.
 */
import { canonicalUuid, LOOSE_UUID } from "./ids.js";
import { notFound } from "./errors.js";
import { isRecord } from "./json.js";
import { metaSchemaProblem, type SchemaCheckOptions, schemaCheck } from "./json-schema.js";

/** A block document's data (secrets masked) by its id; undefined when there is no such document. */
export type BlockDataLookup = (blockDocumentId: string) => Promise<Record<string, unknown> | undefined>;

export interface JobVariableCheck {
  /** Leave `required` unchecked (a partial set of variables is acceptable). */
  readonly ignoreRequired: boolean;
  /** Drop defaults that do not fit their own schema (`required` is then left unchecked too). */
  readonly ignoreInvalidDefaults: boolean;
  readonly blockData: BlockDataLookup;
  /** Which problem to report (see SchemaCheckOptions). */
  readonly report?: SchemaCheckOptions["report"];
}

/** Why the variables do not fit: the schema itself is not JSON Schema, or a value does not fit it. */
export type JobVariablesProblem = { readonly kind: "invalid_schema"; readonly reason: string } | { readonly kind: "invalid"; readonly message: string };

/** The `variables` schema of a base job template, or null when it has none. */
export function variablesSchema(template: unknown): Record<string, unknown> | null {
  if (!isRecord(template)) return null;
  const schema = template.variables;
  return isRecord(schema) && Object.keys(schema).length > 0 ? schema : null;
}

/** A default's value: itself, or the data of the block document it refers to (undefined: no reference). */
async function defaultValue(value: unknown, blockData: BlockDataLookup): Promise<unknown> {
  if (!(isRecord(value) && "$ref" in value)) return value;
  const reference = isRecord(value.$ref) ? value.$ref.block_document_id : undefined;
  if (reference === undefined || reference === null) return undefined;
  if (typeof reference !== "string" || !LOOSE_UUID.test(reference)) throw notFound("Block not found.");
  const data = await blockData(canonicalUuid(reference));
  if (data === undefined) throw notFound("Block not found.");
  return data;
}

/**
 * Null when the variables fit (or the template has no variables schema); else why not. A default
 * naming a missing block document is Prefect's 404 "Block not found.".
 */
export async function jobVariablesProblem(
  template: unknown,
  jobVariables: readonly (Record<string, unknown> | null | undefined)[],
  check: JobVariableCheck,
): Promise<JobVariablesProblem | null> {
  const schema = variablesSchema(template);
  if (!schema) return null;
  const invalid = metaSchemaProblem(schema);
  if (invalid) return { kind: "invalid_schema", reason: invalid };

  const merged: Record<string, unknown> = {};
  let ignoreRequired = check.ignoreRequired;
  const properties = isRecord(schema.properties) ? schema.properties : {};
  for (const [name, attributes] of Object.entries(properties)) {
    if (!isRecord(attributes) || !("default" in attributes)) continue;
    const value = await defaultValue(attributes.default, check.blockData);
    if (value === undefined) continue;
    if (check.ignoreInvalidDefaults && schemaCheck({ [name]: value }, schema, { preprocess: false, ignoreRequired: true }) !== null) {
      ignoreRequired = true;
      continue;
    }
    merged[name] = value;
  }
  for (const variables of jobVariables) if (isRecord(variables)) Object.assign(merged, variables);
  const problem = schemaCheck(merged, schema, { preprocess: true, ignoreRequired, allowNoneWithDefault: true, report: check.report });
  return problem ? { kind: "invalid", message: problem.message } : null;
}
