/**
 * Flow run inputs: keyed values sent to a paused or suspended flow run (`/flow_runs/{id}/input`),
 * created once per key, filtered by key prefix, read back as plain text, deleted.
 */
import { AlreadyExistsError, type FlowRunInput, NotFoundError } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams } from "./common.js";
import { valueError } from "./fields.js";

const NOT_FOUND = "Flow run input not found";

/** Prefect's body for a new input; the key must be URL-safe (Prefect's FlowRunInput validator). */
const InputCreateBody = z.preprocess(
  (body) => body ?? {},
  z.looseObject({
    key: z.string().regex(/^[a-z0-9-]*$/, { message: valueError("key must only contain lowercase letters, numbers, and dashes.") }),
    value: z.string(),
    sender: z.string().nullish(),
  }),
);

const InputFilterBody = z.preprocess(
  (body) => body ?? {},
  z.looseObject({
    prefix: z.string(),
    limit: z.number().int().min(0, { message: "Input should be greater than or equal to 0" }).optional(),
    exclude_keys: z.array(z.string()).optional(),
  }),
);

const KeyParams = z.strictObject({ id: IdParams.shape.id, key: z.string() });

export function flowRunInputResponse(input: FlowRunInput) {
  return {
    id: input.id,
    created: input.created,
    updated: input.updated,
    flow_run_id: input.flow_run_id,
    key: input.key,
    value: input.value,
    sender: input.sender,
  };
}

export function flowRunInputRoutes({ db }: AppContext): Routes {
  return async (app) => {
    app.post("/flow_runs/:id/input", { schema: { params: IdParams, body: InputCreateBody } }, async (request, reply) => {
      const body = request.body;
      try {
        await db.flowRunInputs.create({ flow_run_id: request.params.id, key: body.key, value: body.value, sender: body.sender ?? null });
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new HttpError(409, "A flow run input with this key already exists.");
        if (error instanceof NotFoundError) throw new HttpError(404, "Flow run not found");
        throw error;
      }
      return reply.code(201).send();
    });

    app.post("/flow_runs/:id/input/filter", { schema: { params: IdParams, body: InputFilterBody } }, async (request) => {
      const body = request.body;
      const inputs = await db.flowRunInputs.filter(request.params.id, { prefix: body.prefix, limit: body.limit ?? 1, exclude_keys: body.exclude_keys ?? [] });
      return inputs.map(flowRunInputResponse);
    });

    // The value as stored, as plain text (Prefect's PlainTextResponse).
    app.get("/flow_runs/:id/input/:key", { schema: { params: KeyParams } }, async (request, reply) => {
      const input = await db.flowRunInputs.get(request.params.id, request.params.key);
      if (!input) throw new HttpError(404, NOT_FOUND);
      return reply.type("text/plain; charset=utf-8").send(input.value);
    });

    app.delete("/flow_runs/:id/input/:key", { schema: { params: KeyParams } }, async (request, reply) => {
      try {
        await db.flowRunInputs.delete(request.params.id, request.params.key);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        throw error;
      }
      return reply.code(204).send();
    });
  };
}
