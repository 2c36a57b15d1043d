/**
 * What the flow-run and task-run routes share: Prefect's related-object filters turned into run
 * criteria, run histories, policies filled in as Prefect's models fill them, Prefect's 404 for
 * objects its models report missing, and the request headers orchestration reads.
 */
import { InvalidError, type Repositories, type RunCriteria, type State, type Timestamp } from "@prefect/db";
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AppContext } from "../app.js";
import type * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import { stateResponse } from "./responses.js";

type WorkPoolFilter = z.output<typeof api.WorkPoolFilter>;
type WorkQueueFilter = z.output<typeof api.WorkQueueFilter>;
type DeploymentFilter = z.output<typeof api.DeploymentFilter>;

/** A read body's filters on the objects around runs (Prefect's `_apply_flow_run_filters`). */
export interface RelatedFilters {
  readonly flows?: z.output<typeof api.FlowFilter> | null | undefined;
  readonly flow_runs?: z.output<typeof api.FlowRunFilter> | null | undefined;
  readonly task_runs?: z.output<typeof api.TaskRunFilter> | null | undefined;
  readonly deployments?: DeploymentFilter | null | undefined;
  readonly work_pools?: WorkPoolFilter | null | undefined;
  /** `work_pool_queues` on reads, `work_queues` on the history. */
  readonly work_queues?: WorkQueueFilter | null | undefined;
}

/**
 * Run criteria for the repositories from a read body. Work pool and work queue filters become the
 * ids of the queues they select (a run matches when its queue is one of them), deployment filters
 * the ids of the deployments they select (a run matches when its deployment is one of them).
 */
export async function runCriteriaOf(db: Repositories, body: RelatedFilters): Promise<RunCriteria> {
  return {
    flows: body.flows ?? null,
    flow_runs: body.flow_runs ?? null,
    task_runs: body.task_runs ?? null,
    ...(body.work_pools || body.work_queues ? { work_queue_ids: await workQueueIds(db, body.work_pools ?? null, body.work_queues ?? null) } : {}),
    ...(body.deployments ? { deployment_ids: await deploymentIds(db, body.deployments) } : {}),
  };
}

async function workQueueIds(db: Repositories, pools: WorkPoolFilter | null, queues: WorkQueueFilter | null): Promise<string[]> {
  const matching = await db.workPools.read(pools ? { work_pools: pools } : {});
  const ids: string[] = [];
  for (const pool of matching) {
    for (const queue of await db.workPools.readQueues(pool.id, queues ? { work_queues: queues } : {})) ids.push(queue.id);
  }
  return ids;
}

async function deploymentIds(db: Repositories, filter: DeploymentFilter): Promise<string[]> {
  return (await db.deployments.read({ deployments: filter })).map((d) => d.id);
}

/** Prefect's run history bodies: the window, the interval, and the filters. */
export interface HistoryBody extends RelatedFilters {
  readonly history_start: Timestamp;
  readonly history_end: Timestamp;
  readonly history_interval_seconds: number;
}

/** Prefect's `/history` answer: every interval, with its runs counted per state. */
export async function runHistory(db: Repositories, kind: "flowRuns" | "taskRuns", body: HistoryBody) {
  if (!(body.history_interval_seconds >= 1)) {
    const message = "History interval must not be less than 1 second.";
    throw new InvalidError(message, [{ path: ["history_interval_seconds"], message }]);
  }
  const criteria = await runCriteriaOf(db, body);
  const intervals = await db[kind].history(criteria, { start: body.history_start, end: body.history_end, intervalSeconds: body.history_interval_seconds });
  return intervals.map((interval) => ({
    interval_start: interval.interval_start,
    interval_end: interval.interval_end,
    // Runs without a state yet have no place in Prefect's answer (its state type is required).
    states: interval.states.filter((s) => s.state_type !== null && s.state_name !== null),
  }));
}

const FLOW_RUN_POLICY_FIELDS = ["max_retries", "retry_delay_seconds", "retries", "retry_delay", "pause_keys", "resuming", "retry_type"] as const;
const TASK_RUN_POLICY_FIELDS = ["max_retries", "retry_delay_seconds", "retries", "retry_delay", "retry_jitter_factor"] as const;

/** Prefect fills the deprecated `max_retries` / `retry_delay_seconds` into `retries` / `retry_delay`. */
function withDeprecatedFields(values: Record<string, unknown>): Record<string, unknown> {
  const out = { ...values };
  if (!out.retries && (out.max_retries ?? 0) !== 0) out.retries = out.max_retries;
  if (!out.retry_delay && (out.retry_delay_seconds ?? 0) !== 0) out.retry_delay = out.retry_delay_seconds;
  return out;
}

function pick(values: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) if (values[field] !== undefined) out[field] = values[field];
  return out;
}

