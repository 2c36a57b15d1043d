/**
 * Automations (Prefect's `api/automations.py` and `events/models/automations.py`): created, replaced,
 * enabled or disabled, deleted, read, filtered and counted, related to the deployments their
 * run-deployment actions select and to the resource that owns them. Each definition is validated as
 * Prefect's models do (schemas.ts); trigger ids are new on every create and replace. Creating,
 * updating and deleting one publishes Prefect's `prefect.automation.*` lifecycle event once committed.
 *
 * The triggers and actions services use `readEnabledAutomations`, `setAutomationEnabled` and the
 * state repository (`db.automations`: buckets, child firings, followers) directly.
 */
import { type Automation, type AutomationFilter, type AutomationSort, NotFoundError, now, type Repositories } from "@prefect/db";
import type { AppContext } from "../../context.js";
import { ObjectNotFoundError, PrefectError, notFound, ValidationProblems, unprocessableDetail } from "../../prefect/errors.js";
import { isRecord } from "../../prefect/json.js";
import { jobVariablesProblem } from "../../prefect/job-variables.js";
import { type TemplateProblem, templateProblem } from "../../prefect/templates.js";
import { blockDataLookup } from "../blocks/service.js";
import { publishEvents } from "../events/bus.js";
import { lifecycleEvent } from "../events/lifecycle.js";
import { automationResponse } from "./responses.js";
import { type AutomationDefinition, AutomationValidationError, type Problem, validateAutomationBody } from "./schemas.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;
type Json = Record<string, unknown>;

const NOT_FOUND = "Automation not found";

function publish({ events }: Pick<AppContext, "events">, action: "created" | "updated" | "deleted", automation: Automation): void {
  publishEvents(events, [
    lifecycleEvent({
      kind: "automation",
      action,
      resourceId: `prefect.automation.${automation.id}`,
      resourceName: automation.name,
      payload: automationResponse(automation),
    }),
  ]);
}

/** Body problems as Prefect's request validation reports them (under `body`). */
async function validated<Owner extends boolean>(body: unknown, owner: Owner) {
  try {
    return await validateAutomationBody(body, { owner });
  } catch (error) {
    if (error instanceof AutomationValidationError) {
      throw new ValidationProblems(
        error.problems.map((p: Problem) => ({ ...p, loc: ["body", ...p.loc] })),
        body ?? null,
      );
    }
    throw error;
  }
}

/** The pool a deployment's runs go to, if any. */
async function poolOfDeployment(db: Repositories, deploymentId: string) {
  const deployment = await db.deployments.get(deploymentId);
  if (!deployment) throw notFound("Deployment not found.");
  const queue = deployment.work_queue_id ? await db.workQueues.get(deployment.work_queue_id) : null;
  const pool = queue ? await db.workPools.get(queue.work_pool_id) : null;
  return { deployment, pool };
}

const hasKeys = (value: unknown) => isRecord(value) && Object.keys(value).length > 0;

/**
 * Prefect's `validate_job_variables_for_run_deployment_action` for each run-deployment action with a
 * deployment and job variables (on create only non-empty ones): the variables against the pool's
 * template, `required` included. 404 for a missing deployment, 422 naming every problem.
 */
async function checkRunDeploymentJobVariables(context: Context, actions: readonly Json[], onCreate: boolean): Promise<void> {
  const problems: string[] = [];
  for (const action of actions) {
    if (action.type !== "run-deployment" || typeof action.deployment_id !== "string") continue;
    const jobVariables = action.job_variables;
    if (jobVariables === null || jobVariables === undefined || (onCreate && !hasKeys(jobVariables))) continue;
    const { deployment, pool } = await poolOfDeployment(context.db, action.deployment_id);
    if (!pool || !(hasKeys(deployment.job_variables) || hasKeys(jobVariables))) continue;
    const problem = await jobVariablesProblem(pool.base_job_template, [jobVariables as Json], {
      ignoreRequired: false,
      ignoreInvalidDefaults: true,
      blockData: blockDataLookup(context),
    });
    if (problem?.kind === "invalid_schema") throw unprocessableDetail(`Invalid schema: ${problem.reason}`);
    if (problem) problems.push(problem.message);
  }
  if (problems.length > 0) throw new PrefectError(422, `Error creating automation: ${problems.join(" ")}`);
}

export async function createAutomation(context: Context, body: unknown): Promise<Automation> {
  const { definition, owner_resource } = await validated(body, true);
  await checkRunDeploymentJobVariables(context, definition.actions, true);
  const automation = await context.db.automations.create({ ...definition, owner_resource });
  publish(context, "created", automation);
  return automation;
}

