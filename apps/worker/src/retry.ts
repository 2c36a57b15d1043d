/**
 * Trying a database call again while the database cannot serve it (a restart, a lost connection, a
 * full pool: BusyError), with a backoff, so that a short outage does not fail a run.
 */
import { BusyError } from "@prefect/db";
import { sleep } from "./sleep.js";

/** How often a call is tried when the database fails it. */
export const DATABASE_ATTEMPTS = 6;

/** The wait after the `failures`th failure: 0.5 s, doubling, at most 10 s (about 15 s over the attempts). */
export const backoffMs = (failures: number) => Math.min(500 * 2 ** (failures - 1), 10_000);

/** Runs `call`; while it fails with BusyError, tells `onBusy` and tries again, up to DATABASE_ATTEMPTS times. Other errors are thrown at once. */
export async function retryWhileBusy<T>(call: () => Promise<T>, onBusy: (error: BusyError) => void): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof BusyError) || failures >= DATABASE_ATTEMPTS) throw error;
      onBusy(error);
      await sleep(backoffMs(failures));
    }
  }
}
