/** Concurrency limits as Prefect's API shows them. */
import type { ConcurrencyLimitV2 } from "@prefect/db";
import type { TagLimitView } from "./tag-limits.js";

/** Prefect's ConcurrencyLimit (v1): the task runs holding its slots as `active_slots`. */
export function tagLimitResponse({ limit, holders }: TagLimitView) {
  return { id: limit.id, created: limit.created, updated: limit.updated, tag: limit.tag, concurrency_limit: limit.concurrency_limit, active_slots: holders };
}

/** The fields every view of a global limit shows. */
type GlobalLimit = Pick<ConcurrencyLimitV2, "id" | "created" | "updated" | "active" | "name" | "limit" | "active_slots" | "slot_decay_per_second">;

/** Prefect's GlobalConcurrencyLimitResponse: active slots after decay, no denied slots nor occupancy. */
export function globalLimitResponse(limit: GlobalLimit) {
  return {
    id: limit.id,
    created: limit.created,
    updated: limit.updated,
    active: limit.active,
    name: limit.name,
    limit: limit.limit,
    active_slots: limit.active_slots,
    slot_decay_per_second: limit.slot_decay_per_second,
  };
}

/** Prefect's ConcurrencyLimitV2: with the denied slots and the average occupancy. */
export function limitV2Response(limit: ConcurrencyLimitV2) {
  const { slot_decay_per_second, ...head } = globalLimitResponse(limit);
  return { ...head, denied_slots: limit.denied_slots, slot_decay_per_second, avg_slot_occupancy_seconds: limit.avg_slot_occupancy_seconds };
}

export const minimalLimit = (l: { id: string; name: string; limit: number }) => ({ id: l.id, name: l.name, limit: l.limit });
