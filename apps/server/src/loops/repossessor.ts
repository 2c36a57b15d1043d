/**
 * The repossessor (Prefect's `services/repossessor.py`): every `loop_seconds` it finds the concurrency
 * leases that lapsed without being renewed or released (their holder crashed or lost contact) and
 * gives their slots back to the limits they were taken on, as a release with the lease would.
 *
 * Each lease is taken out of the lease storage before its slots are freed, so a holder releasing the
 * same lease at that moment frees nothing twice (and an expired lease can no longer be renewed). Leases live in this server's memory: each server
 * repossesses the leases it granted.
 */
import type { AppContext, Logger } from "../context.js";
import { freeLeaseSlots, slotWaits } from "../features/concurrency-limits/service.js";
import { LoopService } from "./loop.js";

/** Prefect's batch of expired leases per look. */
const BATCH = 100;

/** Frees the slots of every lease expired now; returns how many were repossessed. */
export async function repossessExpiredLeases({ db, leases, settings }: Pick<AppContext, "db" | "leases" | "settings">, log?: Logger): Promise<number> {
  const waits = slotWaits(settings);
  let repossessed = 0;
  for (;;) {
    const ids = await leases.readExpiredLeaseIds(BATCH);
    let progressed = false;
    for (const id of ids) {
      const lease = await leases.takeLease(id);
      if (!lease) continue;
      progressed = true;
      if (!lease.metadata) log?.warn({ service: "Repossessor", lease_id: id }, "revoking an expired concurrency lease without metadata");
      await freeLeaseSlots(db, leases, lease, waits);
      repossessed += 1;
      log?.info({ service: "Repossessor", lease_id: id, limits: lease.resource_ids.length, slots: lease.metadata?.slots ?? 0 }, "revoked an expired concurrency lease");
    }
    if (ids.length < BATCH || !progressed) return repossessed;
  }
}

export function repossessor(context: AppContext, log: Logger): LoopService {
  return new LoopService(
    "Repossessor",
    context.settings.services.repossessor.loopSeconds,
    async () => {
      await repossessExpiredLeases(context, log);
    },
    (error) => log.error({ err: error, service: "Repossessor" }, "repossessing expired concurrency leases failed"),
  );
}
