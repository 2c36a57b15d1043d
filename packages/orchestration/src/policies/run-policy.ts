/**
 * A run's `empirical_policy` (Prefect's FlowRunPolicy / TaskRunPolicy), stored as JSON: normalised as
 * Prefect stores it when a run is created or updated (every field, defaults filled in, unknown keys
 * dropped, the deprecated `max_retries` / `retry_delay_seconds` copied into `retries` /
 * `retry_delay`), shown with its defaults, and read by the rules (where the deprecated fields stand
 * in for unset ones, as Prefect's validator does).
 */
import { InvalidError } from "@prefect/db";
import { compareVersions, isPlainObject } from "../util.js";

type Policy = Record<string, unknown>;

const asNumber = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);

function retries(policy: Policy): number | null {
  const value = asNumber(policy.retries);
  if (!value && asNumber(policy.max_retries)) return asNumber(policy.max_retries);
  return value;
}

export interface FlowRunPolicyView {
  readonly retries: number | null;
  readonly retry_delay: number | null;
  readonly pause_keys: readonly string[];
  readonly resuming: boolean;
  readonly retry_type: "in_process" | "reschedule" | null;
}

export function flowRunPolicy(policy: Policy): FlowRunPolicyView {
  const delay = asNumber(policy.retry_delay);
  const retryType = policy.retry_type;
  return {
    retries: retries(policy),
    retry_delay: !delay && asNumber(policy.retry_delay_seconds) ? asNumber(policy.retry_delay_seconds) : delay,
    pause_keys: Array.isArray(policy.pause_keys) ? policy.pause_keys.filter((k): k is string => typeof k === "string") : [],
    resuming: policy.resuming === true,
    retry_type: retryType === "in_process" || retryType === "reschedule" ? retryType : null,
  };
}

export interface TaskRunPolicyView {
  readonly retries: number | null;
  readonly retry_delay: number | readonly number[] | null;
  readonly retry_jitter_factor: number | null;
}

export function taskRunPolicy(policy: Policy): TaskRunPolicyView {
  let delay: number | readonly number[] | null = asNumber(policy.retry_delay);
  if (Array.isArray(policy.retry_delay)) delay = policy.retry_delay.filter((d): d is number => asNumber(d) !== null);
  if (!delay && asNumber(policy.retry_delay_seconds)) delay = asNumber(policy.retry_delay_seconds);
  return { retries: retries(policy), retry_delay: delay, retry_jitter_factor: asNumber(policy.retry_jitter_factor) };
}

/** A copy of the stored policy with `changes` applied. */
export function withPolicy(policy: unknown, changes: Policy): Policy {
  return { ...(isPlainObject(policy) ? policy : {}), ...changes };
}

/**
 * Prefect's compatibility checks on the `api-version` orchestration parameter: true when the
 * client's API version is at least `version`, or unknown (no parameter).
 */
export function apiVersionAtLeast(parameters: Record<string, unknown>, version: string): boolean {
  const api = parameters["api-version"];
  if (api === null || api === undefined) return true;
  return compareVersions(String(api), version) >= 0;
}

/** Prefect's FlowRunPolicy defaults. */
export const FLOW_RUN_POLICY_DEFAULTS: Readonly<Policy> = Object.freeze({
  max_retries: 0,
  retry_delay_seconds: 0,
  retries: null,
  retry_delay: null,
  pause_keys: [],
  resuming: false,
  retry_type: null,
});

/** Prefect's TaskRunPolicy defaults. */
export const TASK_RUN_POLICY_DEFAULTS: Readonly<Policy> = Object.freeze({
  max_retries: 0,
  retry_delay_seconds: 0,
  retries: null,
  retry_delay: null,
  retry_jitter_factor: null,
});

/** A stored policy as Prefect's API shows it: its defaults under what is stored. */
export const flowRunPolicyWithDefaults = (stored: Policy | null | undefined): Policy => ({ ...FLOW_RUN_POLICY_DEFAULTS, ...stored });
export const taskRunPolicyWithDefaults = (stored: Policy | null | undefined): Policy => ({ ...TASK_RUN_POLICY_DEFAULTS, ...stored });

/** Prefect fills the deprecated `max_retries` / `retry_delay_seconds` into `retries` / `retry_delay`. */
function withDeprecatedFields(values: Policy): Policy {
  const out = { ...values };
  if (!out.retries && (out.max_retries ?? 0) !== 0) out.retries = out.max_retries;
  if (!out.retry_delay && (out.retry_delay_seconds ?? 0) !== 0) out.retry_delay = out.retry_delay_seconds;
  return out;
}

/** The given values of the policy's own fields (unknown keys dropped). */
function given(input: Policy | null | undefined, defaults: Readonly<Policy>): Policy {
  const out: Policy = {};
  for (const field of Object.keys(defaults)) if (input?.[field] !== undefined) out[field] = input[field];
  return withDeprecatedFields(out);
}

/** A FlowRunPolicy as Prefect stores it: every field, defaults filled in, unknown keys dropped. */
export function normalizeFlowRunPolicy(input: Policy | null | undefined): Policy {
  const values = given(input, FLOW_RUN_POLICY_DEFAULTS);
  if (Array.isArray(values.pause_keys)) values.pause_keys = [...new Set(values.pause_keys)];
  return { ...FLOW_RUN_POLICY_DEFAULTS, pause_keys: [], ...values };
}

/** A TaskRunPolicy as Prefect stores it, with its validations (InvalidError naming the field). */
export function normalizeTaskRunPolicy(input: Policy | null | undefined): Policy {
  const values = given(input, TASK_RUN_POLICY_DEFAULTS);
  if (Array.isArray(values.retry_delay) && values.retry_delay.length > 50) {
    throw new InvalidError("Can not configure more than 50 retry delays per task.", [
      { path: ["empirical_policy", "retry_delay"], message: "Value error, Can not configure more than 50 retry delays per task." },
    ]);
  }
  if (typeof values.retry_jitter_factor === "number" && values.retry_jitter_factor < 0) {
    throw new InvalidError("`retry_jitter_factor` must be >= 0.", [
      { path: ["empirical_policy", "retry_jitter_factor"], message: "Value error, `retry_jitter_factor` must be >= 0." },
    ]);
  }
  return { ...TASK_RUN_POLICY_DEFAULTS, ...values };
}
