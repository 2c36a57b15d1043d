/** Limits and conventions Prefect applies to the runs it creates. */
import { InvalidError, type Labels } from "@prefect/db";

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

/** Label values Prefect keeps (KeyValueLabels: strings, numbers, booleans); 422 naming each other one. */
export function labelsOf(body: Record<string, unknown>): Labels {
  const problems = Object.entries(body).filter(([, value]) => !["string", "number", "boolean"].includes(typeof value));
  if (problems.length > 0) {
    const message = "Input should be a valid string, number or boolean";
    throw new InvalidError(message, problems.map(([key]) => ({ path: [key], message })));
  }
  return body as Labels;
}
