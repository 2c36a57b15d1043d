/**
 * Variables: create (409 for a taken name), read by id and by name, filter, count, update and delete
 * by id and by name. Each change publishes Prefect's `prefect.variable.*` lifecycle event.
 */
import {
  AlreadyExistsError,
  MAX_VARIABLE_NAME_LENGTH,
  MAX_VARIABLE_VALUE_LENGTH,
  NotFoundError,
  type Repositories,
  type Variable,
  type VariableFilter,
} from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import { publishLifecycleEvent } from "../events/lifecycle.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf } from "./common.js";
import { UUID_ID, valueError } from "./fields.js";

const NOT_FOUND = "Variable not found.";
/** What Prefect answers when an update runs into the unique name (its IntegrityError handler). */
const INTEGRITY_CONFLICT = "Data integrity conflict. This usually means a unique or foreign key constraint was violated. See server logs for details.";

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

export function variableRoutes({ db, events }: AppContext): Routes {
  const publish = (action: "created" | "updated" | "deleted", variable: Variable) =>
    publishLifecycleEvent(events, {
      kind: "variable",
      action,
      resourceId: `prefect.variable.${variable.id}`,
      resourceName: variable.name,
      payload: { name: variable.name, value: variable.value ?? null, tags: variable.tags },
    });

  /** Runs an update; unknown variable → 404, a rename onto a taken name → 409. */
  async function update(write: () => Promise<Variable>): Promise<void> {
    let variable: Variable;
    try {
      variable = await write();
    } catch (error) {
      if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
      if (error instanceof AlreadyExistsError) throw new HttpError(409, INTEGRITY_CONFLICT);
      throw error;
    }
    publish("updated", variable);
  }

  /** Deletes the variable `find` reads, in one transaction; unknown → 404. */
  async function remove(find: (tx: Repositories) => Promise<Variable | null>) {
    const deleted = await db.transaction(async (tx) => {
      const variable = await find(tx);
      if (!variable) throw new HttpError(404, NOT_FOUND);
      await tx.variables.delete(variable.id);
      return variable;
    });
    publish("deleted", deleted);
  }

  return async (app) => {
    app.post("/variables/", { schema: { body: VariableCreateBody } }, async (request, reply) => {
      const body = request.body;
      let variable: Variable;
      try {
        variable = await db.variables.create({ name: body.name, value: body.value ?? null, tags: body.tags ?? [] });
      } catch (error) {
        // Names are lowercase letters, digits, dashes and underscores, so Python's repr() quotes them so.
        if (error instanceof AlreadyExistsError) throw new HttpError(409, `A variable with the name '${body.name}' already exists.`);
        throw error;
      }
      publish("created", variable);
      return reply.code(201).send(variableResponse(variable));
    });

    app.get(`/variables/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      const variable = await db.variables.get(request.params.id);
      if (!variable) throw new HttpError(404, NOT_FOUND);
      return variableResponse(variable);
    });

    app.get("/variables/name/:name", { schema: { params: NameParams } }, async (request) => {
      const variable = await db.variables.getByName(request.params.name);
      if (!variable) throw new HttpError(404, NOT_FOUND);
      return variableResponse(variable);
    });

    app.post("/variables/filter", { schema: { body: api.Body_read_variables_variables_filter_post } }, async (request) => {
      const body = request.body;
      const variables = await db.variables.read({
        variables: (body.variables ?? null) as VariableFilter | null,
        sort: body.sort ?? "NAME_ASC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return variables.map(variableResponse);
    });

    app.post("/variables/count", { schema: { body: api.Body_count_variables_variables_count_post } }, async (request) =>
      db.variables.count((request.body.variables ?? null) as VariableFilter | null),
    );

    app.patch(`/variables/${UUID_ID}`, { schema: { params: IdParams, body: VariableUpdateBody } }, async (request, reply) => {
      await update(() => db.variables.update(request.params.id, request.body));
      return reply.code(204).send();
    });

    app.patch("/variables/name/:name", { schema: { params: NameParams, body: VariableUpdateBody } }, async (request, reply) => {
      await update(() => db.variables.updateByName(request.params.name, request.body));
      return reply.code(204).send();
    });

    app.delete(`/variables/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await remove((tx) => tx.variables.get(request.params.id));
      return reply.code(204).send();
    });

    app.delete("/variables/name/:name", { schema: { params: NameParams } }, async (request, reply) => {
      await remove((tx) => tx.variables.getByName(request.params.name));
      return reply.code(204).send();
    });
  };
}
