// Turns the request schemas of Prefect's OpenAPI document (contract/prefect-openapi.json) into zod
// schemas: src/generated/prefect-api.ts. Only schemas reachable from request bodies and parameters are
// emitted. Mapping: date-time strings become canonical timestamps, uuids are lower-cased, objects that
// forbid extra fields are strict, optional fields stay optional without defaults (so that updates can
// tell "not given" from "null"), and the few recursive schemas are declared lazily.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const spec = JSON.parse(readFileSync(join(root, "contract/prefect-openapi.json"), "utf8"));
const schemas = spec.components.schemas;

const refName = (ref) => ref.split("/").pop();
const ident = (name) => name.replace(/[^A-Za-z0-9_]/g, "_");

function refsOf(node, out = new Set()) {
  if (Array.isArray(node)) for (const n of node) refsOf(n, out);
  else if (node && typeof node === "object") {
    if (typeof node.$ref === "string") out.add(refName(node.$ref));
    for (const value of Object.values(node)) refsOf(value, out);
  }
  return out;
}

// Schemas reachable from request bodies and parameters.
const roots = new Set();
for (const operations of Object.values(spec.paths)) {
  for (const operation of Object.values(operations)) {
    for (const content of Object.values(operation.requestBody?.content ?? {})) refsOf(content.schema, roots);
    for (const parameter of operation.parameters ?? []) refsOf(parameter.schema, roots);
  }
}
const needed = new Set();
const visit = (name) => {
  if (needed.has(name)) return;
  needed.add(name);
  for (const next of refsOf(schemas[name])) visit(next);
};
for (const name of roots) visit(name);

// Cycles: schemas on a cycle are declared lazily and typed loosely.
const state = new Map();
const cyclic = new Set();
const order = [];
function dfs(name, stack) {
  state.set(name, "open");
  stack.push(name);
  for (const next of refsOf(schemas[name])) {
    if (!needed.has(next)) continue;
    if (state.get(next) === "open") for (const n of stack.slice(stack.indexOf(next))) cyclic.add(n);
    else if (!state.has(next)) dfs(next, stack);
  }
  stack.pop();
  state.set(name, "done");
  order.push(name);
}
for (const name of [...needed].sort()) if (!state.has(name)) dfs(name, []);

const lit = (value) => JSON.stringify(value);

function stringSchema(node) {
  if (node.format === "uuid") return "Uuid";
  if (node.format === "date-time") return "TimestampSchema";
  if (node.format === "duration" || node.format === "time-delta") return "z.union([z.number(), z.string()])";
  if (node.enum) return `z.enum(${lit(node.enum)})`;
  let out = "z.string()";
  if (node.minLength !== undefined) out += `.min(${node.minLength})`;
  if (node.maxLength !== undefined) out += `.max(${node.maxLength})`;
  if (node.pattern) out += `.regex(new RegExp(${lit(node.pattern)}))`;
  return out;
}

function numberSchema(node) {
  let out = node.type === "integer" ? "z.number().int()" : "z.number()";
  if (node.minimum !== undefined) out += `.min(${node.minimum})`;
  if (node.maximum !== undefined) out += `.max(${node.maximum})`;
  if (node.exclusiveMinimum !== undefined) out += `.gt(${node.exclusiveMinimum})`;
  if (node.exclusiveMaximum !== undefined) out += `.lt(${node.exclusiveMaximum})`;
  return out;
}

function objectSchema(node, embeddedBody = false) {
  const required = new Set(node.required ?? []);
  const props = Object.entries(node.properties ?? {}).map(([key, value]) => {
    const schema = toZod(value);
    // FastAPI treats null like an absent value for the optional fields of an embedded body.
    return `${lit(key)}: ${required.has(key) ? schema : `${schema}.${embeddedBody ? "nullish" : "optional"}()`}`;
  });
  const shape = `{ ${props.join(", ")} }`;
  const extra = node.additionalProperties;
  if (props.length === 0 && extra && typeof extra === "object") return `z.record(z.string(), ${toZod(extra)})`;
  if (extra === false) return `z.strictObject(${shape})`;
  if (extra && typeof extra === "object") return `z.object(${shape}).catchall(${toZod(extra)})`;
  return props.length === 0 ? "z.record(z.string(), z.unknown())" : `z.looseObject(${shape})`;
}

function toZod(node) {
  if (!node || typeof node !== "object" || Object.keys(node).filter((k) => !["title", "description", "examples", "default", "deprecated"].includes(k)).length === 0) {
    return "z.unknown()";
  }
  if (node.$ref) {
    const name = refName(node.$ref);
    return cyclic.has(name) ? `z.lazy(() => ${ident(name)})` : ident(name);
  }
  if (node.anyOf) {
    const nullable = node.anyOf.some((n) => n.type === "null");
    const options = node.anyOf.filter((n) => n.type !== "null").map(toZod);
    const base = options.length === 0 ? "z.null()" : options.length === 1 ? options[0] : `z.union([${options.join(", ")}])`;
    return nullable && options.length > 0 ? `${base}.nullable()` : base;
  }
  if (node.const !== undefined) return `z.literal(${lit(node.const)})`;
  if (node.enum && node.type !== "string") return `z.union([${node.enum.map((v) => `z.literal(${lit(v)})`).join(", ")}])`;
  switch (node.type) {
    case "string":
      return stringSchema(node);
    case "integer":
    case "number":
      return numberSchema(node);
    case "boolean":
      return "z.boolean()";
    case "null":
      return "z.null()";
    case "array": {
      if (node.prefixItems) return `z.tuple([${node.prefixItems.map(toZod).join(", ")}])`;
      let out = `z.array(${toZod(node.items ?? {})})`;
      if (node.minItems !== undefined) out += `.min(${node.minItems})`;
      if (node.maxItems !== undefined) out += `.max(${node.maxItems})`;
      return out;
    }
    case "object":
      return objectSchema(node);
    default:
      if (node.properties) return objectSchema(node);
      return "z.unknown()";
  }
}

const lines = [
  "// Generated by scripts/generate-api-schemas.mjs from contract/prefect-openapi.json. Do not edit.",
  'import { TimestampSchema, Uuid } from "@prefect/db";',
  'import { z } from "zod";',
  "",
];
for (const name of order) {
  const node = schemas[name];
  if (name.startsWith("Body_")) {
    // The body of an endpoint with several body parameters: FastAPI accepts a missing body as {}.
    lines.push(`export const ${ident(name)} = z.preprocess((body) => body ?? {}, ${objectSchema(node, true)});`);
    continue;
  }
  const doc = node.description ? `/** ${node.description.split("\n")[0].replace(/\*\//g, "* /")} */\n` : "";
  if (cyclic.has(name)) lines.push(`${doc}export const ${ident(name)}: z.ZodType<unknown> = z.lazy(() => ${toZod(node)});`);
  else lines.push(`${doc}export const ${ident(name)} = ${toZod(node)};`);
}
lines.push("");
mkdirSync(join(root, "src/generated"), { recursive: true });
writeFileSync(join(root, "src/generated/prefect-api.ts"), lines.join("\n"));
