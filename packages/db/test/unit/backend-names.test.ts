/**
 * What differs between SQLite and PostgreSQL lives in src/backends/<name>/, chosen once by
 * openDatabase: no other module of the library branches on a backend's name or reaches into one
 * backend. The settings loader (which parses the choice) and the test support (which picks test
 * databases) are the exceptions.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src", import.meta.url));
const ALLOWED = [/^backends\//, /^generated\//, /^testing\//, /^config\.ts$/];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Code without comments, so that prose may still name the backends. */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");

describe("backend names", () => {
  it("appear in no module outside src/backends/<name>/, the settings loader and the test support", () => {
    const offenders = sources(SRC)
      .map((path) => ({ path: relative(SRC, path), text: code(readFileSync(path, "utf8")) }))
      .filter(({ path }) => !ALLOWED.some((allowed) => allowed.test(path)))
      .flatMap(({ path, text }) => {
        const found = [
          ...text.matchAll(/["'`](sqlite|postgres|postgresql)["'`]/gi),
          ...text.matchAll(/from "[^"]*backends\/(sqlite|postgres)\/[^"]*"/g),
        ];
        return found.map((match) => `${path}: ${match[0]}`);
      });
    expect(offenders).toEqual([]);
  });

  it("are named by the backends themselves", () => {
    const registry = code(readFileSync(join(SRC, "backends/index.ts"), "utf8"));
    expect(registry).not.toMatch(/["'`](sqlite|postgres)["'`]/);
  });
});
