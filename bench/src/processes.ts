/**
 * Child processes of the bench (the server, the worker, the Fastify floor): started with their output
 * kept for error messages, waited for until they announce themselves, and stopped with SIGTERM as an
 * operator would (SIGKILL only if they do not stop). Their memory and CPU time are read from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last part of its stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const KEEP_CHARS = 64 * 1024;

export interface StartOptions {
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** Options for node itself (e.g. --cpu-prof). */
  readonly nodeOptions?: readonly string[];
  /** Resolves the start once a line of stdout matches; its match is returned. */
  readonly ready: RegExp;
  readonly timeoutMs?: number;
  readonly what: string;
}

/** Starts `node [nodeOptions] args...` and waits for its `ready` line. */
export async function startNode(options: StartOptions): Promise<{ child: Child; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, [...(options.nodeOptions ?? []), ...options.args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-KEEP_CHARS);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const child: Child = {
    process: proc,
    pid: proc.pid ?? -1,
    exited,
    output: () => output,
    async stop(graceMs = 30_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
  };
  proc.stderr.on("data", keep);
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    let pending = "";
    const timer = setTimeout(() => {
      reject(new Error(`${options.what} did not start within ${(options.timeoutMs ?? 60_000) / 1000} s:\n${output}`));
      proc.kill("SIGKILL");
    }, options.timeoutMs ?? 60_000);
    proc.stdout.on("data", (chunk: Buffer) => {
      keep(chunk);
      pending += chunk.toString("utf8");
      const found = options.ready.exec(pending);
      if (found) {
        clearTimeout(timer);
        pending = "";
        resolve(found);
      } else if (pending.length > KEEP_CHARS) pending = pending.slice(-KEEP_CHARS);
    });
    proc.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${options.what} exited (${signal ?? `code ${code}`}) before it was ready:\n${output}`));
    });
  });
  return { child, match };
}

/** Resident memory of a process in bytes (Linux /proc, else `ps`). */
export function residentBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (kb) return Number(kb[1]) * 1024;
  } catch {
    // not Linux: ask ps
  }
  return Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }).trim()) * 1024;
}

let clockTicks: number | undefined;

/** CPU time (user + system) a process has used so far, in seconds; null where /proc is not available. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces), starting at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return null;
  }
}

/** This environment without the settings that choose a database or the server's address. */
export function cleanEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^PREFECT_(DATABASE|SERVER_DATABASE|API_DATABASE|SERVER_API|API_URL|SERVER_SERVICES|API_SERVICES|SERVER_LOGGING|LOGGING)/.test(key)) delete env[key];
  }
  return env;
}
