/**
 * Flow run inputs: keyed values sent to a paused or suspended flow run (`/flow_runs/{id}/input`),
 * created once per key, filtered by key prefix, read back as plain text, deleted.
 */
import type { FlowRunInput } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import { IdParams, valueError } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { createFlowRunInput, deleteFlowRunInput, filterFlowRunInputs, readFlowRunInput } from "./service.js";

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
      await createFlowRunInput(db, { flow_run_id: request.params.id, key: body.key, value: body.value, sender: body.sender ?? null });
      return reply.code(201).send();
    });

    app.post("/flow_runs/:id/input/filter", { schema: { params: IdParams, body: InputFilterBody } }, async (request) => {
      const body = request.body;
      const inputs = await filterFlowRunInputs(db, request.params.id, { prefix: body.prefix, limit: body.limit ?? 1, exclude_keys: body.exclude_keys ?? [] });
      return inputs.map(flowRunInputResponse);
    });

    // The value as stored, as plain text (Prefect's PlainTextResponse).
    app.get("/flow_runs/:id/input/:key", { schema: { params: KeyParams } }, async (request, reply) => {
      const input = await readFlowRunInput(db, request.params.id, request.params.key);
      return reply.type("text/plain; charset=utf-8").send(input.value);
    });

    app.delete("/flow_runs/:id/input/:key", { schema: { params: KeyParams } }, async (request, reply) => {
      await deleteFlowRunInput(db, request.params.id, request.params.key);
      return reply.code(204).send();
    });
  };
}
