/**
 * User templates as Prefect's server treats them (`server/utilities/user_templates.py`): checked when
 * saved (Jinja syntax, then at most 10 `for` loops nested at most 2 deep, with Prefect's messages) and
 * rendered in a sandbox with the context the caller builds.
 *
 * The engine is MiniJinja (`minijinja-js`, WebAssembly): templates see only the JSON values they are
 * given, never JavaScript objects, prototypes or globals. Undefined names chain silently (Prefect's
 * ChainableUndefined), `range` is limited to 100 items, there is no loader (`extends`, `include` and
 * `import` fail). Rendering runs in one worker thread with three limits: MiniJinja's fuel (a number of
 * steps), a cap on the engine's memory, and a wall-clock timeout after which the thread is terminated
 * and replaced. Each failure is a TemplateRenderError; the server's own thread is never at risk.
 *
 * Why MiniJinja: among the Jinja engines for JavaScript on npm it is the closest to Jinja (written by
 * Jinja's author; syntax errors carry their line, `tojson` is HTML-safe, Python's methods with
 * `enablePyCompat`, chainable undefined, no loader) and the only one with built-in limits (fuel,
 * range size). Templates see copies of plain JSON in WebAssembly, so no JavaScript object is
 * reachable. nunjucks runs templates as JavaScript with access to prototypes (its documentation warns
 * against untrusted templates) and has had no release since 2023; @huggingface/jinja is sandboxed and
 * maintained but covers less of Jinja (no `raw`, no string repetition, no line numbers in errors,
 * `none` printed as nothing) and has no limits. Differences from Python's Jinja that remain: `none`,
 * `true` and `false` print in lower case, and lists and dicts print as JSON rather than Python reprs.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { loopLimitProblem, maybeTemplate, namesLoaded } from "./template-syntax.js";
import { TEMPLATE_WORKER_SOURCE } from "./template-worker.js";

export { MAX_LOOP_COUNT, MAX_NESTED_LOOP_DEPTH, maybeTemplate, namesLoaded } from "./template-syntax.js";

/** Prefect's MAX_TEMPLATE_RANGE. */
export const MAX_TEMPLATE_RANGE = 100;

export interface TemplateLimits {
  /** MiniJinja fuel: roughly the number of instructions one render may run. */
  readonly fuel: number;
  /** The most memory the engine may use, in MiB. */
  readonly memoryMiB: number;
  /** The longest one check or render may take, in milliseconds. */
  readonly timeoutMs: number;
  /** The longest output a render may produce, in characters. */
  readonly maxOutputChars: number;
}

export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = { fuel: 5_000_000, memoryMiB: 128, timeoutMs: 5_000, maxOutputChars: 5_000_000 };

/** Why a template cannot be saved (Prefect's TemplateSyntaxError / TemplateSecurityError): line 0 for the loop limits. */
export interface TemplateProblem {
  readonly line: number;
  readonly message: string;
}

/** A template that failed to render (Prefect's TemplateRenderError). */
export class TemplateRenderError extends Error {
  constructor(
    readonly template: string,
    readonly reason: string,
  ) {
    super(`Failed to render template due to the following error: ${reason}`);
  }
}

export interface RenderOptions {
  /** The base of the UI's links for the `ui_url` filters (Prefect's PREFECT_UI_URL); none: they give none. */
  readonly uiUrl?: string | null | undefined;
  /** The kind (`flow-run`, `deployment`, `automation`, `event`, ...) of each context object, by its `id`, for the `ui_url` filters. */
  readonly kinds?: Readonly<Record<string, string>> | undefined;
}

interface Job {
  readonly message: { id: number; op: "check" | "render"; source: string; context?: unknown; uiUrl?: string | null; kinds?: Record<string, string> };
  resolve(output: string): void;
  reject(problem: { message: string; line: number }): void;
}

type Reply =
  | { id: number; started: true }
  | { id: number; ok: true; output: string }
  | { id: number; ok: false; error: { message: string; line: number; fatal: boolean } };

/** One worker thread running MiniJinja, one job at a time; replaced when it is stopped or breaks. */
export class TemplateEngine {
  readonly #limits: TemplateLimits;
  readonly #queue: Job[] = [];
  #worker: Worker | undefined;
  #running: Job | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextId = 1;

  constructor(limits: Partial<TemplateLimits> = {}) {
    this.#limits = { ...DEFAULT_TEMPLATE_LIMITS, ...limits };
  }

