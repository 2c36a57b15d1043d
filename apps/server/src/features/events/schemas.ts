/** Prefect's Event as clients send it, validated as Prefect's server validates it. */
import { fitsIndexedText, INDEXED_TEXT_TOO_LONG, TimestampSchema, Uuid } from "@prefect/db";
import { z } from "zod";

/** PREFECT_SERVER_EVENTS_MAXIMUM_LABELS_PER_RESOURCE, ..._MAXIMUM_RELATED_RESOURCES, ..._MAXIMUM_EVENT_NAME_LENGTH. */
const MAX_LABELS_PER_RESOURCE = 500;
const MAX_RELATED_RESOURCES = 100;
const MAX_EVENT_NAME_LENGTH = 1024;

function resourceSchema(kind: "Resources" | "Related Resources") {
  return z.record(z.string(), z.string()).superRefine((labels, ctx) => {
    if (Object.keys(labels).length > MAX_LABELS_PER_RESOURCE) {
      ctx.addIssue({ code: "custom", message: `The maximum number of labels per resource is ${MAX_LABELS_PER_RESOURCE}` });
    }
    if (!("prefect.resource.id" in labels)) ctx.addIssue({ code: "custom", message: `${kind} must include the prefect.resource.id label` });
    else if (!labels["prefect.resource.id"]) ctx.addIssue({ code: "custom", message: "The prefect.resource.id label must be non-empty" });
    else if (!fitsIndexedText(labels["prefect.resource.id"])) ctx.addIssue({ code: "custom", path: ["prefect.resource.id"], message: INDEXED_TEXT_TOO_LONG });
    if (kind === "Related Resources") {
      if (!("prefect.resource.role" in labels)) ctx.addIssue({ code: "custom", message: "Related Resources must include the prefect.resource.role label" });
      else if (!labels["prefect.resource.role"]) ctx.addIssue({ code: "custom", message: "The prefect.resource.role label must be non-empty" });
    }
  });
}

/**
 * Prefect's Event (client side): unknown fields are ignored, and so is a `received` the client sends
 * (the server sets it). Event names must not be empty here, and the event name and every resource id
 * must fit an indexed column (the events table refuses them otherwise): events are acknowledged before
 * the persister writes them, so what it would refuse is refused on arrival.
 */
export const IncomingEvent = z.object({
  occurred: TimestampSchema,
  event: z
    .string()
    .min(1, { message: "Event name must not be empty" })
    .max(MAX_EVENT_NAME_LENGTH, { message: `Event name must be at most ${MAX_EVENT_NAME_LENGTH} characters` })
    .refine(fitsIndexedText, { message: INDEXED_TEXT_TOO_LONG }),
  resource: resourceSchema("Resources"),
  related: z
    .array(resourceSchema("Related Resources"))
    .max(MAX_RELATED_RESOURCES, { message: `The maximum number of related resources is ${MAX_RELATED_RESOURCES}` })
    .default([]),
  payload: z.record(z.string(), z.unknown()).default({}),
  id: Uuid,
  follows: Uuid.nullish().transform((v) => v ?? null),
});
export type IncomingEvent = z.output<typeof IncomingEvent>;

