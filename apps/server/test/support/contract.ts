/**
 * Validates a response against Prefect's OpenAPI document (contract/prefect-openapi.json): the schema
 * for the response's path, method and status. Statuses the document does not list are checked against
 * what Prefect sends for them: a 201 against the operation's success schema, 404/409 as `{"detail": ...}`,
 * 422 as HTTPValidationError.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
}
type Spec = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, object> } };

const spec = JSON.parse(readFileSync(join(import.meta.dirname, "../../contract/prefect-openapi.json"), "utf8")) as Spec;
const ajv = new Ajv2020.default({ strict: false, allErrors: true, validateFormats: true });
addFormats.default(ajv);
for (const format of ["duration", "time-delta", "password", "path"]) ajv.addFormat(format, true);
ajv.addSchema({ $id: "prefect", components: spec.components });

const routes = Object.keys(spec.paths).map((template) => ({
  template,
  pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+").replace(/\/$/, "")}/?$`),
  // Literal segments win over parameters (e.g. /flows/filter over /flows/{id}).
  literal: template.split("/").filter((s) => s && !s.startsWith("{")).length,
}));

function operationFor(path: string, method: string): { template: string; operation: Operation } | undefined {
  const candidates = routes
    .filter((r) => r.pattern.test(path) && spec.paths[r.template]![method])
    .sort((a, b) => b.literal - a.literal);
  const match = candidates[0];
  return match ? { template: match.template, operation: spec.paths[match.template]![method]! } : undefined;
}

const DETAIL = { type: "object", required: ["detail"], properties: { detail: {} } };
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

function validatorFor(key: string, schema: object) {
  let validate = validators.get(key);
  if (!validate) {
    // Rewrite local refs so they resolve inside the registered document.
    const text = JSON.stringify(schema).replace(/"#\/components\//g, '"prefect#/components/');
    validate = ajv.compile(JSON.parse(text));
    validators.set(key, validate);
  }
  return validate;
}

export class ContractError extends Error {}

/** Throws ContractError when `body` does not fit the documented response. `path` excludes the /api prefix. */
export function checkResponse(method: string, path: string, status: number, body: unknown): void {
  const found = operationFor(path, method.toLowerCase());
  if (!found) throw new ContractError(`${method} ${path} is not an operation of Prefect's API`);
  const { template, operation } = found;
  let schema: object | undefined;
  let key = `${method} ${template} ${status}`;
  const documented = operation.responses[String(status)];
  if (documented) schema = documented.content?.["application/json"]?.schema;
  else if (status >= 200 && status < 300) {
    const success = Object.keys(operation.responses).find((s) => s.startsWith("2"));
    schema = success ? operation.responses[success]!.content?.["application/json"]?.schema : undefined;
    key = `${method} ${template} ${success}`;
  } else if (status === 404 || status === 409 || status === 400 || status === 413 || status === 401 || status === 423 || status === 410 || status === 403) schema = DETAIL;
  else if (status === 422) schema = { $ref: "#/components/schemas/HTTPValidationError" };
  else if (status === 503) schema = { type: "object" };
  else throw new ContractError(`${method} ${template} answered ${status}, which Prefect's API does not document`);
  if (status === 204) {
    if (body !== undefined && body !== "") throw new ContractError(`${method} ${template} 204 must have no body`);
    return;
  }
  if (!schema) return;
  const validate = validatorFor(key, schema);
  if (!validate(body)) {
    throw new ContractError(`${method} ${path} ${status} does not match Prefect's schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 2000)}`);
  }
}