/** A FlowRunPolicy as Prefect stores it: every field, defaults filled in, unknown keys dropped. */
export function flowRunPolicy(input: Record<string, unknown> | undefined): Record<string, unknown> {
  const given = withDeprecatedFields(pick(input ?? {}, FLOW_RUN_POLICY_FIELDS));
  const pauseKeys = Array.isArray(given.pause_keys) ? [...new Set(given.pause_keys)] : given.pause_keys;
  return {
    max_retries: 0,
    retry_delay_seconds: 0,
    retries: null,
    retry_delay: null,
    pause_keys: [],
    resuming: false,
    retry_type: null,
    ...given,
    ...(pauseKeys === undefined ? {} : { pause_keys: pauseKeys }),
  };
}

/** A TaskRunPolicy as Prefect stores it, with its validations (422 on a bad one). */
export function taskRunPolicy(input: Record<string, unknown> | undefined): Record<string, unknown> {
  const given = withDeprecatedFields(pick(input ?? {}, TASK_RUN_POLICY_FIELDS));
  if (Array.isArray(given.retry_delay) && given.retry_delay.length > 50) {
    throw new InvalidError("Can not configure more than 50 retry delays per task.", [
      { path: ["empirical_policy", "retry_delay"], message: "Value error, Can not configure more than 50 retry delays per task." },
    ]);
  }
  if (typeof given.retry_jitter_factor === "number" && given.retry_jitter_factor < 0) {
    throw new InvalidError("`retry_jitter_factor` must be >= 0.", [
      { path: ["empirical_policy", "retry_jitter_factor"], message: "Value error, `retry_jitter_factor` must be >= 0." },
    ]);
  }
  return { max_retries: 0, retry_delay_seconds: 0, retries: null, retry_delay: null, retry_jitter_factor: null, ...given };
}

/** PREFECT_SERVER_API_MAX_PARAMETER_SIZE's default: the largest serialized parameters Prefect accepts. */
export const MAX_PARAMETER_SIZE_BYTES = 512 * 1024;

/** Prefect's SizedParameters: 422 when the parameters, serialized as Python's json.dumps does, are too large. */
export function checkParameterSize(parameters: Record<string, unknown> | undefined): void {
  if (!parameters || Object.keys(parameters).length === 0) return;
  // json.dumps escapes every non-ASCII character as \uXXXX (6 bytes per UTF-16 unit).
  const size = JSON.stringify(parameters).replace(/[\u0080-\uffff]/g, "uXXXXX").length;
  if (size > MAX_PARAMETER_SIZE_BYTES) {
    const message = `Flow run parameters must be less than ${MAX_PARAMETER_SIZE_BYTES.toLocaleString("en-US")} bytes when serialized (got ${size.toLocaleString("en-US")} bytes).`;
    throw new InvalidError(message, [{ path: ["parameters"], message: `Value error, ${message}` }]);
  }
}

/** PREFECT_API_TASK_CACHE_KEY_MAX_LENGTH's default. */
export const MAX_CACHE_KEY_LENGTH = 2000;

/** A run name as Prefect's `get_or_create_run_name` leaves it: absent, null or empty means a generated one. */
export const runName = (name: string | null | undefined): string | undefined => (name ? name : undefined);

/**
 * Prefect's ObjectNotFoundError: a 404 whose body carries the message as `exception_message` (what
 * Prefect's handler sends) and as `detail` (what its API document declares for errors).
 */
export function objectNotFound(reply: FastifyReply, message: string) {
  return reply.code(404).send({ exception_message: message, detail: message });
}

/** Prefect's answer to a broken unique or foreign key (its IntegrityError handler). */
export const INTEGRITY_CONFLICT = new HttpError(
  409,
  "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.",
);

/** Whether a data-layer error is a reference to a missing row (a foreign key). */
export const isMissingReference = (error: unknown): boolean => error instanceof InvalidError && /refers to a row that does not exist/.test(error.message);

/** The headers orchestration reads: the API version and Prefect's automation provenance. */
export const OrchestrationHeaders = z.looseObject({
  "x-prefect-api-version": z.string().optional(),
  "prefect-automation-id": z
    .string()
    .regex(/^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/, { message: "Input should be a valid UUID" })
    .optional(),
  "prefect-automation-name": z.string().optional(),
  "user-agent": z.string().optional(),
});

/** `X-PREFECT-API-VERSION` as Prefect checks it (400 for a malformed one); null when absent. */
export function apiVersionOf(request: FastifyRequest): string | null {
  const header = request.headers["x-prefect-api-version"];
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return null;
  const parts = value.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^\s*[+-]?\d+\s*$/.test(p))) {
    throw new HttpError(400, `Invalid X-PREFECT-API-VERSION header format.Expected header in format 'x.y.z' but received ${value}`);
  }
  return parts.map((p) => String(Number(p))).join(".");
}

const CLIENT_USER_AGENT = /^prefect\/(\d+\.\d+\.\d+(?:[a-z.+0-9]+)?) \(API \S+\)$/;

