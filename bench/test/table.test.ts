import { describe, expect, it } from "vitest";
import { formatQuantity, type Line, ratio, renderTable } from "../src/table.js";

const create: Line = {
  figure: "POST /api/flow_runs/",
  backend: "sqlite",
  ours: { value: 569, unit: "req/s" },
  floor: { label: "Fastify + 1 raw INSERT", value: { value: 9400, unit: "req/s" } },
  serverCpu: 0.754,
  goal: "≥ 2,000 req/s",
};

describe("the end-to-end table", () => {
  it("gives ours over the floor, or the floor over ours where less is better", () => {
    expect(ratio(create)).toBeCloseTo(569 / 9400);
    expect(ratio({ figure: "round trips", backend: "postgres", ours: { value: 12, unit: "round trips" }, floor: { label: "one statement", value: { value: 1, unit: "round trips" } }, lowerIsBetter: true })).toBeCloseTo(1 / 12);
    expect(ratio({ figure: "RSS", backend: "sqlite", ours: { value: 200, unit: "MB" } })).toBeNull();
  });

  it("writes quantities short", () => {
    expect(formatQuantity({ value: 33_412, unit: "req/s" })).toBe("33.4k req/s");
    expect(formatQuantity({ value: 2_712.4, unit: "req/s" })).toBe("2712 req/s");
    expect(formatQuantity({ value: 46.66, unit: "runs/s" })).toBe("46.7 runs/s");
    expect(formatQuantity({ value: 12, unit: "round trips" })).toBe("12.0 round trips");
    expect(formatQuantity({ value: 284.6, unit: "MB" })).toBe("285 MB");
  });

  it("prints a figure's name once for its lines, in columns or as Markdown", () => {
    const lines: Line[] = [
      create,
      { ...create, floor: { label: "raw driver: run + state rows", value: { value: 1900, unit: "req/s" } }, serverCpu: undefined, goal: "≥ 0.5× raw" },
      { ...create, backend: "postgres", ours: { value: 326, unit: "req/s" } },
    ];
    const text = renderTable(lines, false).split("\n");
    expect(text[0]).toMatch(/^figure\s+backend\s+ours\s+floor\s+ratio\s+floor is\s+server CPU\s+goal$/);
    expect(text[2]).toMatch(/^POST \/api\/flow_runs\/\s+sqlite\s+569 req\/s\s+9400 req\/s\s+0\.06\s+Fastify \+ 1 raw INSERT\s+75%\s+≥ 2,000 req\/s$/);
    expect(text[3]).toMatch(/^\s+569 req\/s\s+1900 req\/s\s+0\.30\s+raw driver: run \+ state rows\s+≥ 0\.5× raw$/);
    expect(text[4]).toMatch(/^\s+postgres\s+326 req\/s/);
    const markdown = renderTable(lines, true).split("\n");
    expect(markdown[1]).toBe("| --- | --- | --- | --- | --- | --- | --- | --- |");
    expect(markdown[2]).toBe("| POST /api/flow_runs/ | sqlite | 569 req/s | 9400 req/s | 0.06 | Fastify + 1 raw INSERT | 75% | ≥ 2,000 req/s |");
  });
});
