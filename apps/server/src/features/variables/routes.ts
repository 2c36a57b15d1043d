/**
 * Variables: create (409 for a taken name), read by id and by name, filter, count, update and delete
 * by id and by name. Each change publishes Prefect's `prefect.variable.*` lifecycle event.
 */
import { MAX_VARIABLE_NAME_LENGTH, MAX_VARIABLE_VALUE_LENGTH, type Variable, type VariableFilter } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, limitOf, UUID_ID, valueError } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import {
  countVariables,
  createVariable,
  deleteVariable,
  deleteVariableByName,
  readVariable,
  readVariableByName,
  readVariables,
  updateVariable,
  updateVariableByName,
} from "./service.js";

/** Prefect's VariableName. */
const VariableName = z
  .string()
  .max(MAX_VARIABLE_NAME_LENGTH, { message: `String should have at most ${MAX_VARIABLE_NAME_LENGTH} characters` })
  .regex(/^[a-z0-9_-]*$/, { message: valueError("Variable name must only contain lowercase letters, numbers, and dashes or underscores.") });

/** Prefect's StrictVariableValue: any JSON value (null included) of at most 5000 characters of JSON. */
function variableValue(required: boolean) {
  return z.unknown().superRefine((value, ctx) => {
    if (value === undefined) {
      if (required) ctx.addIssue({ code: "invalid_type", expected: "unknown", message: "Field required", input: value });
      return;
    }
    if (value !== null && Buffer.byteLength(JSON.stringify(value), "utf8") > MAX_VARIABLE_VALUE_LENGTH) {
      ctx.addIssue({ code: "custom", message: valueError(`Variable value must be less than ${MAX_VARIABLE_VALUE_LENGTH} characters`), input: value });
    }
  });
}

const VariableCreateBody = z.strictObject({
  name: VariableName,
  value: variableValue(true),
  tags: z.array(z.string()).optional(),
});

const VariableUpdateBody = z.strictObject({
  name: VariableName.nullish(),
  value: variableValue(false).optional(),
  tags: z.array(z.string()).nullish(),
});

const NameParams = z.strictObject({ name: z.string() });

export function variableResponse(variable: Variable) {
  return { id: variable.id, created: variable.created, updated: variable.updated, name: variable.name, value: variable.value ?? null, tags: variable.tags };
}

export function variableRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/variables/", { schema: { body: VariableCreateBody } }, async (request, reply) => {
      const body = request.body;
      const variable = await createVariable(context, { name: body.name, value: body.value ?? null, tags: body.tags ?? [] });
      return reply.code(201).send(variableResponse(variable));
    });

    app.get(`/variables/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => variableResponse(await readVariable(db, request.params.id)));

    app.get("/variables/name/:name", { schema: { params: NameParams } }, async (request) => variableResponse(await readVariableByName(db, request.params.name)));

    app.post("/variables/filter", { schema: { body: api.Body_read_variables_variables_filter_post } }, async (request) => {
      const body = request.body;
      const variables = await readVariables(db, {
        variables: (body.variables ?? null) as VariableFilter | null,
        sort: body.sort ?? "NAME_ASC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return variables.map(variableResponse);
    });

    app.post("/variables/count", { schema: { body: api.Body_count_variables_variables_count_post } }, async (request) =>
      countVariables(db, (request.body.variables ?? null) as VariableFilter | null),
    );

    app.patch(`/variables/${UUID_ID}`, { schema: { params: IdParams, body: VariableUpdateBody } }, async (request, reply) => {
      await updateVariable(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.patch("/variables/name/:name", { schema: { params: NameParams, body: VariableUpdateBody } }, async (request, reply) => {
      await updateVariableByName(context, request.params.name, request.body);
      return reply.code(204).send();
    });

    app.delete(`/variables/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteVariable(context, request.params.id);
      return reply.code(204).send();
    });

    app.delete("/variables/name/:name", { schema: { params: NameParams } }, async (request, reply) => {
      await deleteVariableByName(context, request.params.name);
      return reply.code(204).send();
    });
  };
}
