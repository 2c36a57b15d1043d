/** The one table the end-to-end bench prints: each figure, ours beside its floor, and the ratio. */

export type Unit = "req/s" | "rows/s" | "events/s" | "runs/s" | "jobs/s" | "spawns/s" | "MB" | "round trips" | "ms";

export interface Quantity {
  readonly value: number;
  readonly unit: Unit;
}

export interface Floor {
  /** What the floor is, e.g. "Fastify + 1 raw INSERT". */
  readonly label: string;
  readonly value: Quantity;
}

export interface Line {
  readonly figure: string;
  /** sqlite, postgres, or the machine for figures that are not about a database. */
  readonly backend: string;
  readonly ours: Quantity;
  readonly floor?: Floor | undefined;
  /** For round trips and memory: less is better, and the ratio is floor / ours. */
  readonly lowerIsBetter?: boolean;
  /** The share of one core the server used during the measurement. */
  readonly serverCpu?: number | null | undefined;
  /** The goal for this figure, as text. */
  readonly goal?: string | undefined;
}

export function formatQuantity(q: Quantity): string {
  if (q.unit === "round trips") return `${q.value.toFixed(1)} round trips`;
  if (q.unit === "MB") return `${q.value.toFixed(0)} MB`;
  const v = q.value;
  const text = v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v >= 100 ? v.toFixed(0) : v.toFixed(1);
  return `${text} ${q.unit}`;
}

export function ratio(line: Line): number | null {
  if (!line.floor || line.floor.value.value <= 0 || line.ours.value <= 0) return null;
  return line.lowerIsBetter ? line.floor.value.value / line.ours.value : line.ours.value / line.floor.value.value;
}

const HEADER = ["figure", "backend", "ours", "floor", "ratio", "floor is", "server CPU", "goal"] as const;

function cells(line: Line, previous: Line | undefined): string[] {
  const r = ratio(line);
  return [
    previous?.figure === line.figure ? "" : line.figure,
    previous?.figure === line.figure && previous.backend === line.backend ? "" : line.backend,
    formatQuantity(line.ours),
    line.floor ? formatQuantity(line.floor.value) : "",
    r === null ? "" : r.toFixed(2),
    line.floor?.label ?? "",
    line.serverCpu === undefined || line.serverCpu === null ? "" : `${Math.round(line.serverCpu * 100)}%`,
    line.goal ?? "",
  ];
}

/** Aligned columns for a terminal, or a Markdown table. */
export function renderTable(lines: readonly Line[], markdown: boolean): string {
  const rows = lines.map((line, i) => cells(line, lines[i - 1]));
  if (markdown) {
    const row = (c: readonly string[]) => `| ${c.join(" | ")} |`;
    return [row(HEADER), row(HEADER.map(() => "---")), ...rows.map(row)].join("\n");
  }
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const numeric = new Set([2, 3, 4, 6]);
  const render = (c: readonly string[]) =>
    c
      .map((text, i) => (numeric.has(i) ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [render(HEADER), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(render)].join("\n");
}
