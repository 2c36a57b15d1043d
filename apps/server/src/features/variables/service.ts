/**
 * Variables: created (409 for a taken name), read by id and by name, filtered, counted, updated and
 * deleted by id and by name. Each change publishes Prefect's `prefect.variable.*` lifecycle event
 * once it has committed.
 */
import {
  AlreadyExistsError,
  NotFoundError,
  type Repositories,
  type Variable,
  type VariableFilter,
  type VariableReadOptions,
  type VariableUpdate,
} from "@prefect/db";
import type { AppContext } from "../../context.js";
import { conflict, integrityConflict, notFound } from "../../prefect/errors.js";
import { publishEvents } from "../events/bus.js";
import { lifecycleEvent } from "../events/lifecycle.js";

const NOT_FOUND = "Variable not found.";

type Context = Pick<AppContext, "db" | "events">;

function publish({ events }: Context, action: "created" | "updated" | "deleted", variable: Variable): void {
  publishEvents(events, [
    lifecycleEvent({
      kind: "variable",
      action,
      resourceId: `prefect.variable.${variable.id}`,
      resourceName: variable.name,
      payload: { name: variable.name, value: variable.value ?? null, tags: variable.tags },
    }),
  ]);
}

export async function createVariable(context: Context, input: { name: string; value: unknown; tags: string[] }): Promise<Variable> {
  let variable: Variable;
  try {
    variable = await context.db.variables.create(input);
  } catch (error) {
    // Names are lowercase letters, digits, dashes and underscores, so Python's repr() quotes them so.
    if (error instanceof AlreadyExistsError) throw conflict(`A variable with the name '${input.name}' already exists.`);
    throw error;
  }
  publish(context, "created", variable);
  return variable;
}

async function found(read: Promise<Variable | null>): Promise<Variable> {
  const variable = await read;
  if (!variable) throw notFound(NOT_FOUND);
  return variable;
}

export const readVariable = (db: Repositories, id: string) => found(db.variables.get(id));
export const readVariableByName = (db: Repositories, name: string) => found(db.variables.getByName(name));
export const readVariables = (db: Repositories, options: VariableReadOptions) => db.variables.read(options);
export const countVariables = (db: Repositories, filter: VariableFilter | null) => db.variables.count(filter);

/** Unknown variable: 404; a rename onto a taken name: 409. */
async function update(context: Context, write: () => Promise<Variable>): Promise<void> {
  let variable: Variable;
  try {
    variable = await write();
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    if (error instanceof AlreadyExistsError) throw integrityConflict();
    throw error;
  }
  publish(context, "updated", variable);
}

export const updateVariable = (context: Context, id: string, patch: VariableUpdate) => update(context, () => context.db.variables.update(id, patch));
export const updateVariableByName = (context: Context, name: string, patch: VariableUpdate) =>
  update(context, () => context.db.variables.updateByName(name, patch));

/** Deletes the variable `find` reads, in one transaction; unknown: 404. */
async function remove(context: Context, find: (tx: Repositories) => Promise<Variable | null>): Promise<void> {
  const deleted = await context.db.transaction(async (tx) => {
    const variable = await find(tx);
    if (!variable) throw notFound(NOT_FOUND);
    await tx.variables.delete(variable.id);
    return variable;
  });
  publish(context, "deleted", deleted);
}

export const deleteVariable = (context: Context, id: string) => remove(context, (tx) => tx.variables.get(id));
export const deleteVariableByName = (context: Context, name: string) => remove(context, (tx) => tx.variables.getByName(name));
