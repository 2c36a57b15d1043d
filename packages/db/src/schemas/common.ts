import { z } from "zod";
import { TimestampSchema } from "../timestamps.js";

export { TimestampSchema };

/** Any 8-4-4-4-12 hex UUID (Prefect accepts every version; clients mint v4 and v7), lower-cased. */
export const Uuid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, { message: "Input should be a valid UUID" })
  .transform((v) => v.toLowerCase());
export type Uuid = string;

export const STATE_TYPES = [
  "SCHEDULED",
  "PENDING",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "CRASHED",
  "PAUSED",
  "CANCELLING",
] as const;
export const StateType = z.enum(STATE_TYPES);
export type StateType = z.infer<typeof StateType>;

export const TERMINAL_STATE_TYPES: readonly StateType[] = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"];

export const JsonObject = z.record(z.string(), z.unknown());
export type JsonObject = Record<string, unknown>;

export const Tags = z.array(z.string());

/** Prefect's KeyValueLabels: string keys to string, number or boolean values. */
export const Labels = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
export type Labels = z.infer<typeof Labels>;

/** `and_` (default) or `or_`: how the criteria of one filter object combine. */
export const Operator = z.enum(["and_", "or_"]);

export const Limit = z.number().int().min(0);
export const Offset = z.number().int().min(0);

export interface Page {
  readonly limit?: number | undefined;
  readonly offset?: number | undefined;
}

/** The result of an upsert-style create: the row, and whether this call inserted it. */
export interface Created<T> {
  readonly row: T;
  readonly created: boolean;
}
