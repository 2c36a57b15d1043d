/**
 * Variables: named JSON values with tags, validated as Prefect's VariableCreate / VariableUpdate.
 */
import { z } from "zod";
import type { Timestamp } from "../timestamps.js";
import { Tags } from "./common.js";

/** Prefect's MAX_VARIABLE_NAME_LENGTH. */
export const MAX_VARIABLE_NAME_LENGTH = 255;
/** Prefect's MAX_VARIABLE_VALUE_LENGTH: bytes of the value's compact JSON. */
export const MAX_VARIABLE_VALUE_LENGTH = 5000;

/** Prefect's VariableName: lowercase letters, numbers, dashes and underscores, at most 255 characters. */
export const VariableName = z
  .string()
  .max(MAX_VARIABLE_NAME_LENGTH, { message: `Variable name must be at most ${MAX_VARIABLE_NAME_LENGTH} characters` })
  .regex(/^[a-z0-9_-]*$/, { message: "Variable name must only contain lowercase letters, numbers, and dashes or underscores." });

/** Prefect's StrictVariableValue: any JSON value (null included) whose JSON is at most 5000 bytes. */
export const VariableValue = z.unknown().superRefine((value, ctx) => {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  if (json === undefined || !isJson(value)) {
    ctx.addIssue({ code: "custom", message: "Variable value must be serializable to JSON" });
    return;
  }
  if (value !== null && Buffer.byteLength(json, "utf8") > MAX_VARIABLE_VALUE_LENGTH) {
    ctx.addIssue({ code: "custom", message: `Variable value must be less than ${MAX_VARIABLE_VALUE_LENGTH} characters` });
  }
});

/** Strings, finite numbers, booleans, null, and arrays / plain objects of them. */
function isJson(value: unknown): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJson);
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    return (proto === Object.prototype || proto === null) && Object.values(value as object).every(isJson);
  }
  return false;
}

export interface Variable {
  id: string;
  created: Timestamp;
  updated: Timestamp;
  name: string;
  value: unknown;
  tags: string[];
}

export const VariableCreate = z.strictObject({
  name: VariableName,
  value: VariableValue,
  tags: Tags.default([]),
});
export type VariableCreate = z.input<typeof VariableCreate>;

/** Fields left out are left as they are; `value: null` stores null; a null name or tags changes nothing. */
export const VariableUpdate = z.strictObject({
  name: VariableName.nullish(),
  value: VariableValue.optional(),
  tags: Tags.nullish(),
});
export type VariableUpdate = z.input<typeof VariableUpdate>;
