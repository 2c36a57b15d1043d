/**
 * zod at the HTTP boundary: route schemas (body, querystring, params) are zod schemas, validated by
 * this compiler, with request types inferred from them (`ZodTypeProvider`).
 */
import type { FastifyPluginAsync, FastifySchemaCompiler, FastifyTypeProvider, RawServerDefault } from "fastify";
import type { z } from "zod";

export interface ZodTypeProvider extends FastifyTypeProvider {
  validator: this["schema"] extends z.ZodType ? z.output<this["schema"]> : unknown;
  serializer: this["schema"] extends z.ZodType ? z.input<this["schema"]> : unknown;
}

/** A request part that failed its schema; the error handler turns it into Prefect's 422 body. */
export class RequestValidationError extends Error {
  constructor(
    readonly part: "body" | "querystring" | "params" | "headers",
    readonly issues: readonly z.core.$ZodIssue[],
  ) {
    super(`Invalid ${part}`);
  }
}

export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    return { error: new RequestValidationError((httpPart ?? "body") as RequestValidationError["part"], result.error.issues) };
  };

/** A group of routes whose request types come from their zod schemas. */
export type Routes = FastifyPluginAsync<Record<never, never>, RawServerDefault, ZodTypeProvider>;
