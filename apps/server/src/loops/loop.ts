/**
 * Background services (event persister, task-run recorder, scheduler, ...): plain loops with a start
 * and a stop, run inside the server or on their own. Each can be switched off by its setting.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Stops the loop, flushing anything it buffers, and resolves when it is idle. */
  stop(): Promise<void>;
}

/**
 * Runs `tick` every `intervalSeconds` until stopped; one tick at a time; errors are reported, not
 * thrown (the next tick tries again). `tick` gets a signal that is aborted when the service stops, so
 * that a long tick can end early.
 */
export class LoopService implements Service {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  #abort = new AbortController();

  constructor(
    readonly name: string,
    private readonly intervalSeconds: number,
    private readonly tick: (signal: AbortSignal) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  async start(): Promise<void> {
    this.#stopped = false;
    this.#abort = new AbortController();
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = Promise.resolve()
        .then(() => this.tick(this.#abort.signal))
        .catch(this.onError)
        .finally(() => {
          this.#running = undefined;
          this.#schedule(this.intervalSeconds * 1000);
        });
    }, delayMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
