/**
 * What a bench run measures and for how long, from the command line and the environment. A bad value
 * stops the run naming the variable, before anything is started.
 */

/** The figures of the end-to-end table, in the order they are printed. */
export const FIGURES = ["create", "chain", "get", "logs", "events-http", "events-ws", "claim", "worker", "memory", "round-trips", "delivery"] as const;
export type FigureKey = (typeof FIGURES)[number];

/** The figures a CPU profile can be taken of: those that load the server over HTTP. */
export const PROFILABLE = ["create", "chain", "get", "logs", "events-http", "events-ws"] as const satisfies readonly FigureKey[];
export type ProfilableKey = (typeof PROFILABLE)[number];

export type BackendName = "sqlite" | "postgres";
export type Part = "e2e" | "db";

export interface BenchSettings {
  /** Which parts run, in this order. */
  readonly parts: readonly Part[];
  /** Seconds per measurement. */
  readonly seconds: number;
  /** A short run that only proves everything works (one second per measurement). */
  readonly smoke: boolean;
  readonly backends: readonly BackendName[];
  readonly figures: ReadonlySet<FigureKey>;
  /** Concurrent HTTP connections (and websocket connections) of the load. */
  readonly connections: number;
  /** The PostgreSQL server the scratch databases are created on. */
  readonly postgresUrl: string;
  /** Profile the server under this figure's load (`node --cpu-prof`). */
  readonly profile: ProfilableKey | null;
  /** Print the table as Markdown. */
  readonly markdown: boolean;
}

export const DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres";
const DEFAULT_SECONDS = 5;

export const USAGE = `Usage: pnpm bench [e2e|db] [--smoke] [--profile[=FIGURE]] [--markdown]

  e2e          only the end-to-end table (the real server, the worker and their floors)
  db           only @prefect/db beside the raw driver
  (neither)    both, end-to-end first
  --smoke      one second per measurement: proves the benchmarks work, the numbers mean little
  --profile    also take a CPU profile of the server under one figure's load (default: create)
               and print its top functions by self time; the profile is kept in the temp dir
  --markdown   print the end-to-end table as Markdown

Environment:
  PREFECT_BENCH_SECONDS        seconds per measurement (default ${DEFAULT_SECONDS} end-to-end; 1 in smoke runs)
  PREFECT_BENCH_BACKENDS       sqlite,postgres (default both)
  PREFECT_BENCH_FIGURES        which end-to-end figures (default all): ${FIGURES.join(",")}
  PREFECT_BENCH_CONNECTIONS    concurrent connections of the HTTP and websocket load (default 10)
  PREFECT_BENCH_POSTGRES_URL   PostgreSQL server for scratch databases (default ${DEFAULT_POSTGRES_URL})
  PREFECT_BENCH_PROFILE        as --profile=FIGURE: ${PROFILABLE.join(", ")}
`;

export class UsageError extends Error {}

function list<T extends string>(raw: string | undefined, allowed: readonly T[], variable: string): T[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const values = raw.split(",").map((v) => v.trim()).filter((v) => v.length > 0);
  for (const value of values) {
    if (!(allowed as readonly string[]).includes(value)) {
      throw new UsageError(`${variable}: unknown value ${JSON.stringify(value)} (one or more of ${allowed.join(", ")})`);
    }
  }
  return [...new Set(values)] as T[];
}

function profilable(value: string, source: string): ProfilableKey {
  if (!(PROFILABLE as readonly string[]).includes(value)) {
    throw new UsageError(`${source}: cannot profile ${JSON.stringify(value)} (one of ${PROFILABLE.join(", ")})`);
  }
  return value as ProfilableKey;
}

export function parseSettings(argv: readonly string[], env: NodeJS.ProcessEnv): BenchSettings {
  let parts: Part[] = [];
  let smoke = false;
  let markdown = false;
  let profile: ProfilableKey | null = env.PREFECT_BENCH_PROFILE ? profilable(env.PREFECT_BENCH_PROFILE.trim(), "PREFECT_BENCH_PROFILE") : null;
  for (const arg of argv) {
    if (arg === "e2e" || arg === "db") parts.push(arg);
    else if (arg === "--smoke") smoke = true;
    else if (arg === "--markdown") markdown = true;
    else if (arg === "--profile") profile = "create";
    else if (arg.startsWith("--profile=")) profile = profilable(arg.slice("--profile=".length), "--profile");
    else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
  }
  if (parts.length === 0) parts = ["e2e", "db"];

  let seconds = smoke ? 1 : DEFAULT_SECONDS;
  const rawSeconds = env.PREFECT_BENCH_SECONDS?.trim();
  if (rawSeconds) {
    seconds = Number(rawSeconds);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`PREFECT_BENCH_SECONDS must be a number of seconds greater than 0 (got ${JSON.stringify(rawSeconds)})`);
  }
  const rawConnections = env.PREFECT_BENCH_CONNECTIONS?.trim();
  const connections = rawConnections ? Number(rawConnections) : 10;
  if (!Number.isInteger(connections) || connections < 1) {
    throw new UsageError(`PREFECT_BENCH_CONNECTIONS must be a whole number of 1 or more (got ${JSON.stringify(rawConnections)})`);
  }
  const postgresUrl = env.PREFECT_BENCH_POSTGRES_URL?.trim() || DEFAULT_POSTGRES_URL;
  try {
    new URL(postgresUrl);
  } catch {
    throw new UsageError("PREFECT_BENCH_POSTGRES_URL must be a URL such as postgresql://user:password@host:5432/database");
  }
  return {
    parts: [...new Set(parts)].sort((a, b) => (a === "e2e" ? -1 : b === "e2e" ? 1 : 0)),
    seconds,
    smoke: smoke || seconds <= 1,
    backends: list(env.PREFECT_BENCH_BACKENDS, ["sqlite", "postgres"] as const, "PREFECT_BENCH_BACKENDS") ?? ["sqlite", "postgres"],
    figures: new Set(list(env.PREFECT_BENCH_FIGURES, FIGURES, "PREFECT_BENCH_FIGURES") ?? FIGURES),
    connections,
    postgresUrl,
    profile,
    markdown,
  };
}
