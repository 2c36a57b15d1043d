/**
 * The request headers Prefect's API reads: the API version (`X-PREFECT-API-VERSION`), the client
 * version (User-Agent) and an automation's provenance (`Prefect-Automation-Id` / `-Name`).
 */
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { badRequest } from "../prefect/errors.js";
import { canonicalUuid } from "../prefect/ids.js";

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
    throw badRequest(`Invalid X-PREFECT-API-VERSION header format.Expected header in format 'x.y.z' but received ${value}`);
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
  return { id: canonicalUuid(id), type: "AUTOMATION", display_value: display };
}

/**
 * Prefect clients up to 3.3.7 fail on `storage_configuration.default_result_storage_block_id`, so
 * Prefect leaves it out for them (their version is in the User-Agent).
 */
export function omitsResultStorageBlock(request: FastifyRequest): boolean {
  const version = clientVersionOf(request);
  const match = version ? /^(\d+)\.(\d+)\.(\d+)(.*)$/.exec(version) : null;
  if (!match) return false;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const suffix = match[4] ?? "";
  const order = major - 3 || minor - 3 || patch - 7;
  if (order !== 0) return order < 0;
  // 3.3.7 itself, and its pre-releases (a, b, rc, dev), but not its post or local releases.
  return suffix === "" || /^\.?(a|b|rc|dev)/.test(suffix);
}
