/**
 * What Prefect reads from a user template's syntax tree before rendering it, from a small Jinja lexer:
 * its `for` loops (how many, how deeply nested: `_validate_loop_constraints`) and the names it loads
 * (`matching_types_in_templates`, which decides the objects fetched for its context).
 *
 * The lexer follows Jinja's default delimiters: `{{ }}`, `{% %}`, `{# #}`, with `-`/`+` whitespace
 * control, string literals, balanced braces inside expressions and `{% raw %}` blocks. Syntax errors
 * are left to the engine (templates.ts checks them first).
 */

export const MAX_LOOP_COUNT = 10;
export const MAX_NESTED_LOOP_DEPTH = 2;

type Token = { readonly kind: "name" | "string" | "number" | "operator"; readonly value: string };
interface Tag {
  readonly kind: "block" | "variable";
  readonly tokens: readonly Token[];
}

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9]+)?/y;
const OPERATORS = ["//", "**", "==", "!=", ">=", "<=", "~", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "=", "<", ">"];
const END_RAW = /\{%[-+]?\s*endraw\s*[-+]?%\}/g;

/** The tags of a template (text and comments dropped), in order. */
function tags(source: string): Tag[] {
  const out: Tag[] = [];
  let i = 0;
  while (i < source.length) {
    const start = source.indexOf("{", i);
    if (start < 0) break;
    const opener = source.slice(start, start + 2);
    if (opener === "{#") {
      const end = source.indexOf("#}", start + 2);
      if (end < 0) break;
      i = end + 2;
      continue;
    }
    if (opener !== "{{" && opener !== "{%") {
      i = start + 1;
      continue;
    }
    const kind = opener === "{{" ? "variable" : "block";
    const closer = kind === "variable" ? "}}" : "%}";
    const tokens: Token[] = [];
    let j = start + 2;
    if (source[j] === "-" || source[j] === "+") j++;
    let depth = 0;
    let closed = false;
    while (j < source.length) {
      const c = source[j]!;
      if (c === " " || c === "\t" || c === "\n" || c === "\r") {
        j++;
        continue;
      }
      if (depth === 0 && (source.startsWith(closer, j) || ((c === "-" || c === "+") && source.startsWith(closer, j + 1)))) {
        j += source.startsWith(closer, j) ? 2 : 3;
        closed = true;
        break;
      }
      if (c === "'" || c === '"') {
        let k = j + 1;
        while (k < source.length && source[k] !== c) k += source[k] === "\\" ? 2 : 1;
        tokens.push({ kind: "string", value: source.slice(j + 1, k) });
        j = k + 1;
        continue;
      }
      NAME.lastIndex = j;
      const name = NAME.exec(source);
      if (name) {
        tokens.push({ kind: "name", value: name[0] });
        j += name[0].length;
        continue;
      }
      NUMBER.lastIndex = j;
      const number = NUMBER.exec(source);
      if (number) {
        tokens.push({ kind: "number", value: number[0] });
        j += number[0].length;
        continue;
      }
      const operator = OPERATORS.find((op) => source.startsWith(op, j)) ?? c;
      if (operator === "{" || operator === "[" || operator === "(") depth++;
      if ((operator === "}" || operator === "]" || operator === ")") && depth > 0) depth--;
      tokens.push({ kind: "operator", value: operator });
      j += operator.length;
    }
    out.push({ kind, tokens });
    if (!closed) break;
    i = j;
    if (kind === "block" && tokens[0]?.kind === "name" && tokens[0].value === "raw") {
      END_RAW.lastIndex = i;
      const end = END_RAW.exec(source);
      if (!end) break;
      i = end.index + end[0].length;
    }
  }
  return out;
}

const statement = (tag: Tag) => (tag.kind === "block" && tag.tokens[0]?.kind === "name" ? tag.tokens[0].value : null);

/**
 * Prefect's loop limits (`TemplateSecurityError`, reported on line 0): at most 10 `for` loops, nested
 * at most 2 deep. Null when the template keeps to them.
 */
export function loopLimitProblem(source: string): string | null {
  let count = 0;
  let open = 0;
  let deepest = 0;
  for (const tag of tags(source)) {
    const name = statement(tag);
    if (name === "for") {
      count++;
      open++;
      deepest = Math.max(deepest, open);
    } else if (name === "endfor") {
      open = Math.max(0, open - 1);
    }
  }
  if (count > MAX_LOOP_COUNT) return `Contains ${count} for loops. Templates can contain no more than ${MAX_LOOP_COUNT} for loops.`;
  if (deepest > MAX_NESTED_LOOP_DEPTH) {
    return `Contains nested for loops at a depth of ${deepest}. Templates can nest for loops no more than ${MAX_NESTED_LOOP_DEPTH} loops deep.`;
  }
  return null;
}

const KEYWORDS = new Set(["and", "or", "not", "in", "is", "if", "else", "elif", "true", "false", "none", "True", "False", "None", "recursive", "with", "without", "context", "ignore", "missing", "as", "import", "from"]);

/**
 * Which of `candidates` the templates load as bare names (Prefect's `matching_types_in_templates`):
 * `flow_run` in `{{ flow_run.name }}`, not in `{{ event.flow_run }}` nor as a filter or keyword
 * argument. Errs on the side of a name being loaded.
 */
export function namesLoaded(templates: readonly string[], candidates: ReadonlySet<string>): string[] {
  const found = new Set<string>();
  for (const template of templates) {
    for (const tag of tags(template)) {
      const tokens = tag.tokens;
      for (let i = 0; i < tokens.length; i++) {
        const token = tokens[i]!;
        if (token.kind !== "name" || !candidates.has(token.value) || KEYWORDS.has(token.value)) continue;
        if (tag.kind === "block" && i === 0) continue;
        const before = tokens[i - 1];
        const after = tokens[i + 1];
        if (before?.kind === "operator" && (before.value === "." || before.value === "|")) continue;
        if (before?.kind === "name" && (before.value === "is" || (before.value === "not" && tokens[i - 2]?.value === "is"))) continue;
        if (after?.kind === "operator" && after.value === "=") continue;
        found.add(token.value);
      }
    }
  }
  return [...found].sort();
}

/** Prefect's `maybe_template`: only text with `{{` or `{%` is ever rendered. */
export const maybeTemplate = (text: string): boolean => text.includes("{{") || text.includes("{%");
