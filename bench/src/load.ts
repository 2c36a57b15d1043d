/**
 * HTTP load with autocannon (as a library): a fixed number of connections, each sending its next
 * request as soon as the last is answered, for a given time. Any answer outside 2xx, or a request
 * that failed, fails the measurement with what the server said: a benchmark of broken code must not
 * print a number.
 */
import autocannon from "autocannon";

export interface LoadRequest {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly body?: string;
  /**
   * Fills in this request from what the connection saw so far (e.g. the id a create returned): a
   * path (relative to the API) and a body that replace the fixed ones.
   */
  readonly setup?: (context: Record<string, unknown>) => { readonly path?: string; readonly body?: string };
  /** Sees every 2xx answer; returns an error message when the answer is not what was expected. */
  readonly check?: (body: string, context: Record<string, unknown>) => string | undefined;
}

export interface LoadResult {
  /** Answered requests (2xx) per second. */
  readonly perSecond: number;
  readonly answered: number;
  readonly seconds: number;
}

/** How often a load of a given amount looks whether it is done. */
const AMOUNT_SAMPLE_MS = 5;

/** For `seconds`, or until `amount` requests are answered (then none is left in flight at the end). */
export type LoadLength = { readonly connections: number } & ({ readonly seconds: number } | { readonly amount: number });

/**
 * Runs `requests` in order on each of `connections` connections (starting over at the end);
 * `api` is the base URL the paths are relative to.
 */
export async function drive(api: string, requests: readonly LoadRequest[], options: LoadLength): Promise<LoadResult> {
  const base = new URL(api);
  const prefix = base.pathname.replace(/\/$/, "");
  let failure: string | undefined;
  const fail = (message: string) => {
    failure ??= message;
  };
  const result = await autocannon({
    url: base.origin,
    connections: options.connections,
    // autocannon notices that the amount is answered only when it next samples its counters (every
    // second by default), which made a short load last up to a second longer than it did.
    ...("amount" in options ? { amount: options.amount, sampleInt: AMOUNT_SAMPLE_MS } : { duration: options.seconds }),
    timeout: 30,
    headers: { "content-type": "application/json" },
    initialContext: {},
    requests: requests.map((r) => ({
      method: r.method,
      path: prefix + r.path,
      ...(r.body === undefined ? {} : { body: r.body }),
      ...(r.setup
        ? {
            setupRequest: (request: autocannon.Request, context: object) => {
              const next = r.setup!(context as Record<string, unknown>);
              return {
                ...request,
                ...(next.path === undefined ? {} : { path: prefix + next.path }),
                ...(next.body === undefined ? {} : { body: next.body }),
              };
            },
          }
        : {}),
      onResponse: (status: number, body: string, context: object) => {
        if (status < 200 || status >= 300) fail(`${r.method} ${r.path} answered ${status}: ${body.slice(0, 500)}`);
        else if (r.check) {
          const problem = r.check(body, context as Record<string, unknown>);
          if (problem) fail(`${r.method} ${r.path}: ${problem}`);
        }
      },
    })),
  });
  if (failure) throw new Error(failure);
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${result.errors} request(s) failed (${result.timeouts} timed out), ${result.non2xx} answered outside 2xx`);
  }
  const answered = result["2xx"];
  if (answered === 0) throw new Error("no request was answered");
  return { perSecond: answered / result.duration, answered, seconds: result.duration };
}

/** A JSON request the bench makes outside the load (set-up, checks); fails on anything but 2xx. */
export async function call<T>(api: string, method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${api}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}
