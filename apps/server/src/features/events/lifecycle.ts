/**
 * Prefect's lifecycle events (`prefect.<kind>.<action>`, see its events/schemas/lifecycle.py), for
 * the objects whose services publish them once the change has committed.
 */
import { type PrefectEvent, prefectEvent, type ResourceLabels } from "@prefect/orchestration";

export interface LifecycleEvent {
  readonly kind: string;
  readonly action: "created" | "updated" | "deleted";
  /** `prefect.<kind>.<id>` */
  readonly resourceId: string;
  readonly resourceName?: string | null | undefined;
  readonly payload: Record<string, unknown>;
  readonly related?: ResourceLabels[];
}

export function lifecycleEvent(event: LifecycleEvent): PrefectEvent {
  const resource: ResourceLabels = { "prefect.resource.id": event.resourceId };
  if (event.resourceName !== null && event.resourceName !== undefined) resource["prefect.resource.name"] = event.resourceName;
  return prefectEvent({ event: `prefect.${event.kind}.${event.action}`, resource, related: event.related ?? [], payload: event.payload });
}
