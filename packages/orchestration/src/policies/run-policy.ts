/**
 * Reading and changing a run's `empirical_policy` (Prefect's FlowRunPolicy / TaskRunPolicy), which
 * is stored as JSON: unknown keys are kept, and the deprecated `max_retries` / `retry_delay_seconds`
 * stand in for `retries` / `retry_delay` when those are unset, as Prefect's validator does.
 */
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
