/**
 * Prefect's lifecycle events for blocks (`prefect.block-type.*`, `prefect.block-document.*`, see its
 * events/schemas/lifecycle.py), published once the change has committed. Anonymous documents have none.
 */
import type { BlockType } from "@prefect/db";
import { type EventParts, prefectEvent } from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import { publishEvents } from "../events/bus.js";
import type { BlockDocumentResponse } from "./documents.js";
import { type BlockTypeResponse, blockTypeResponse } from "./schemas.js";

type Action = "created" | "updated" | "deleted";

function publish(context: Pick<AppContext, "events">, event: EventParts) {
  publishEvents(context.events, [prefectEvent(event)]);
}

/** The type's fields, as its events carry them. */
function typePayload(type: BlockType | BlockTypeResponse) {
  const { id: _id, created: _created, updated: _updated, ...fields } = blockTypeResponse(type);
  return fields;
}

export function publishBlockTypeEvent(context: Pick<AppContext, "events">, action: Action, type: BlockType | BlockTypeResponse): void {
  publish(context, {
    event: `prefect.block-type.${action}`,
    resource: { "prefect.resource.id": `prefect.block-type.${type.id}`, "prefect.resource.name": type.name },
    related: [],
    payload: typePayload(type),
  });
}

/** `doc` as read without secrets; its payload keeps the non-secret top-level string values. */
export function publishBlockDocumentEvent(context: Pick<AppContext, "events">, action: Action, doc: BlockDocumentResponse): void {
  if (doc.is_anonymous) return;
  const schema = doc.block_schema;
  const secretFields = Array.isArray(schema?.fields.secret_fields) ? (schema.fields.secret_fields as unknown[]) : [];
  const data = Object.fromEntries(Object.entries(doc.data).filter(([key, value]) => !secretFields.includes(key) && typeof value === "string"));
  const blockType: Record<string, string> = { "prefect.resource.id": `prefect.block-type.${doc.block_type_id}`, "prefect.resource.role": "block-type" };
  if (doc.block_type_name) blockType["prefect.resource.name"] = doc.block_type_name;
  publish(context, {
    event: `prefect.block-document.${action}`,
    resource: { "prefect.resource.id": `prefect.block-document.${doc.id}`, "prefect.resource.name": doc.name },
    related: [blockType, { "prefect.resource.id": `prefect.block-schema.${doc.block_schema_id}`, "prefect.resource.role": "block-schema" }],
    payload: {
      name: doc.name,
      data,
      block_schema: schema ? { capabilities: schema.capabilities, block_type: { id: doc.block_type_id, name: doc.block_type_name ?? "" } } : null,
    },
  });
}
