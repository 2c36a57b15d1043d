/**
 * Block schemas as Prefect stores and shows them. A schema posted with nested blocks carries their
 * schemas in `definitions` and names them in `block_schema_references`; creating it creates the
 * nested schemas first (found by checksum, else made from their definition) and links them in
 * `block_schema_reference`, storing only the non-block definitions. Reading it back rebuilds
 * `block_schema_references` from those links and `definitions` from the nested schemas.
 */
import { type BlockSchema, type BlockSchemaReference, DEFAULT_BLOCK_SCHEMA_VERSION, InvalidError, type Repositories } from "@prefect/db";
import { conflict } from "../../prefect/errors.js";
import { deepCopy, isRecord, setOwn } from "../../prefect/json.js";
import { pythonRepr } from "../../prefect/python.js";
import { calculateSchemaChecksum, collectNestedReferenceStrings, isTruthy, nonBlockReferenceDefinitions } from "./checksum.js";

type Fields = Record<string, unknown>;

export interface BlockSchemaCreateInput {
  readonly fields: Fields;
  readonly block_type_id: string;
  readonly capabilities?: readonly string[] | undefined;
  readonly version?: string | undefined;
}

interface SchemaReferenceEntry {
  block_schema_checksum: string;
  block_type_slug: string;
}

export function blockTypeResponse(type: BlockSchema["block_type"]) {
  return {
    id: type.id,
    created: type.created,
    updated: type.updated,
    name: type.name,
    slug: type.slug,
    logo_url: type.logo_url,
    documentation_url: type.documentation_url,
    description: type.description,
    code_example: type.code_example,
    is_protected: type.is_protected,
  };
}

export type BlockTypeResponse = ReturnType<typeof blockTypeResponse>;

export function blockSchemaResponse(schema: BlockSchema, fields: Fields = schema.fields) {
  return {
    id: schema.id,
    created: schema.created,
    updated: schema.updated,
    checksum: schema.checksum,
    fields,
    block_type_id: schema.block_type_id,
    block_type: blockTypeResponse(schema.block_type),
    capabilities: schema.capabilities,
    version: schema.version,
  };
}

export type BlockSchemaResponse = ReturnType<typeof blockSchemaResponse>;

/** A body problem found while creating nested schemas (Prefect fails these with a ValueError). */
const invalidFields = (message: string) => new InvalidError(message, [{ path: ["fields"], message }]);

/**
 * Creates the schema with its nested schemas (Prefect's `create_block_schema`), or returns the one
 * already stored for the same checksum and version. Run it inside a transaction.
 */
export async function createBlockSchema(
  tx: Repositories,
  input: BlockSchemaCreateInput,
  inheritedDefinitions?: Fields,
): Promise<{ schema: BlockSchemaResponse; created: boolean }> {
  const fields = deepCopy(input.fields);
  const version = input.version ?? DEFAULT_BLOCK_SCHEMA_VERSION;
  const ownDefinitions = fields.definitions;
  const definitions = isTruthy(inheritedDefinitions) ? inheritedDefinitions : isRecord(ownDefinitions) ? ownDefinitions : undefined;
  if (isTruthy(definitions)) fields.definitions = definitions;
  const checksum = calculateSchemaChecksum(fields);

  const existing = await tx.blocks.getSchemaByChecksum(checksum, version);
  if (existing) return { schema: (await readFullBlockSchemas(tx, [existing]))[0]!, created: false };

  if (isTruthy(definitions) && definitions) {
    const nonBlock = nonBlockReferenceDefinitions(fields, definitions);
    if (Object.keys(nonBlock).length > 0) fields.definitions = nonBlock;
    else delete fields.definitions;
  }
  const references = isRecord(fields.block_schema_references) ? fields.block_schema_references : {};
  delete fields.block_schema_references;

  const { row, created } = await tx.blocks.createSchema({
    checksum,
    fields,
    capabilities: [...(input.capabilities ?? [])],
    version,
    block_type_id: input.block_type_id,
  });
  await registerNestedSchemas(tx, row.id, references, fields, definitions);

  const shown: Fields = { ...row.fields, block_schema_references: references };
  if (definitions !== undefined) shown.definitions = definitions;
  return { schema: blockSchemaResponse(row, shown), created };
}

async function registerNestedSchemas(tx: Repositories, parentId: string, references: Fields, baseFields: Fields, definitions: Fields | undefined) {
  for (const [name, value] of Object.entries(references)) {
    const entries = Array.isArray(value) ? value : [value];
    for (const entry of entries) {
      if (!isRecord(entry) || typeof entry.block_type_slug !== "string" || typeof entry.block_schema_checksum !== "string") {
        throw invalidFields(`Invalid block schema reference for ${pythonRepr(name)}: expected block_type_slug and block_schema_checksum.`);
      }
      const type = await tx.blocks.getTypeBySlug(entry.block_type_slug);
      if (!type) {
        throw conflict(
          `Cannot create block schema because block type ${pythonRepr(entry.block_type_slug)} was not found.Did you forget to register the block type?`,
        );
      }
      let referencedId = (await tx.blocks.getSchemaByChecksum(entry.block_schema_checksum))?.id;
      if (!referencedId) {
        if (!definitions) throw invalidFields("Unable to create nested block schema due to missing definitions in root block schema fields");
        const childFields = fieldsForChildSchema(definitions, baseFields, name, type.slug);
        if (!childFields) throw invalidFields(`Unable to create nested block schema for block type ${pythonRepr(type.name)} due to missing definition.`);
        referencedId = (await createBlockSchema(tx, { fields: childFields, block_type_id: type.id }, definitions)).schema.id;
      }
      const existing = await tx.blocks.readSchemaReferences([parentId]);
      if (!existing.some((r) => r.name === name && r.reference_block_schema_id === referencedId)) {
        await tx.blocks.addSchemaReference({ name, parent_block_schema_id: parentId, reference_block_schema_id: referencedId });
      }
    }
  }
}

