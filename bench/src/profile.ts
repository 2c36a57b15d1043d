/**
 * Reading a V8 CPU profile (`node --cpu-prof`): self time per function, summed over every place the
 * function was sampled, so the functions the server spends its own time in come first. The profile
 * covers the process's whole life; under a load of some seconds, the load is most of it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number; readonly columnNumber: number };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  /** Function name and where it is (file:line), or V8's own entries such as (garbage collector). */
  readonly name: string;
  readonly where: string;
  readonly milliseconds: number;
  /** Share of the sampled time (idle excluded). */
  readonly share: number;
}

/** The one profile a process wrote into `dir`. */
export function profileFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length !== 1) throw new Error(`expected one CPU profile in ${dir}, found ${files.length}`);
  return join(dir, files[0]!);
}

function location(url: string, line: number, root: string): string {
  if (!url) return "";
  const path = url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
  // A dependency by its package path (zod/v4/core/schemas.js), the project's files from its root.
  const dependency = /^.*\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?(.*)$/.exec(path);
  const shown = dependency ? dependency[1]! : path.startsWith(`${root}/`) ? relative(root, path) : path;
  return `${shown}:${line + 1}`;
}

/** The `count` functions with the most self time; `root` shortens paths inside the repository. */
export function topSelfTime(file: string, count: number, root: string): SelfTime[] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, { name: string; where: string; micros: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") return;
    // A sample stands for the time until the next one.
    const micros = profile.timeDeltas[i + 1] ?? 0;
    total += micros;
    const name = functionName || "(anonymous)";
    const where = location(url, lineNumber, root);
    const key = `${name}@${where}`;
    const entry = byFunction.get(key) ?? { name, where, micros: 0 };
    entry.micros += micros;
    byFunction.set(key, entry);
  });
  return [...byFunction.values()]
    .sort((a, b) => b.micros - a.micros)
    .slice(0, count)
    .map((e) => ({ name: e.name, where: e.where, milliseconds: e.micros / 1000, share: total > 0 ? e.micros / total : 0 }));
}