/** The Prefect client version from its User-Agent (`prefect/3.4.11 (API 0.8.4)`), or null. */
export function clientVersionOf(request: FastifyRequest): string | null {
  const agent = request.headers["user-agent"];
  const match = typeof agent === "string" ? CLIENT_USER_AGENT.exec(agent) : null;
  return match?.[1] ?? null;
}

/** Prefect's `created_by` for objects an automation creates (its id and base64 name headers), else null. */
export function createdByOf(request: FastifyRequest): { id: string; type: "AUTOMATION"; display_value: string } | null {
  const id = request.headers["prefect-automation-id"];
  const name = request.headers["prefect-automation-name"];
  if (typeof id !== "string" || typeof name !== "string" || !id || !name) return null;
  let display: string;
  try {
    display = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(name, "base64"));
  } catch {
    return null;
  }
  if (!display) return null;
  const hex = id.replace(/-/g, "").toLowerCase();
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { id: uuid, type: "AUTOMATION", display_value: display };
}

/** Publishes events orchestration produced once their transition has committed, stamped as received now. */
export function publishEvents(context: AppContext, events: readonly OrchestrationEventLike[], at: Timestamp): void {
  if (events.length === 0) return;
  context.events.publish(events.map((event) => ({ ...event, received: at })));
}

/** The state an orchestration call returns, as its response body shows it. */
interface OrchestratedState {
  id: string;
  type: State["type"];
  name: string;
  timestamp: Timestamp;
  message: string | null;
  data: unknown;
  state_details: object;
}

/** Prefect's OrchestrationResult body: the resulting state, the status and the details. */
export function orchestrationResponse<Status extends string, Details extends { type: string }>(result: {
  readonly state: OrchestratedState | null;
  readonly status: Status;
  readonly details: Details;
}) {
  const state = result.state
    ? stateResponse({ ...result.state, state_details: { ...result.state.state_details } as Record<string, unknown>, result_artifact_id: null })
    : null;
  return { state, status: result.status, details: result.details };
}

/** The shape of the events orchestration returns (Prefect's server-side state-change events). */
export interface OrchestrationEventLike {
  id: string;
  occurred: Timestamp;
  event: string;
  resource: Record<string, string>;
  related: Record<string, string>[];
  payload: Record<string, unknown>;
  follows: string | null;
}

/** A value `hydrate` could not resolve (Prefect's HydrationError); its message is Prefect's. */
export class HydrationError extends Error {}

/** A workspace variable's value by name; `undefined` when there is no such variable. */
export type VariableLookup = (name: string) => Promise<unknown>;

/**
 * Prefect's run-input hydration (`schema_tools.hydrate` with errors raised, workspace variables and
 * templates rendered): `{"__prefect_kind": ...}` objects the UI sends become their values. Templates
 * are taken as they are when they hold no Jinja syntax; rendering Jinja is not supported here.
 */
export async function hydrate(value: Record<string, unknown>, variable: VariableLookup): Promise<Record<string, unknown>> {
  const result = await hydrateValue(value, variable);
  return result === REMOVE || !isRecord(result) ? {} : result;
}

const REMOVE = Symbol("remove");
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

async function hydrateValue(value: unknown, variable: VariableLookup): Promise<unknown> {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      const hydrated = await hydrateValue(v, variable);
      if (hydrated !== REMOVE) out.push(hydrated);
    }
    return out;
  }
  if (!isRecord(value)) return value;
  if (!("__prefect_kind" in value)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const hydrated = await hydrateValue(v, variable);
      if (hydrated !== REMOVE) out[key] = hydrated;
    }
    return out;
  }
  const nested = async (v: unknown) => (isRecord(v) ? hydrateValue(v, variable) : v);
  switch (value.__prefect_kind) {
    case "none":
      if (!("value" in value)) throw new HydrationError("Missing 'value' key in __prefect object");
      return hydrateValue(value.value, variable);
    case "json": {
      if (!("value" in value)) return REMOVE;
      const text = await nested(value.value);
      if (typeof text !== "string") return text;
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new HydrationError(`Invalid JSON: ${(error as Error).message}`);
      }
    }
    case "jinja": {
      if (!("template" in value)) throw new HydrationError("Missing 'template' key in __prefect object");
      const template = await nested(value.template);
      if (typeof template !== "string") throw new HydrationError("Invalid jinja: the template is not text");
      if (/\{\{|\{%|\{#/.test(template)) throw new HydrationError("Invalid jinja: rendering templates is not supported by this server");
      return template;
    }
    case "workspace_variable": {
      if (!("variable_name" in value)) return REMOVE;
      const name = await nested(value.variable_name);
      const found = typeof name === "string" ? await variable(name) : undefined;
      if (found === undefined) throw new HydrationError(`Variable '${String(name)}' not found in workspace.`);
      return found;
    }
    default:
      return value.value ?? null;
  }
}
