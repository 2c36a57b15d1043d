/**
 * Prefect's lifecycle events (`prefect.<kind>.<action>`, see its events/schemas/lifecycle.py), for the
 * objects whose routes publish them once the change has committed.
 */
import { randomBytes } from "node:crypto";
import { now } from "@prefect/db";
import type { EventBus } from "./bus.js";

/** A time-ordered UUID (version 7), as Prefect gives its events. */
function uuid7(): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface LifecycleEvent {
  readonly kind: string;
  readonly action: "created" | "updated" | "deleted";
  /** `prefect.<kind>.<id>` */
  readonly resourceId: string;
  readonly resourceName?: string | null | undefined;
  readonly payload: Record<string, unknown>;
  readonly related?: Record<string, string>[];
}

export function publishLifecycleEvent(events: EventBus, event: LifecycleEvent): void {
  const at = now();
  const resource: Record<string, string> = { "prefect.resource.id": event.resourceId };
  if (event.resourceName !== null && event.resourceName !== undefined) resource["prefect.resource.name"] = event.resourceName;
  events.publish([
    { id: uuid7(), occurred: at, received: at, event: `prefect.${event.kind}.${event.action}`, resource, related: event.related ?? [], payload: event.payload },
  ]);
}
