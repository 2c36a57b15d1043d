/**
 * The source of the worker thread that checks and renders user templates with MiniJinja (the
 * `minijinja-js` WebAssembly build). It runs apart from the server's thread so that a template that
 * runs long is stopped by terminating the thread, and its WebAssembly memory is capped (the module's
 * memory gets a maximum before it is instantiated), so a template that builds a huge value fails
 * inside the sandbox instead of exhausting the process. Filters are plain JavaScript here and never
 * throw into the engine (a throw inside MiniJinja aborts it): a failure is recorded and reported after
 * the render.
 *
 * It is a CommonJS script run with `eval: true`, given the path of the MiniJinja module and the limits
 * as `workerData`; it answers `{id, ok, output}` or `{id, ok: false, error: {message, line, fatal}}`.
 */
export const TEMPLATE_WORKER_SOURCE = String.raw`
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const { engine, memoryPages, fuel, maxOutputChars, maxRange } = workerData;

function leb(bytes, at) {
  let value = 0, shift = 0, i = at;
  for (;;) {
    const b = bytes[i++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [value, i];
  }
}
function encodeLeb(value) {
  const out = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}
// Gives the module's own memory a maximum of "pages" (64 KiB each).
function capMemory(bytes, pages) {
  const input = Buffer.from(bytes);
  let i = 8;
  while (i < input.length) {
    const id = input[i];
    const [size, start] = leb(input, i + 1);
    if (id === 5) {
      let [count, p] = leb(input, start);
      if (count < 1) return input;
      const flags = input[p++];
      const [min, afterMin] = leb(input, p);
      let rest = afterMin;
      let max = pages;
      if (flags & 1) {
        const [given, afterMax] = leb(input, afterMin);
        max = Math.min(given, pages);
        rest = afterMax;
      }
      max = Math.max(max, min);
      const body = Buffer.concat([
        Buffer.from(encodeLeb(count)),
        Buffer.from([flags | 1, ...encodeLeb(min), ...encodeLeb(max)]),
        input.subarray(rest, start + size),
      ]);
      return Buffer.concat([input.subarray(0, i), Buffer.from([5, ...encodeLeb(body.length)]), body, input.subarray(start + size)]);
    }
    i = start + size;
  }
  throw new Error("the template engine declares no memory");
}

const OriginalModule = WebAssembly.Module;
WebAssembly.Module = function (bytes) { return new OriginalModule(capMemory(bytes, memoryPages)); };
let minijinja;
try { minijinja = require(engine); } finally { WebAssembly.Module = OriginalModule; }

// What the filters of the render in progress see, and the first failure they met.
let current = { kinds: {}, uiUrl: null, failure: null };
const fail = (message) => { if (!current.failure) current.failure = message; return null; };
const safely = (fn) => (...args) => { try { return fn(...args.map(plain)); } catch (e) { return fail(String(e && e.message || e)); } };

function plain(value) {
  if (value instanceof Map) { const o = {}; for (const [k, v] of value) o[String(k)] = plain(v); return o; }
  if (Array.isArray(value)) return value.map(plain);
  return value === undefined ? null : value;
}

// Python's json.dumps (ensure_ascii, sort_keys: Jinja's default policy) made HTML-safe, as Jinja's htmlsafe_json_dumps.
function pyString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c > 0x7e) {
      for (let k = 0; k < ch.length; k++) out += "\\u" + ch.charCodeAt(k).toString(16).padStart(4, "0");
    } else out += ch;
  }
  return out + '"';
}
function pyJson(value, indent, level) {
  if (value === null || value === undefined) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : value > 0 ? "Infinity" : value < 0 ? "-Infinity" : "NaN";
  if (typeof value === "string") return pyString(value);
  const inner = indent === null ? "" : "\n" + " ".repeat(indent * (level + 1));
  const outer = indent === null ? "" : "\n" + " ".repeat(indent * level);
  const sep = indent === null ? ", " : ",";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return "[" + inner + value.map((v) => pyJson(v, indent, level + 1)).join(sep + inner) + outer + "]";
  }
  const keys = Object.keys(value).sort();
  if (keys.length === 0) return "{}";
  return "{" + inner + keys.map((k) => pyString(k) + ": " + pyJson(value[k], indent, level + 1)).join(sep + inner) + outer + "}";
}
const htmlSafe = (s) => s.replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026").replace(/'/g, "\\u0027");

const UI_PATHS = {
  "flow": "flows/flow/", "flow-run": "runs/flow-run/", "task-run": "runs/task-run/", "deployment": "deployments/deployment/",
  "work-queue": "work-queues/work-queue/", "automation": "automations/automation/", "concurrency-limit": "concurrency-limits/concurrency-limit/",
  "block-document": "blocks/block/",
};
function kindOf(obj) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return null;
  return typeof obj.id === "string" ? current.kinds[obj.id] || null : null;
}
function uiUrl(obj) {
  const base = current.uiUrl;
  const kind = kindOf(obj);
  if (!base || !kind) return null;
  const root = base.replace(/\/+$/, "");
  if (kind === "work-pool") return root + "/work-pools/work-pool/" + obj.name;
  if (kind === "event") return root + "/events/event/" + String(obj.occurred).slice(0, 10) + "/" + obj.id;
  return UI_PATHS[kind] ? root + "/" + UI_PATHS[kind] + obj.id : null;
}
function uiResourceEventsUrl(obj) {
  const base = current.uiUrl;
  if (!base || !obj || typeof obj !== "object") return null;
  let resource = null;
  const kind = kindOf(obj);
  if (typeof obj["prefect.resource.id"] === "string") resource = obj["prefect.resource.id"];
  else if (kind && kind !== "event" && kind !== "block-document" && kind !== "concurrency-limit") resource = "prefect." + kind + "." + obj.id;
  if (!resource) return null;
  return new URL("events?resource=" + resource, base.endsWith("/") ? base : base + "/").toString();
}

// The humanize filters (Python's humanize, as jinja2_humanize_extension maps them).
const plural = (n, one, many) => (n === 1 ? one : many.replace("%d", String(n)));
function asDate(value) {
  if (typeof value === "string") { const d = new Date(value); if (!Number.isNaN(d.getTime())) return d; }
  return null;
}
function seconds(value) {
  if (typeof value === "number") return value;
  const d = asDate(value);
  if (d) return (Date.now() - d.getTime()) / 1000;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}
function naturaldelta(value) {
  const s = seconds(value);
  if (s === null) return value;
  const total = Math.abs(s);
  let days = Math.floor(total / 86400);
  const secs = Math.floor(total - days * 86400);
  const years = Math.floor(days / 365);
  days = days % 365;
  const months = Math.floor(days / 30.5);
  if (!years && days < 1) {
    if (secs === 0) return "a moment";
    if (secs === 1) return "a second";
    if (secs < 60) return secs + " seconds";
    if (secs < 120) return "a minute";
    if (secs < 3600) return Math.floor(secs / 60) + " minutes";
    if (secs < 7200) return "an hour";
    return Math.floor(secs / 3600) + " hours";
  }
  if (years === 0) {
    if (days === 1) return "a day";
    if (!months) return days + " days";
    return months === 1 ? "a month" : months + " months";
  }
  if (years === 1) {
    if (!months && !days) return "a year";
    if (!months) return plural(days, "1 year, 1 day", "1 year, %d days");
    return months === 1 ? "1 year, 1 month" : "1 year, " + months + " months";
  }
  return years.toLocaleString("en-US") + " years";
}
function naturaltime(value) {
  const s = seconds(value);
  if (s === null) return value;
  const delta = naturaldelta(s);
  if (delta === "a moment") return "now";
  return s < 0 ? delta + " from now" : delta + " ago";
}
function precisedelta(value) {
  const s = seconds(value);
  if (s === null) return value;
  let rest = Math.abs(s);
  const units = [["year", 365 * 86400], ["month", 30.5 * 86400], ["day", 86400], ["hour", 3600], ["minute", 60]];
  const parts = [];
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n) parts.push(n + " " + name + (n === 1 ? "" : "s"));
  }
  const secs = Math.round(rest * 100) / 100;
  if (secs || parts.length === 0) parts.push((Number.isInteger(secs) ? secs : secs.toFixed(2)) + " second" + (secs === 1 ? "" : "s"));
  return parts.length === 1 ? parts[0] : parts.slice(0, -1).join(", ") + " and " + parts[parts.length - 1];
}
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function naturalday(value, withYear) {
  const d = asDate(value);
  if (!d) return value;
  const day = (x) => Date.UTC(x.getUTCFullYear(), x.getUTCMonth(), x.getUTCDate()) / 86400000;
  const diff = day(d) - day(new Date());
  if (diff === 0) return "today";
  if (diff === 1) return "tomorrow";
  if (diff === -1) return "yesterday";
  const text = MONTHS[d.getUTCMonth()] + " " + String(d.getUTCDate()).padStart(2, "0");
  return withYear && Math.abs(diff) >= 5 * 30.5 ? text + " " + d.getUTCFullYear() : text;
}
function naturalsize(value, binary, gnu) {
  const bytes = Number(value);
  if (!Number.isFinite(bytes)) return value;
  const base = binary || gnu ? 1024 : 1000;
  const suffixes = gnu ? "KMGTPEZY".split("") : binary ? [" KiB", " MiB", " GiB", " TiB", " PiB", " EiB", " ZiB", " YiB"] : [" kB", " MB", " GB", " TB", " PB", " EB", " ZB", " YB"];
  const abs = Math.abs(bytes);
  if (abs === 1 && !gnu) return bytes + " Byte";
  if (abs < base) return gnu ? bytes + "B" : Math.trunc(bytes) + " Bytes";
  let exp = 1;
  while (exp < suffixes.length && abs >= base ** (exp + 1)) exp++;
  return (bytes / base ** exp).toFixed(1) + suffixes[exp - 1];
}
function intcomma(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return value;
  const [whole, fraction] = String(n).split(".");
  return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction ? "." + fraction : "");
}
function ordinal(value) {
  const n = Math.trunc(Number(value));
  if (!Number.isFinite(n)) return value;
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : ["th", "st", "nd", "rd", "th", "th", "th", "th", "th", "th"][n % 10];
  return n + suffix;
}
function apnumber(value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 9) return String(value);
  return ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][n];
}
function intword(value) {
  const n = Number(value);
  if (!Number.isFinite(n) || Math.abs(n) < 1e6) return String(value);
  const names = [[1e33, "decillion"], [1e30, "nonillion"], [1e27, "octillion"], [1e24, "septillion"], [1e21, "sextillion"], [1e18, "quintillion"], [1e15, "quadrillion"], [1e12, "trillion"], [1e9, "billion"], [1e6, "million"]];
  for (const [size, name] of names) if (Math.abs(n) >= size) return (n / size).toFixed(1) + " " + name;
  return String(value);
}

function range(...args) {
  const [start, stop, step] = args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args.length > 2 ? args[2] : 1];
  if (![start, stop, step].every(Number.isInteger) || step === 0) return fail("range() arguments must be integers and the step must not be zero");
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (length > maxRange) return fail("Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE=" + maxRange + ".");
  return Array.from({ length }, (_, i) => start + i * step);
}

const env = new minijinja.Environment();
env.debug = false;
env.undefinedBehavior = "chainable";
env.enablePyCompat();
env.fuel = fuel;
env.addGlobal("range", safely(range));
env.addFilter("tojson", safely((value, indent) => htmlSafe(pyJson(value, typeof indent === "number" ? indent : null, 0))));
env.addFilter("ui_url", safely(uiUrl));
env.addFilter("ui_resource_events_url", safely(uiResourceEventsUrl));
env.addFilter("flow_run_id", safely((text) => {
  const m = typeof text === "string" ? /flow-run\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(text) : null;
  return m ? m[1] : null;
}));
env.addFilter("humanize_naturaldelta", safely(naturaldelta));
env.addFilter("humanize_naturaltime", safely(naturaltime));
env.addFilter("humanize_precisedelta", safely(precisedelta));
env.addFilter("humanize_naturalday", safely((v) => naturalday(v, false)));
env.addFilter("humanize_naturaldate", safely((v) => naturalday(v, true)));
env.addFilter("humanize_naturalsize", safely((v, binary, gnu) => naturalsize(v, binary === true, gnu === true)));
env.addFilter("humanize_intcomma", safely(intcomma));
env.addFilter("humanize_ordinal", safely(ordinal));
env.addFilter("humanize_apnumber", safely(apnumber));
env.addFilter("humanize_intword", safely(intword));

// "syntax error: unexpected ... (in t:3)" -> its message and line.
function problem(error) {
  const text = String(error && error.message || error).split("\n")[0];
  const at = / \(in [^)]*:(\d+)\)$/.exec(text);
  return { message: at ? text.slice(0, at.index) : text, line: at ? Number(at[1]) : 0 };
}
const fatal = (error) => error instanceof WebAssembly.RuntimeError || /unreachable|recursive use of an object/.test(String(error && error.message));

parentPort.on("message", (job) => {
  // The time limit counts from here: starting the thread and loading the engine are not the template's.
  parentPort.postMessage({ id: job.id, started: true });
  try {
    if (job.op === "check") {
      env.addTemplate("template", job.source);
      env.removeTemplate("template");
      parentPort.postMessage({ id: job.id, ok: true, output: "" });
      return;
    }
    current = { kinds: job.kinds || {}, uiUrl: job.uiUrl || null, failure: null };
    const output = env.renderStr(job.source, job.context || {});
    if (current.failure) throw new Error(current.failure);
    if (output.length > maxOutputChars) throw new Error("The template rendered more than " + maxOutputChars + " characters.");
    parentPort.postMessage({ id: job.id, ok: true, output });
  } catch (error) {
    const broken = fatal(error);
    const found = broken ? { message: "The template needed more memory than the sandbox allows.", line: 0 } : problem(error);
    if (/out of fuel/.test(found.message)) found.message = "The template ran too long: it took more steps than the sandbox allows.";
    parentPort.postMessage({ id: job.id, ok: false, error: { ...found, fatal: broken } });
    if (broken) process.exit(1);
  }
});
`;
