/**
 * Where a stopping worker is in its shutdown. Stopping has three steps, one per signal (or the end
 * of the grace period for the second): stop taking runs and let running ones finish; hand the runs
 * still held back to the pool, stopping their processes (SIGTERM, then SIGKILL after the kill
 * grace period); SIGKILL what is still stopping. The worker moves through the steps; the run
 * supervisors read them, because a run that reaches a new stage (its due time, its process started)
 * must do what the step asks.
 */

/** What a run supervisor reads of the worker's shutdown. */
export interface ShutdownView {
  /** The worker was asked to stop: a run that has not started goes back to the pool. */
  readonly requested: boolean;
  /** Runs are being handed back: a process that has just started is stopped at once. */
  readonly handingBack: boolean;
  /** Resolves when processes that are still stopping must be killed without waiting any longer. */
  readonly killNow: Promise<void>;
}

export class Shutdown implements ShutdownView {
  requested = false;
  /** A second stop came before the grace period ended: hand the runs back now. */
  forced = false;
  handingBack = false;
  /** When the grace period ends (ms since the epoch); null until a stop is requested. */
  deadline: number | null = null;
  #kill!: () => void;
  readonly killNow = new Promise<void>((resolve) => {
    this.#kill = resolve;
  });

  /** Step one: no new runs, and a grace period for the running ones. */
  request(graceSeconds: number): void {
    this.requested = true;
    this.deadline = Date.now() + graceSeconds * 1000;
  }

  /** Whether the wait for running runs is over (grace period ended, or cut short). */
  get graceOver(): boolean {
    return this.deadline !== null && (this.forced || Date.now() >= this.deadline);
  }

  /** Milliseconds left of the grace period (infinite before a stop is requested). */
  graceLeftMs(): number {
    return this.deadline === null ? Number.POSITIVE_INFINITY : this.deadline - Date.now();
  }

  /** Step three: SIGKILL what is still stopping. */
  kill(): void {
    this.#kill();
  }
}
