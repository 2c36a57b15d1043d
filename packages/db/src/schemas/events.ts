/**
 * Prefect events: what happened (`event`), to which resource, with related resources and a payload.
 * Resources are flat string-to-string label maps whose `prefect.resource.id` names them; related
 * resources also carry `prefect.resource.role`.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { TimestampSchema, Uuid } from "./common.js";

export const Resource = z
  .record(z.string(), z.string())
  .refine((r) => typeof r["prefect.resource.id"] === "string" && r["prefect.resource.id"].length > 0, {
    message: "Resources must include the prefect.resource.id label",
  });

export const RelatedResource = Resource.refine((r) => typeof r["prefect.resource.role"] === "string" && r["prefect.resource.role"].length > 0, {
  message: "Related Resources must include the prefect.resource.role label",
});

export const EventCreate = z.object({
  id: Uuid,
  occurred: TimestampSchema,
  event: z.string().min(1).max(1024),
  resource: Resource,
  related: z.array(RelatedResource).default([]),
  payload: z.record(z.string(), z.unknown()).default({}),
  received: TimestampSchema.optional(),
  follows: Uuid.nullish(),
});
export type EventCreate = z.input<typeof EventCreate>;

export interface StoredEvent {
  id: string;
  occurred: Timestamp;
  event: string;
  resource: Record<string, string>;
  related: Record<string, string>[];
  payload: Record<string, unknown>;
  received: Timestamp;
  recorded: Timestamp;
  follows: string | null;
}

/** Label values: exact, `prefix*`, `*` (any), or `!value` / `!prefix*` (not). */
export const ResourceSpecification = z.record(z.string(), z.union([z.string(), z.array(z.string())]));
export type ResourceSpecification = z.infer<typeof ResourceSpecification>;

const list = z.array(z.string()).nullish();

export const EventFilter = z.strictObject({
  occurred: z
    .strictObject({ since: TimestampSchema.optional(), until: TimestampSchema.optional() })
    .optional(),
  event: z.strictObject({ prefix: list, exclude_prefix: list, name: list, exclude_name: list }).nullish(),
  resource: z.strictObject({ id: list, id_prefix: list, labels: ResourceSpecification.nullish(), distinct: z.boolean().optional() }).nullish(),
  related: z
    .union([
      z.strictObject({
        id: list,
        role: list,
        resources_in_roles: z.array(z.tuple([z.string(), z.string()])).nullish(),
        labels: ResourceSpecification.nullish(),
      }),
      z.array(
        z.strictObject({
          id: list,
          role: list,
          resources_in_roles: z.array(z.tuple([z.string(), z.string()])).nullish(),
          labels: ResourceSpecification.nullish(),
        }),
      ),
    ])
    .nullish(),
  any_resource: z
    .union([
      z.strictObject({ id: list, id_prefix: list, labels: ResourceSpecification.nullish() }),
      z.array(z.strictObject({ id: list, id_prefix: list, labels: ResourceSpecification.nullish() })),
    ])
    .nullish(),
  id: z.strictObject({ id: z.array(Uuid).nullish() }).optional(),
  text: z.strictObject({ query: z.string().max(200) }).nullish(),
  order: z.enum(["ASC", "DESC"]).optional(),
});
export type EventFilter = z.input<typeof EventFilter>;
