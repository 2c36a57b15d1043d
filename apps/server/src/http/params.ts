/** Small pieces every route group uses. */
import { InvalidError, type RunCriteria, Uuid } from "@prefect/db";
import { z } from "zod";

/** Prefect's PREFECT_API_DEFAULT_LIMIT: the default and the largest page a read returns. */
export const DEFAULT_LIMIT = 200;

export const IdParams = z.strictObject({ id: Uuid });

/** Prefect answers 201 when the call created the row and 200 when it returned an existing one. */
export const createdStatus = (created: boolean) => (created ? 201 : 200);

/** A body's `limit`: Prefect's default when absent, refused above it. */
export function limitOf(limit: number | null | undefined): number {
  if (limit === null || limit === undefined) return DEFAULT_LIMIT;
  if (limit < 0 || limit > DEFAULT_LIMIT) {
    const message = `Input should be less than or equal to ${DEFAULT_LIMIT} and greater than or equal to 0`;
    throw new InvalidError(message, [{ path: ["limit"], message }]);
  }
  return limit;
}

/** Prefect's `/paginate` response envelope. */
export function paginated<T>(results: T[], count: number, limit: number, page: number) {
  return { results, count, limit, pages: limit > 0 ? Math.ceil(count / limit) : 0, page };
}

interface CriteriaBody {
  readonly flows?: unknown;
  readonly flow_runs?: unknown;
  readonly task_runs?: unknown;
}

/** The run criteria of a read body, for the repositories (which validate them again). */
export function runCriteria(body: CriteriaBody): RunCriteria {
  return {
    flows: (body.flows ?? null) as RunCriteria["flows"],
    flow_runs: (body.flow_runs ?? null) as RunCriteria["flow_runs"],
    task_runs: (body.task_runs ?? null) as RunCriteria["task_runs"],
  };
}
