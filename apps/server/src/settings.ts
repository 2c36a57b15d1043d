/**
 * Server settings, from Prefect's own setting names (the database ones live in @prefect/db). Read once
 * at start-up and validated: a bad value stops the server naming the variable.
 */
import { z } from "zod";

export const PREFECT_VERSION = "3.8.3";
export const API_VERSION = "0.8.4";

type Env = Readonly<Record<string, string | undefined>>;

function read(env: Env, ...names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return { name, value };
  }
  return undefined;
}

export class SettingsError extends Error {}

function parse<T>(schema: z.ZodType<T>, found: { name: string; value: string } | undefined, fallback: T): T {
  if (!found) return fallback;
  const result = schema.safeParse(found.value);
  if (!result.success) {
    throw new SettingsError(`Invalid setting: ${found.name} ${result.error.issues[0]?.message ?? "is not valid"} (got ${JSON.stringify(found.value)})`);
  }
  return result.data;
}

const boolean = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(["true", "false", "1", "0", "yes", "no", "on", "off"], { message: "must be true or false" }))
  .transform((v) => ["true", "1", "yes", "on"].includes(v));
const port = z.coerce.number({ message: "must be a port number" }).int({ message: "must be a port number" }).min(0).max(65535, { message: "must be a port number" });
const seconds = z.coerce.number({ message: "must be a number of seconds" }).positive({ message: "must be a number of seconds greater than 0" });
const waitSeconds = z.coerce.number({ message: "must be a number of seconds" }).min(0, { message: "must be a number of seconds, 0 or more" });
/** A duration as pydantic reads a timedelta: seconds, ISO 8601 (`PT1H`, `P1DT2H30M`) or `[D day(s), ]HH:MM[:SS]`. */
const duration = z.string().transform((value, ctx) => {
  const v = value.trim();
  const iso = /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(v);
  const clock = /^(?:(\d+)\s*d(?:ays?)?,?\s*)?(\d+):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?$/i.exec(v);
  let total = Number.NaN;
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(v)) total = Number(v);
  else if (iso && v.length > 1 && !/T$/i.test(v)) {
    const [w, d, h, m, s] = iso.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number, number];
    total = (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s;
  } else if (clock) {
    const [d, h, m, s] = clock.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
    total = ((d * 24 + h) * 60 + m) * 60 + s;
  }
  if (!(total > 0)) {
    ctx.addIssue({ code: "custom", message: "must be a duration greater than 0 (seconds, or ISO 8601 such as PT1H)" });
    return z.NEVER;
  }
  return total;
});
/** A URL path: leading slash added, trailing slashes dropped (`/` stays). */
const serveBase = z
  .string()
  .refine((v) => !/[?#\s]/.test(v), { message: "must be a URL path such as /prefect" })
  .transform((v) => `/${v.replace(/^\/+|\/+$/g, "")}`);
const level = z
  .string()
  .transform((v) => v.toLowerCase())
  .pipe(z.enum(["trace", "debug", "info", "warning", "warn", "error", "critical", "fatal", "silent"], { message: "must be a log level" }))
  .transform((v): ServerSettings["logLevel"] => (v === "warning" ? "warn" : v === "critical" ? "fatal" : v));

export interface ServiceSettings {
  readonly enabled: boolean;
  readonly loopSeconds: number;
}

export interface ServerSettings {
  readonly host: string;
  readonly port: number;
  /** `user:password` for HTTP basic auth on every route but health checks. */
  readonly authString: string | undefined;
  readonly csrfProtection: boolean;
  /** How long an issued CSRF token stays valid, in seconds. */
  readonly csrfTokenExpirationSeconds: number;
  /** Prefect's `server.api.cors_allowed_*`: comma-separated lists, `*` (the default) allowing any. */
  readonly cors: { readonly allowedOrigins: string; readonly allowedMethods: string; readonly allowedHeaders: string };
  readonly logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** Fernet key for block data; when unset one is generated once and kept in the database. */
  readonly encryptionKey: string | undefined;
  /** Register Prefect's system block types at start-up. */
  readonly blocksRegisterOnStart: boolean;
  /** The longest a caller refused concurrency slots is told to wait: tag (v1) limits, other limits. */
  readonly concurrency: { readonly tagSlotWaitSeconds: number; readonly maximumSlotWaitSeconds: number };
  /** Prefect's `server.ui` settings. */
  readonly ui: UiSettings;
  readonly services: {
    readonly taskRunRecorder: ServiceSettings;
    readonly repossessor: ServiceSettings;
    readonly eventPersister: ServiceSettings & { readonly batchSize: number; readonly flushIntervalSeconds: number };
    readonly scheduler: SchedulerSettings;
    readonly lateRuns: ServiceSettings & { readonly afterSeconds: number };
    readonly foreman: ForemanSettings;
    readonly cancellationCleanup: ServiceSettings & { readonly cancellingTimeoutSeconds: number };
    /** Prefect's triggers service; `loopSeconds` is its proactive granularity (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY). */
    readonly triggers: ServiceSettings;
    /** Prefect's actions service; `loopSeconds` is how often it looks for queued actions. */
    readonly actions: ActionsSettings;
  };
}

/** Prefect's `server.ui` settings: whether and where the UI is served, and the API address it is given. */
export interface UiSettings {
  readonly enabled: boolean;
  /** The API address the UI calls; unset: PREFECT_API_URL, else this server's own address. */
  readonly apiUrl: string | undefined;
  /** The path the UI is served under: `/`, or e.g. `/prefect` (no trailing slash but for `/`). */
  readonly serveBase: string;
  /** The built UI to serve; unset: the one built in this checkout (apps/ui/dist). */
  readonly staticDirectory: string | undefined;
}

/** Prefect's `server.services.scheduler` settings. */
export interface SchedulerSettings extends ServiceSettings {
  readonly deploymentBatchSize: number;
  readonly maxRuns: number;
  readonly minRuns: number;
  readonly maxScheduledTimeSeconds: number;
  readonly minScheduledTimeSeconds: number;
  readonly insertBatchSize: number;
  readonly recentDeploymentsLoopSeconds: number;
}

/** The actions service's settings (`server.services.actions`). */
export interface ActionsSettings extends ServiceSettings {
  /**
   * How long a taken action is held by the process performing it: a process that dies holding it (killed,
   * machine gone) leaves it to the others once this has passed. Not one of Prefect's settings: Prefect's
   * actions consumer is handed its actions by its message broker.
   */
  readonly holdSeconds: number;
}

/** Prefect's `server.services.foreman` settings. */
export interface ForemanSettings extends ServiceSettings {
  readonly inactivityHeartbeatMultiple: number;
  readonly fallbackHeartbeatIntervalSeconds: number;
  readonly deploymentLastPolledTimeoutSeconds: number;
  readonly workQueueLastPolledTimeoutSeconds: number;
}

const wholeNumber = z.coerce.number({ message: "must be a whole number" }).int({ message: "must be a whole number" }).min(0, { message: "must be a whole number" });
const positiveWhole = wholeNumber.pipe(z.number().positive({ message: "must be a whole number greater than 0" }));
/** A `PREFECT_SERVER_SERVICES_<name>` setting (also read under its `PREFECT_API_SERVICES_` alias unless `serverOnly`). */
const serviceSetting = <T>(env: Env, name: string, schema: z.ZodType<T>, fallback: T, serverOnly = false): T =>
  parse(schema, read(env, `PREFECT_SERVER_SERVICES_${name}`, ...(serverOnly ? [] : [`PREFECT_API_SERVICES_${name}`])), fallback);

const service = (env: Env, name: string, defaultLoop: number): ServiceSettings => ({
  enabled: parse(boolean, read(env, `PREFECT_SERVER_SERVICES_${name}_ENABLED`, `PREFECT_API_SERVICES_${name}_ENABLED`), true),
  loopSeconds: parse(seconds, read(env, `PREFECT_SERVER_SERVICES_${name}_LOOP_SECONDS`, `PREFECT_API_SERVICES_${name}_LOOP_SECONDS`), defaultLoop),
});

export function loadServerSettings(env: Env = process.env): ServerSettings {
  return {
    host: read(env, "PREFECT_SERVER_API_HOST")?.value ?? "127.0.0.1",
    port: parse(port, read(env, "PREFECT_SERVER_API_PORT"), 4200),
    authString: read(env, "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING")?.value,
    csrfProtection: parse(boolean, read(env, "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED"), false),
    csrfTokenExpirationSeconds: parse(duration, read(env, "PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION", "PREFECT_SERVER_CSRF_TOKEN_EXPIRATION"), 3600),
    cors: {
      allowedOrigins: read(env, "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS", "PREFECT_SERVER_CORS_ALLOWED_ORIGINS")?.value ?? "*",
      allowedMethods: read(env, "PREFECT_SERVER_API_CORS_ALLOWED_METHODS", "PREFECT_SERVER_CORS_ALLOWED_METHODS")?.value ?? "*",
      allowedHeaders: read(env, "PREFECT_SERVER_API_CORS_ALLOWED_HEADERS", "PREFECT_SERVER_CORS_ALLOWED_HEADERS")?.value ?? "*",
    },
    logLevel: parse(level, read(env, "PREFECT_SERVER_LOGGING_LEVEL", "PREFECT_LOGGING_SERVER_LEVEL"), "warn"),
    encryptionKey: read(env, "PREFECT_SERVER_ENCRYPTION_KEY")?.value,
    blocksRegisterOnStart: parse(boolean, read(env, "PREFECT_SERVER_BLOCKS_REGISTER_ON_START", "PREFECT_API_BLOCKS_REGISTER_ON_START"), true),
    concurrency: {
      tagSlotWaitSeconds: parse(waitSeconds, read(env, "PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS", "PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS"), 10),
      maximumSlotWaitSeconds: parse(waitSeconds, read(env, "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS"), 30),
    },
    ui: {
      enabled: parse(boolean, read(env, "PREFECT_SERVER_UI_ENABLED", "PREFECT_UI_ENABLED"), true),
      apiUrl: read(env, "PREFECT_SERVER_UI_API_URL", "PREFECT_UI_API_URL", "PREFECT_API_URL")?.value,
      serveBase: parse(serveBase, read(env, "PREFECT_SERVER_UI_SERVE_BASE", "PREFECT_UI_SERVE_BASE"), "/"),
      staticDirectory: read(env, "PREFECT_SERVER_UI_STATIC_DIRECTORY", "PREFECT_UI_STATIC_DIRECTORY")?.value,
    },
    services: {
      taskRunRecorder: service(env, "TASK_RUN_RECORDER", 1),
      repossessor: service(env, "REPOSSESSOR", 15),
      eventPersister: {
        ...service(env, "EVENT_PERSISTER", 1),
        batchSize: parse(
          z.coerce.number().int().positive({ message: "must be a whole number greater than 0" }),
          read(env, "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE"),
          20,
        ),
        flushIntervalSeconds: parse(seconds, read(env, "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL"), 5),
      },
      scheduler: {
        ...service(env, "SCHEDULER", 60),
        deploymentBatchSize: serviceSetting(env, "SCHEDULER_DEPLOYMENT_BATCH_SIZE", positiveWhole, 100),
        maxRuns: serviceSetting(env, "SCHEDULER_MAX_RUNS", wholeNumber, 100),
        minRuns: serviceSetting(env, "SCHEDULER_MIN_RUNS", wholeNumber, 3),
        maxScheduledTimeSeconds: serviceSetting(env, "SCHEDULER_MAX_SCHEDULED_TIME", duration, 100 * 86_400),
        minScheduledTimeSeconds: serviceSetting(env, "SCHEDULER_MIN_SCHEDULED_TIME", duration, 3600),
        insertBatchSize: serviceSetting(env, "SCHEDULER_INSERT_BATCH_SIZE", positiveWhole, 500),
        recentDeploymentsLoopSeconds: serviceSetting(env, "SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS", seconds, 5, true),
      },
      lateRuns: { ...service(env, "LATE_RUNS", 5), afterSeconds: serviceSetting(env, "LATE_RUNS_AFTER_SECONDS", duration, 15) },
      foreman: {
        ...service(env, "FOREMAN", 15),
        inactivityHeartbeatMultiple: serviceSetting(env, "FOREMAN_INACTIVITY_HEARTBEAT_MULTIPLE", positiveWhole, 3),
        fallbackHeartbeatIntervalSeconds: serviceSetting(env, "FOREMAN_FALLBACK_HEARTBEAT_INTERVAL_SECONDS", seconds, 30),
        deploymentLastPolledTimeoutSeconds: serviceSetting(env, "FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS", seconds, 60),
        workQueueLastPolledTimeoutSeconds: serviceSetting(env, "FOREMAN_WORK_QUEUE_LAST_POLLED_TIMEOUT_SECONDS", seconds, 60),
      },
      cancellationCleanup: {
        ...service(env, "CANCELLATION_CLEANUP", 20),
        cancellingTimeoutSeconds: serviceSetting(env, "CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS", seconds, 300, true),
      },
      triggers: {
        enabled: service(env, "TRIGGERS", 5).enabled,
        loopSeconds: parse(duration, read(env, "PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY", "PREFECT_EVENTS_PROACTIVE_GRANULARITY"), 5),
      },
      actions: { ...service(env, "ACTIONS", 1), holdSeconds: serviceSetting(env, "ACTIONS_HOLD_SECONDS", seconds, 60, true) },
    },
  };
}
