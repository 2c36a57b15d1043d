/**
 * The repossessor (Prefect's `services/repossessor.py`): every `loop_seconds` it finds the concurrency
 * leases that lapsed without being renewed or released (their holder crashed or lost contact) and
 * gives their slots back to the limits they were taken on, as a release with the lease would.
 *
 * Leases live in the database, so the repossessor of any server frees the leases of every server
 * (one that died included). Each batch is taken out of the table (`DELETE ... RETURNING`, passing over
 * rows another repossessor holds) in the transaction that frees their slots: however many
 * repossessors run, and whatever a holder does at that moment, a lease's slots are freed once.
 */
import type { AppContext, Logger } from "../context.js";
import { freeLeaseSlots, slotWaits } from "../features/concurrency-limits/service.js";
import { LoopService } from "./loop.js";

/** Prefect's batch of expired leases per look. */
const BATCH = 100;

/** Frees the slots of every lease expired now; returns how many were repossessed. */
export async function repossessExpiredLeases({ db, settings }: Pick<AppContext, "db" | "settings">, log?: Logger): Promise<number> {
  const waits = slotWaits(settings);
  let repossessed = 0;
  for (;;) {
    const taken = await db.transaction(async (tx) => {
      const leases = await tx.concurrencyLeases.takeExpiredLeases(BATCH);
      for (const lease of leases) await freeLeaseSlots(tx, lease, waits);
      return leases;
    });
    for (const lease of taken) {
      if (!lease.metadata) log?.warn({ service: "Repossessor", lease_id: lease.id }, "revoked an expired concurrency lease without metadata");
      log?.info({ service: "Repossessor", lease_id: lease.id, limits: lease.resource_ids.length, slots: lease.metadata?.slots ?? 0 }, "revoked an expired concurrency lease");
    }
    repossessed += taken.length;
    if (taken.length < BATCH) return repossessed;
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