/** Prefect's PUT: the given fields replace the stored ones (left-out optional fields are kept). */
export async function replaceAutomation(context: Context, id: string, body: unknown): Promise<void> {
  const { definition, given } = await validated(body, false);
  await checkRunDeploymentJobVariables(context, definition.actions, false);
  const update: Partial<AutomationDefinition> & Pick<AutomationDefinition, "name" | "trigger" | "actions"> = {
    name: definition.name,
    trigger: definition.trigger,
    actions: definition.actions,
  };
  for (const key of ["description", "enabled", "tags", "actions_on_trigger", "actions_on_resolve"] as const) {
    if (given.has(key)) (update as Json)[key] = definition[key];
  }
  let automation: Automation;
  try {
    automation = await context.db.automations.update(id, update);
  } catch (error) {
    if (error instanceof NotFoundError) throw new ObjectNotFoundError(NOT_FOUND);
    throw error;
  }
  publish(context, "updated", automation);
}

/** The stored definition, as Prefect re-validates it when a partial update changes it. */
const definitionOf = (a: Automation): AutomationDefinition => ({
  name: a.name,
  description: a.description,
  enabled: a.enabled,
  tags: a.tags,
  trigger: a.trigger,
  actions: a.actions,
  actions_on_trigger: a.actions_on_trigger,
  actions_on_resolve: a.actions_on_resolve,
});

/**
 * Prefect's PATCH: enables or disables the automation. The automation as it would become is validated
 * again, so enabling one whose run-deployment action would loop is refused (422, `loc` []).
 */
export async function setAutomationEnabled(context: Context, id: string, enabled: boolean): Promise<Automation> {
  const existing = await context.db.automations.get(id);
  if (!existing) throw new ObjectNotFoundError(NOT_FOUND);
  try {
    await validateAutomationBody({ ...definitionOf(existing), enabled }, { owner: false });
  } catch (error) {
    if (error instanceof AutomationValidationError) throw new ValidationProblems(error.problems, { enabled });
    throw error;
  }
  let automation: Automation;
  try {
    automation = await context.db.automations.patch(id, { enabled });
  } catch (error) {
    if (error instanceof NotFoundError) throw new ObjectNotFoundError(NOT_FOUND);
    throw error;
  }
  publish(context, "updated", automation);
  return automation;
}

export async function deleteAutomation(context: Context, id: string): Promise<void> {
  const deleted = await context.db.transaction(async (tx) => {
    const automation = await tx.automations.get(id);
    if (!automation) throw new ObjectNotFoundError(NOT_FOUND);
    await tx.automations.delete(id);
    return automation;
  });
  publish(context, "deleted", deleted);
}

export async function readAutomation(db: Repositories, id: string): Promise<Automation> {
  const automation = await db.automations.get(id);
  if (!automation) throw new ObjectNotFoundError(NOT_FOUND);
  return automation;
}

export const readAutomations = (
  db: Repositories,
  options: { automations: AutomationFilter | null; sort: AutomationSort; limit: number; offset: number },
): Promise<Automation[]> => db.automations.read(options);

/** Prefect counts every automation (its count route takes no filter). */
export const countAutomations = (db: Repositories): Promise<number> => db.automations.count();

/** Every automation related to the resource, owned by it or not. */
export const readAutomationsRelatedTo = (db: Repositories, resourceId: string): Promise<Automation[]> => db.automations.readRelatedTo(resourceId);

/**
 * Prefect's `DELETE /automations/owned-by/{resource_id}`: the automations the resource owns and that
 * were created until now; those only related to it stay. No lifecycle events (as in Prefect).
 */
export const deleteAutomationsOwnedBy = (db: Repositories, resourceId: string): Promise<string[]> =>
  db.automations.deleteOwnedBy(resourceId, { automations: { created: { before_: now() } } });

/** The enabled automations, for the triggers service. */
export async function readEnabledAutomations(db: Repositories): Promise<Automation[]> {
  const out: Automation[] = [];
  for (let offset = 0; ; offset += 200) {
    const page = await db.automations.read({ sort: "CREATED_DESC", limit: 200, offset });
    out.push(...page.filter((a) => a.enabled));
    if (page.length < 200) return out;
  }
}

/** Prefect's `templates/validate`: null for a template that can be saved, else its problem. */
export const validateTemplate = (template: string): Promise<TemplateProblem | null> => templateProblem(template);
