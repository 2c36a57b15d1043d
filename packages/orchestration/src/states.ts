/**
 * States as orchestration sees them: Prefect's `State` (`schemas/states.py`) with every
 * `StateDetails` field present, the `StateCreate` input a client proposes, and the constructors the
 * rules use (Scheduled, AwaitingRetry, Cancelled, Failed, Paused...).
 */
import { defaultStateName, InvalidError, STATE_TYPES, type State, type StateType, TERMINAL_STATE_TYPES, type Timestamp, now, toTimestamp } from "@prefect/db";
import { cloneJson, isPlainObject, uuid7 } from "./util.js";

export type { StateType };

/** Prefect's StateDetails; stored and returned with every field present. */
export interface StateDetails {
  flow_run_id: string | null;
  task_run_id: string | null;
  /** For task runs that represent subflows: the subflow's run id. */
  child_flow_run_id: string | null;
  scheduled_time: Timestamp | null;
  cache_key: string | null;
  cache_expiration: Timestamp | null;
  deferred: boolean | null;
  untrackable_result: boolean;
  pause_timeout: Timestamp | null;
  pause_reschedule: boolean;
  pause_key: string | null;
  run_input_keyset: Record<string, string> | null;
  refresh_cache: boolean | null;
  retriable: boolean | null;
  transition_id: string | null;
  task_parameters_id: string | null;
  traceparent: string | null;
  deployment_concurrency_lease_id: string | null;
}

/** A state in orchestration: Prefect's server-side `State`. */
export interface OrchestrationState {
  id: string;
  type: StateType;
  name: string;
  timestamp: Timestamp;
  message: string | null;
  data: unknown;
  state_details: StateDetails;
}

/**
 * A proposed state: Prefect's `StateCreate` (`type`, `name`, `message`, `data`, `state_details`).
 * `id` and `timestamp` are for server-internal callers only (Prefect's API forbids them in the body);
 * both default to fresh values.
 */
export interface StateInput {
  readonly type: StateType | string;
  readonly name?: string | null | undefined;
  readonly message?: string | null | undefined;
  readonly data?: unknown;
  readonly state_details?: Readonly<Record<string, unknown>> | null | undefined;
  readonly id?: string | undefined;
  readonly timestamp?: string | undefined;
}

export const ALL_STATE_TYPES: readonly StateType[] = STATE_TYPES;
export const TERMINAL_STATES: ReadonlySet<StateType> = new Set(TERMINAL_STATE_TYPES);

export const isFinal = (state: { type: StateType } | null | undefined): boolean => !!state && TERMINAL_STATES.has(state.type);

