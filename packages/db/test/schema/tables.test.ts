/**
 * src/tables.ts, which our SQL encodes and decodes rows by, names exactly the columns each model has
 * in both schemas, each with a kind that fits its Prisma type.
 */
import { describe, expect, it } from "vitest";
import { type ColumnKind, tables } from "../../src/tables.js";
import { columnFields, columnOf, type Field, loadDatamodel, PROVIDERS, type Provider, tableOf } from "./prisma.js";

/**
 * The kinds a field may be read and written as. Text under an index (any index or unique constraint
 * naming it, in either schema) is `indexed_text`, whose length is bounded the same on both backends.
 */
function kindsFor(provider: Provider, field: Field, indexed: boolean): ColumnKind[] {
  if (field.kind === "enum") return ["enum"];
  const text: ColumnKind = indexed ? "indexed_text" : "text";
  switch (field.type) {
    case "String":
      // A uuid column is a String with @db.Uuid on PostgreSQL; SQLite has no uuid type (text either way).
      if (provider === "sqlite") return ["uuid", text];
      return field.nativeType?.[0] === "Uuid" ? ["uuid"] : [text];
    case "Int":
    case "BigInt":
      // A BigInt (event positions) is read as a number: it stays far below 2^53.
      return ["int"];
    case "Float":
      return ["float"];
    case "Boolean":
      return ["bool"];
    case "Json":
      return ["json"];
    case "DateTime":
      return ["timestamp"];
    default:
      return [];
  }
}

/** `Model.field` of every field under an index or unique constraint in either schema. */
async function indexedFields(): Promise<Set<string>> {
  const found = new Set<string>();
  for (const provider of PROVIDERS) {
    for (const index of (await loadDatamodel(provider)).indexes) {
      if (index.type !== "id") for (const field of index.fields) found.add(`${index.model}.${field.name}`);
    }
  }
  return found;
}

const specs: Record<string, { name: string; columns: Record<string, ColumnKind> }> = tables;

for (const provider of PROVIDERS) {
  describe(`src/tables.ts matches prisma/${provider}/schema.prisma`, () => {
    it("has a spec for every model's table, under the table's name, and no other", async () => {
      const dm = await loadDatamodel(provider);
      const modelTables = dm.models.map(tableOf).sort();
      expect(Object.keys(specs).sort()).toEqual(modelTables);
      const misnamed = Object.entries(specs)
        .filter(([key, spec]) => spec.name !== key)
        .map(([key, spec]) => `tables.${key} is named ${spec.name}`);
      expect(misnamed).toEqual([]);
    });

    it("names exactly each model's columns", async () => {
      const dm = await loadDatamodel(provider);
      const problems: string[] = [];
      for (const model of dm.models) {
        const spec = specs[tableOf(model)];
        if (!spec) continue;
        const expected = columnFields(model).map(columnOf);
        const listed = Object.keys(spec.columns);
        for (const c of expected.filter((c) => !listed.includes(c))) problems.push(`tables.${spec.name} lacks column ${c} (${model.name}.${c})`);
        for (const c of listed.filter((c) => !expected.includes(c))) problems.push(`tables.${spec.name} lists column ${c}, which model ${model.name} does not have`);
      }
      expect(problems).toEqual([]);
    });

    it("gives every column a kind that fits its Prisma type", async () => {
      const dm = await loadDatamodel(provider);
      const problems: string[] = [];
      for (const model of dm.models) {
        const spec = specs[tableOf(model)];
        if (!spec) continue;
        for (const field of columnFields(model)) {
          const kind = spec.columns[columnOf(field)];
          if (kind === undefined) continue;
          const indexed = (await indexedFields()).has(`${model.name}.${field.name}`);
          const fits = kindsFor(provider, field, indexed);
          if (!fits.includes(kind)) {
            const type = `${field.type}${field.nativeType ? ` @db.${field.nativeType[0]}` : ""}`;
            problems.push(`tables.${spec.name}.${columnOf(field)} is ${kind}, but ${model.name}.${field.name} is ${type} (${fits.join(" or ") || "no kind fits"})`);
          }
        }
      }
      expect(problems).toEqual([]);
    });
  });
}
