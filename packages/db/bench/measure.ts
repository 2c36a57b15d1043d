export interface HotPath {
  readonly name: string;
  readonly ours: () => Promise<void>;
  readonly raw: () => Promise<void> | void;
}

export interface Result {
  readonly backend: string;
  readonly name: string;
  /** Operations per second. */
  readonly ours: number;
  readonly raw: number;
}

const ROUNDS = 5;

async function measure(fn: () => Promise<void> | void, milliseconds: number): Promise<{ ops: number; ms: number }> {
  const start = performance.now();
  let ops = 0;
  let elapsed = 0;
  do {
    await fn();
    ops++;
    elapsed = performance.now() - start;
  } while (elapsed < milliseconds);
  return { ops, ms: elapsed };
}

/** Measures each path in alternating rounds (raw, ours, raw, ours, ...) after a warm-up of both. */
export async function runPaths(backend: string, paths: readonly HotPath[], seconds: number): Promise<Result[]> {
  const results: Result[] = [];
  for (const path of paths) {
    await measure(path.raw, 200);
    await measure(path.ours, 200);
    const total = { ours: { ops: 0, ms: 0 }, raw: { ops: 0, ms: 0 } };
    for (let round = 0; round < ROUNDS; round++) {
      for (const side of round % 2 === 0 ? (["raw", "ours"] as const) : (["ours", "raw"] as const)) {
        const m = await measure(path[side], (seconds * 1000) / ROUNDS);
        total[side].ops += m.ops;
        total[side].ms += m.ms;
      }
    }
    results.push({
      backend,
      name: path.name,
      ours: (total.ours.ops / total.ours.ms) * 1000,
      raw: (total.raw.ops / total.raw.ms) * 1000,
    });
    process.stdout.write(`${backend}: measured "${path.name}"\n`);
  }
  return results;
}

export function printResults(results: readonly Result[]): void {
  const rows = results.map((r) => [r.backend, r.name, r.raw.toFixed(0), r.ours.toFixed(0), (r.ours / r.raw).toFixed(2)]);
  const header = ["backend", "hot path", "raw driver ops/s", "@prefect/db ops/s", "ratio"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ");
  process.stdout.write(`\n${line(header)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n${rows.map(line).join("\n")}\n`);
}