/** The definition of the nested block under `name` (Prefect's `_get_fields_for_child_schema`). */
function fieldsForChildSchema(definitions: Fields, baseFields: Fields, name: string, slug: string): Fields | undefined {
  const properties = baseFields.properties;
  const spec = isRecord(properties) && Object.hasOwn(properties, name) ? properties[name] : undefined;
  if (spec === undefined) throw invalidFields(`Block schema reference ${pythonRepr(name)} names no property of the schema.`);
  const referenceStrings = collectNestedReferenceStrings(spec);
  const keyOf = (reference: unknown) => (typeof reference === "string" ? reference.replaceAll("#/definitions/", "") : "");
  if (referenceStrings.length === 1) {
    const definition = definitions[keyOf(referenceStrings[0])];
    return isRecord(definition) ? definition : undefined;
  }
  for (const reference of referenceStrings) {
    const definition = definitions[keyOf(reference)];
    if (!isRecord(definition)) throw invalidFields(`Block schema definition ${pythonRepr(keyOf(reference))} is missing.`);
    if (definition.block_type_slug === slug) return definition;
  }
  return undefined;
}

/**
 * Schemas as Prefect shows them (`_construct_full_block_schema`): fields with `block_schema_references`
 * rebuilt from the stored links and the nested schemas' fields merged into `definitions`.
 */
export async function readFullBlockSchemas(repo: Repositories, roots: readonly BlockSchema[]): Promise<BlockSchemaResponse[]> {
  const schemas = new Map<string, BlockSchema>(roots.map((s) => [s.id, s]));
  const references = new Map<string, BlockSchemaReference[]>();
  let frontier = [...new Set(roots.map((s) => s.id))];
  while (frontier.length > 0) {
    const found = await repo.blocks.readSchemaReferences(frontier);
    for (const id of frontier) references.set(id, []);
    for (const reference of found) references.get(reference.parent_block_schema_id)!.push(reference);
    const missing = [...new Set(found.map((r) => r.reference_block_schema_id))].filter((id) => !schemas.has(id));
    if (missing.length > 0) for (const schema of await repo.blocks.readSchemas({ block_schemas: { id: { any_: missing } } })) schemas.set(schema.id, schema);
    frontier = [...new Set(found.map((r) => r.reference_block_schema_id))].filter((id) => !references.has(id));
  }

  const construct = (schema: BlockSchema, visiting: ReadonlySet<string>): Fields => {
    const referenceEntries: Fields = {};
    const children: { entry: SchemaReferenceEntry; child: BlockSchema }[] = [];
    for (const reference of references.get(schema.id) ?? []) {
      const child = schemas.get(reference.reference_block_schema_id);
      if (!child) continue;
      const entry: SchemaReferenceEntry = { block_schema_checksum: child.checksum, block_type_slug: child.block_type.slug };
      children.push({ entry, child });
      const current = Object.hasOwn(referenceEntries, reference.name) ? referenceEntries[reference.name] : undefined;
      const same = (other: unknown) =>
        isRecord(other) && other.block_schema_checksum === entry.block_schema_checksum && other.block_type_slug === entry.block_type_slug;
      if (current === undefined) setOwn(referenceEntries, reference.name, entry);
      else if (Array.isArray(current)) {
        if (!current.some(same)) current.push(entry);
      } else if (!same(current)) setOwn(referenceEntries, reference.name, [current, entry]);
    }
    const fields: Fields = { ...schema.fields, block_schema_references: referenceEntries };

    let definitions: Fields = {};
    for (const value of Object.values(referenceEntries)) {
      for (const entry of Array.isArray(value) ? value : [value]) {
        const { block_schema_checksum: checksum } = entry as SchemaReferenceEntry;
        const child = children.find((c) => c.entry.block_schema_checksum === checksum)?.child;
        if (!child || visiting.has(child.id)) continue;
        const childFields = construct(child, new Set([...visiting, child.id]));
        const title = childFields.title;
        if (title === undefined || title === null) continue;
        const { definitions: childDefinitions, ...rest } = childFields;
        const merged: Fields = {};
        for (const [k, v] of Object.entries(definitions)) setOwn(merged, k, v);
        setOwn(merged, String(title), rest);
        if (isRecord(childDefinitions)) for (const [k, v] of Object.entries(childDefinitions)) setOwn(merged, k, v);
        definitions = merged;
      }
    }
    if (Object.keys(definitions).length > 0 || isTruthy(fields.definitions)) {
      const combined: Fields = {};
      if (isRecord(fields.definitions)) for (const [k, v] of Object.entries(fields.definitions)) setOwn(combined, k, v);
      for (const [k, v] of Object.entries(definitions)) setOwn(combined, k, v);
      fields.definitions = combined;
    }
    return fields;
  };

  return roots.map((root) => blockSchemaResponse(root, construct(root, new Set([root.id]))));
}
