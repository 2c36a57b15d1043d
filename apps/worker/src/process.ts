/**
 * Flow run processes: started from an argument list (no shell) in a process group of their own, so
 * that stopping one reaches everything it started, and so that a Ctrl+C meant for the worker does
 * not reach them; their output read line by line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import type { Readable } from "node:stream";

export interface ExitStatus {
  /** The exit code; null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Python's returncode convention, which Prefect's messages use: the code, or minus the signal number. */
export function statusCode(exit: ExitStatus): number {
  if (exit.code !== null) return exit.code;
  return exit.signal ? -constants.signals[exit.signal] : -1;
}

export type OutputStream = "stdout" | "stderr";

export interface StartOptions {
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  /** Called with each complete line (without its line break); null: the output is discarded. */
  readonly onLine: ((stream: OutputStream, line: string) => void) | null;
  /** Called with the raw output as it arrives, e.g. to pass it through. */
  readonly onChunk?: ((stream: OutputStream, chunk: Buffer) => void) | undefined;
}

/** Longest line kept whole; longer output is cut into pieces of this size. */
const MAX_LINE_CHARS = 1_000_000;
/** How long to wait for the output pipes to close after the process exited (a child it left running may hold them). */
const OUTPUT_DRAIN_MS = 2000;

export class FlowRunProcess {
  readonly pid: number;
  /** Resolves once the process has exited and its output has been read. */
  readonly exited: Promise<ExitStatus>;
  #exit: ExitStatus | null = null;
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess, onLine: StartOptions["onLine"], onChunk: StartOptions["onChunk"]) {
    this.#child = child;
    this.pid = child.pid!;
    // Failures to signal an exited process are reported here; they change nothing.
    child.on("error", () => undefined);
    const drained = [readLines(child.stdout, "stdout", onLine, onChunk), readLines(child.stderr, "stderr", onLine, onChunk)];
    this.exited = new Promise<ExitStatus>((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exit = { code, signal };
        const done = Promise.all(drained);
        const timeout = new Promise<void>((r) => setTimeout(r, OUTPUT_DRAIN_MS).unref());
        void Promise.race([done, timeout]).then(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          resolve(this.#exit!);
        });
      });
    });
  }

  /** Starts the process; rejects when it cannot be started (e.g. the program does not exist). */
  static start(options: StartOptions): Promise<FlowRunProcess> {
    const [program, ...args] = options.args;
    if (!program) return Promise.reject(new Error("The command is empty."));
    return new Promise((resolve, reject) => {
      const child = spawn(program, args, {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ["ignore", options.onLine ? "pipe" : "ignore", options.onLine ? "pipe" : "ignore"],
      });
      child.once("error", (error) => reject(error));
      child.once("spawn", () => resolve(new FlowRunProcess(child, options.onLine, options.onChunk)));
    });
  }

  get running(): boolean {
    return this.#exit === null;
  }

  /** Sends `signal` to the process group; false when nothing was left to signal. */
  signalGroup(signal: NodeJS.Signals): boolean {
    try {
      process.kill(-this.pid, signal);
      return true;
    } catch {
      // The group is gone; the process itself may still be reapable.
      if (!this.running) return false;
      try {
        this.#child.kill(signal);
        return true;
      } catch {
        return false;
      }
    }
  }

  /** Whether any process of the group is still alive. */
  groupAlive(): boolean {
    try {
      process.kill(-this.pid, 0);
      return true;
    } catch {
      return this.running;
    }
  }

  /**
   * Stops the process group as Prefect's runner does: SIGTERM, then SIGKILL for whatever is left
   * after `graceSeconds` (sooner when `now` resolves). Resolves with the process's exit.
   */
  async terminate(graceSeconds: number, now?: Promise<void>): Promise<ExitStatus> {
    this.signalGroup("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<"grace">((resolve) => {
      timer = setTimeout(() => resolve("grace"), graceSeconds * 1000);
    });
    const outcome = await Promise.race([this.exited.then(() => "exited" as const), grace, ...(now ? [now.then(() => "now" as const)] : [])]);
    clearTimeout(timer);
    if (outcome !== "exited" || this.groupAlive()) this.signalGroup("SIGKILL");
    return this.exited;
  }
}

async function readLines(
  stream: Readable | null,
  name: OutputStream,
  onLine: StartOptions["onLine"],
  onChunk: StartOptions["onChunk"],
): Promise<void> {
  if (!stream || !onLine) return;
  let pending = "";
  const decoder = new TextDecoder("utf-8");
  const emit = (line: string) => onLine(name, line.endsWith("\r") ? line.slice(0, -1) : line);
  await new Promise<void>((resolve) => {
    stream.on("data", (chunk: Buffer) => {
      onChunk?.(name, chunk);
      pending += decoder.decode(chunk, { stream: true });
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        emit(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
      while (pending.length > MAX_LINE_CHARS) {
        emit(pending.slice(0, MAX_LINE_CHARS));
        pending = pending.slice(MAX_LINE_CHARS);
      }
    });
    const finish = () => {
      pending += decoder.decode();
      if (pending.length > 0) emit(pending);
      pending = "";
      resolve();
    };
    stream.once("end", finish);
    stream.once("close", () => {
      if (pending.length > 0) finish();
      else resolve();
    });
    stream.once("error", () => resolve());
  });
}