  /** Parses the template: null when it is valid Jinja, else where and why not. */
  async syntaxProblem(source: string): Promise<TemplateProblem | null> {
    try {
      await this.#submit({ op: "check", source });
      return null;
    } catch (problem) {
      const { line, message } = problem as TemplateProblem;
      return { line, message };
    }
  }

  /** Renders the template with the context (JSON values); fails with a TemplateRenderError. */
  async render(source: string, context: Record<string, unknown>, options: RenderOptions = {}): Promise<string> {
    try {
      return await this.#submit({ op: "render", source, context, uiUrl: options.uiUrl ?? null, kinds: { ...options.kinds } });
    } catch (problem) {
      throw new TemplateRenderError(source, (problem as TemplateProblem).message);
    }
  }

  /** Stops the worker thread (a later call starts another). */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) await worker.terminate();
  }

  #submit(message: Omit<Job["message"], "id">): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ message: { ...message, id: this.#nextId++ }, resolve, reject });
      this.#next();
    });
  }

  #next(): void {
    if (this.#running) return;
    const job = this.#queue.shift();
    if (!job) return;
    this.#running = job;
    this.#ensureWorker().postMessage(job.message);
  }

  /** The worker began `job`: it has `timeoutMs` to finish, else the thread is stopped and replaced. */
  #startClock(job: Job, worker: Worker): void {
    this.#timer = setTimeout(() => {
      this.#finish(job, { message: `The template took longer than ${this.#limits.timeoutMs / 1000} seconds to render.`, line: 0 });
      this.#discard(worker);
    }, this.#limits.timeoutMs);
  }

  #finish(job: Job, problem: { message: string; line: number } | null, output = ""): void {
    if (this.#running !== job) return;
    clearTimeout(this.#timer);
    this.#running = undefined;
    if (problem) job.reject(problem);
    else job.resolve(output);
    this.#next();
  }

  #discard(worker: Worker): void {
    if (this.#worker === worker) this.#worker = undefined;
    void worker.terminate();
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(TEMPLATE_WORKER_SOURCE, {
      eval: true,
      workerData: {
        engine: createRequire(import.meta.url).resolve("minijinja-js"),
        memoryPages: Math.ceil((this.#limits.memoryMiB * 1024 * 1024) / 65536),
        fuel: this.#limits.fuel,
        maxOutputChars: this.#limits.maxOutputChars,
        maxRange: MAX_TEMPLATE_RANGE,
      },
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32 },
    });
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const job = this.#running;
      if (!job || job.message.id !== reply.id) return;
      if ("started" in reply) this.#startClock(job, worker);
      else if (reply.ok) this.#finish(job, null, reply.output);
      else {
        if (reply.error.fatal) this.#discard(worker);
        this.#finish(job, reply.error);
      }
    });
    const broken = (why: string) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const job = this.#running;
      if (job) this.#finish(job, { message: `The template engine stopped: ${why}`, line: 0 });
    };
    worker.on("error", (error) => broken(error.message));
    worker.on("exit", (code) => broken(`exit code ${code}`));
    this.#worker = worker;
    return worker;
  }
}

let shared: TemplateEngine | undefined;

/** The process's template engine (one worker thread, started on first use). */
export function templateEngine(): TemplateEngine {
  shared ??= new TemplateEngine();
  return shared;
}

/**
 * Prefect's `validate_user_template`: the Jinja syntax first (the line and message of the error),
 * then the loop limits (line 0). Null for a template that can be saved.
 */
export async function templateProblem(source: string, engine: TemplateEngine = templateEngine()): Promise<TemplateProblem | null> {
  const syntax = await engine.syntaxProblem(source);
  if (syntax) return syntax;
  const loops = loopLimitProblem(source);
  return loops ? { line: 0, message: loops } : null;
}

/** Prefect's `render_user_template`: text without `{{` or `{%` is returned as it is. */
export async function renderTemplate(
  source: string,
  context: Record<string, unknown>,
  options: RenderOptions = {},
  engine: TemplateEngine = templateEngine(),
): Promise<string> {
  if (!maybeTemplate(source)) return source;
  return engine.render(source, context, options);
}

/** The objects Prefect fetches for a template's context when the template names them. */
export const LAZY_CONTEXT_NAMES: ReadonlySet<string> = new Set(["deployment", "flow", "flow_run", "task_run", "work_pool", "work_queue", "concurrency_limit", "variables"]);

/** Which lazily fetched objects (LAZY_CONTEXT_NAMES) the templates name. */
export const lazyNamesIn = (templates: readonly string[]): string[] => namesLoaded(templates, LAZY_CONTEXT_NAMES);
