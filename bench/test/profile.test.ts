import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { profileFile, topSelfTime } from "../src/profile.js";

const frame = (functionName: string, url: string, lineNumber: number) => ({ functionName, url, lineNumber, columnNumber: 0, scriptId: "0" });

describe("self time from a CPU profile", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function write(profile: unknown): string {
    const dir = mkdtempSync(join(tmpdir(), "prefect-bench-test-"));
    dirs.push(dir);
    writeFileSync(join(dir, "CPU.1.cpuprofile"), JSON.stringify(profile));
    return dir;
  }

  it("sums a function's samples over the places it was called from, idle left out", () => {
    const root = "/repo";
    const dir = write({
      nodes: [
        { id: 1, callFrame: frame("(root)", "", -1) },
        { id: 2, callFrame: frame("(idle)", "", -1) },
        { id: 3, callFrame: frame("handle", "file:///repo/apps/server/dist/app.js", 9) },
        { id: 4, callFrame: frame("insert", "file:///repo/packages/db/dist/sql.js", 41) },
        // insert again, called from elsewhere: a node of its own in the tree.
        { id: 5, callFrame: frame("insert", "file:///repo/packages/db/dist/sql.js", 41) },
        { id: 6, callFrame: frame("(garbage collector)", "", -1) },
        { id: 7, callFrame: frame("parse", "file:///repo/node_modules/.pnpm/zod@4.6.7/node_modules/zod/v4/core/schemas.js", 1198) },
      ],
      startTime: 0,
      endTime: 100,
      // Each sample stands for the time until the next one.
      samples: [4, 3, 5, 2, 6, 7, 4],
      timeDeltas: [0, 30_000, 10_000, 20_000, 500_000, 5_000, 2_000],
    });
    const top = topSelfTime(profileFile(dir), 10, root);
    expect(top.map((t) => [t.name, t.where, t.milliseconds])).toEqual([
      ["insert", "packages/db/dist/sql.js:42", 50],
      ["handle", "apps/server/dist/app.js:10", 10],
      ["(garbage collector)", "", 5],
      ["parse", "zod/v4/core/schemas.js:1199", 2],
    ]);
    expect(top[0]!.share).toBeCloseTo(50 / 67);
    expect(topSelfTime(profileFile(dir), 1, root)).toHaveLength(1);
  });

  it("wants exactly one profile in the folder", () => {
    const dir = mkdtempSync(join(tmpdir(), "prefect-bench-test-"));
    dirs.push(dir);
    expect(() => profileFile(dir)).toThrow(/found 0/);
  });
});