export function emptyStateDetails(): StateDetails {
  return {
    flow_run_id: null,
    task_run_id: null,
    child_flow_run_id: null,
    scheduled_time: null,
    cache_key: null,
    cache_expiration: null,
    deferred: false,
    untrackable_result: false,
    pause_timeout: null,
    pause_reschedule: false,
    pause_key: null,
    run_input_keyset: null,
    refresh_cache: null,
    retriable: null,
    transition_id: null,
    task_parameters_id: null,
    traceparent: null,
    deployment_concurrency_lease_id: null,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type FieldKind = "uuid" | "timestamp" | "string" | "bool" | "optionalBool" | "stringMap";

const FIELDS: Record<keyof StateDetails, FieldKind> = {
  flow_run_id: "uuid",
  task_run_id: "uuid",
  child_flow_run_id: "uuid",
  scheduled_time: "timestamp",
  cache_key: "string",
  cache_expiration: "timestamp",
  deferred: "optionalBool",
  untrackable_result: "bool",
  pause_timeout: "timestamp",
  pause_reschedule: "bool",
  pause_key: "string",
  run_input_keyset: "stringMap",
  refresh_cache: "optionalBool",
  retriable: "optionalBool",
  transition_id: "uuid",
  task_parameters_id: "uuid",
  traceparent: "string",
  deployment_concurrency_lease_id: "uuid",
};

class FieldError extends Error {}

function parseField(kind: FieldKind, value: unknown): unknown {
  if (kind === "bool") {
    if (typeof value !== "boolean") throw new FieldError("Input should be a valid boolean");
    return value;
  }
  if (value === null) return null;
  switch (kind) {
    case "uuid":
      if (typeof value !== "string" || !UUID.test(value)) throw new FieldError("Input should be a valid UUID");
      return value.toLowerCase();
    case "timestamp":
      if (typeof value !== "string" && !(value instanceof Date)) throw new FieldError("Input should be a valid datetime");
      try {
        return toTimestamp(value);
      } catch {
        throw new FieldError("Input should be a valid datetime");
      }
    case "string":
      if (typeof value !== "string") throw new FieldError("Input should be a valid string");
      return value;
    case "optionalBool":
      if (typeof value !== "boolean") throw new FieldError("Input should be a valid boolean");
      return value;
    case "stringMap":
      if (!isPlainObject(value) || Object.values(value).some((v) => typeof v !== "string")) throw new FieldError("Input should be a valid dictionary");
      return { ...(value as Record<string, string>) };
  }
}

/**
 * Reads state details: every known field validated (unknown ones dropped, as Prefect's model
 * ignores them), the missing ones defaulted. `lenient` (for stored states) turns a malformed field
 * into its default instead of throwing.
 */
export function parseStateDetails(value: unknown, options: { lenient?: boolean; path?: string } = {}): StateDetails {
  const details = emptyStateDetails();
  if (value === null || value === undefined) return details;
  const path = options.path ?? "state_details";
  if (!isPlainObject(value)) {
    if (options.lenient) return details;
    throw new InvalidError(`Invalid ${path}: Input should be a valid dictionary`, [{ path: [path], message: "Input should be a valid dictionary" }]);
  }
  const target = details as unknown as Record<string, unknown>;
  for (const [key, kind] of Object.entries(FIELDS)) {
    if (!(key in value) || value[key] === undefined) continue;
    try {
      target[key] = parseField(kind, value[key]);
    } catch (error) {
      if (options.lenient || !(error instanceof FieldError)) continue;
      throw new InvalidError(`Invalid ${path}.${key}: ${error.message}`, [{ path: [path, key], message: error.message }]);
    }
  }
  return details;
}

function isStateType(value: unknown): value is StateType {
  return typeof value === "string" && (STATE_TYPES as readonly string[]).includes(value);
}

/**
 * A proposed state, validated and completed as Prefect's StateCreate/State do: a fresh uuid7 id, the
 * server's clock as timestamp, the name defaulting to the capitalised type, and SCHEDULED states
 * getting `scheduled_time = now` when they have none. Throws InvalidError for malformed input.
 */
export function parseStateInput(input: StateInput): OrchestrationState {
  if (!isPlainObject(input)) throw new InvalidError("Invalid state: Input should be a valid dictionary");
  if (!isStateType(input.type)) {
    throw new InvalidError(`Invalid state.type: Input should be one of ${STATE_TYPES.join(", ")}`, [
      { path: ["state", "type"], message: "Input should be a valid state type" },
    ]);
  }
  for (const key of ["name", "message"] as const) {
    const value = input[key];
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw new InvalidError(`Invalid state.${key}: Input should be a valid string`, [{ path: ["state", key], message: "Input should be a valid string" }]);
    }
  }
  let id: string = uuid7();
  if (input.id !== undefined) {
    if (typeof input.id !== "string" || !UUID.test(input.id)) throw new InvalidError("Invalid state.id: Input should be a valid UUID");
    id = input.id.toLowerCase();
  }
  let timestamp = now();
  if (input.timestamp !== undefined) {
    try {
      timestamp = toTimestamp(input.timestamp);
    } catch {
      throw new InvalidError("Invalid state.timestamp: Input should be a valid datetime");
    }
  }
  const state: OrchestrationState = {
    id,
    type: input.type,
    name: input.name ?? defaultStateName(input.type),
    timestamp,
    message: input.message ?? null,
    data: input.data === undefined ? null : cloneJson(input.data),
    state_details: parseStateDetails(input.state_details, { path: "state.state_details" }),
  };
  if (state.type === "SCHEDULED" && !state.state_details.scheduled_time) state.state_details.scheduled_time = now();
  return state;
}

/** A stored state (from @prefect/db) as orchestration works with it. */
export function fromStoredState(state: State): OrchestrationState {
  return {
    id: state.id,
    type: state.type,
    name: state.name,
    timestamp: state.timestamp,
    message: state.message,
    data: state.data ?? null,
    state_details: parseStateDetails(state.state_details, { lenient: true }),
  };
}

export interface NewStateOptions {
  readonly name?: string;
  readonly message?: string | null;
  readonly data?: unknown;
  readonly details?: Partial<StateDetails>;
}

/** A new state of `type` (fresh id, timestamp now), completed like a proposed one. */
export function newState(type: StateType, options: NewStateOptions = {}): OrchestrationState {
  const state: OrchestrationState = {
    id: uuid7(),
    type,
    name: options.name ?? defaultStateName(type),
    timestamp: now(),
    message: options.message ?? null,
    data: options.data === undefined ? null : cloneJson(options.data),
    state_details: { ...emptyStateDetails(), ...options.details },
  };
  if (type === "SCHEDULED" && !state.state_details.scheduled_time) state.state_details.scheduled_time = now();
  return state;
}

/** Prefect's `State.fresh_copy()`: the same state under a new id and the current time. */
export function freshCopy(state: OrchestrationState): OrchestrationState {
  return { ...copyState(state), id: uuid7(), timestamp: now() };
}

/** A deep copy, so that changing it leaves `state` alone. */
export function copyState(state: OrchestrationState): OrchestrationState {
  return { ...state, data: cloneJson(state.data), state_details: cloneJson(state.state_details) };
}

/** Prefect's `_has_persisted_result`: data that is a JSON object other than `{"type": "unpersisted"}`. */
export function hasPersistedResult(data: unknown): boolean {
  return isPlainObject(data) && data.type !== "unpersisted";
}

/** Python's truthiness of JSON data: null, false, 0, "", [] and {} are false. */
export function truthy(data: unknown): boolean {
  if (data === null || data === undefined || data === false || data === 0 || data === "") return false;
  if (Array.isArray(data)) return data.length > 0;
  if (isPlainObject(data)) return Object.keys(data).length > 0;
  return true;
}
