import { describe, expect, it } from "vitest";
import { parseTextSearch } from "../../src/text-search.js";

describe("Prefect's text search syntax", () => {
  it("splits terms, prefixes and quoted phrases", () => {
    expect(parseTextSearch('error +disk -debug !trace "connection reset" -"a b"')).toEqual({
      include: ["error", "connection reset"],
      required: ["disk"],
      exclude: ["debug", "trace", "a b"],
    });
  });

  it("ignores a prefix followed by a space and empty phrases", () => {
    expect(parseTextSearch('- error ""  + ')).toEqual({ include: ["error"], required: [], exclude: [] });
  });

  it("unescapes quotes in phrases and keeps an unclosed phrase", () => {
    expect(parseTextSearch('"say \\"hi\\"" "open')).toEqual({ include: ['say "hi"', "open"], required: [], exclude: [] });
  });
});
