/**
 * What each of Prefect's automation actions does (`server/events/actions.py`), through the feature
 * services (never the routes): its target (selected, or inferred from the triggering event), the
 * call, and the related resources and details its events report. A failure the action reports is an
 * ActionFailed with Prefect's reason; anything else thrown is retried by the actions service.
 */
import { type Automation, addSeconds, now } from "@prefect/db";
import type { ReceivedEvent, StateInput } from "@prefect/orchestration";
import type { AppContext } from "../../context.js";
import { ObjectNotFoundError, PrefectError } from "../../prefect/errors.js";
import { HydrationError } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { TemplateRenderError } from "../../prefect/templates.js";
import { setAutomationEnabled } from "../automations/service.js";
import { renderActionTemplates, renderRunDeploymentParameters, type TemplateSource } from "../automations/template-context.js";
import { callWebhook, NotificationFailed, sendNotification, UnsupportedNotificationBlock } from "../blocks/notifications.js";
import { readBlockDocumentById } from "../blocks/service.js";
import { createFlowRunFromDeployment } from "../deployments/flow-runs.js";
import { pauseDeployment, resumeDeployment } from "../deployments/service.js";
import { deleteFlowRun, resumeFlowRun, setFlowRunState } from "../flow-runs/service.js";
import type { TriggeredAction } from "../triggers/firing.js";
import { updatePool, updateQueue } from "../work-pools/service.js";

type Context = Pick<AppContext, "db" | "events" | "settings">;
type Json = Record<string, unknown>;
type Labels = Record<string, string>;

/** The action failed for a reason it reports (Prefect's ActionFailed): not retried. */
export class ActionFailed extends Error {
  constructor(
    readonly reason: string,
    readonly details: Json = {},
  ) {
    super(reason);
  }
}

/** What a successful action reports: the resources it touched, and details for its events. */
export interface ActionOutcome {
  readonly resources: Labels[];
  readonly details: Json;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CLIENT = { apiVersion: null, clientVersion: null };

/** Prefect's `reason_from_response`, from the error a service threw. */
function reasonFromError(type: string, error: unknown): ActionFailed | null {
  if (error instanceof ObjectNotFoundError) return new ActionFailed(`Unexpected status from '${type}' action: 404`, { status_code: 404 });
  if (!(error instanceof PrefectError)) return null;
  const detail = typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
  if (error.status === 409 || error.status === 422) return new ActionFailed(`Validation error occurred for '${type}' - ${detail}`, { status_code: error.status });
  return new ActionFailed(`Unexpected status from '${type}' action: ${error.status}`, { status_code: error.status });
}

/** Runs a service call, turning its HTTP-like errors into Prefect's reasons. */
async function call<T>(type: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw reasonFromError(type, error) ?? error;
  }
}

/** The id of the first resource of `kind` in the event (Prefect's inferred target). */
function inferredId(event: ReceivedEvent | null, kind: string, thing: string): string {
  if (!event) throw new ActionFailed(`No event to infer the ${thing}`);
  for (const labels of [event.resource, ...event.related]) {
    const id = labels["prefect.resource.id"] ?? "";
    const at = id.lastIndexOf(".");
    if (id.slice(0, at) !== `prefect.${kind}`) continue;
    const value = id.slice(at + 1);
    if (UUID.test(value)) return value.toLowerCase();
    break;
  }
  throw new ActionFailed(`No ${thing} could be inferred`);
}

/** The selected id, or the one inferred from the triggering event. */
function target(ta: TriggeredAction, idField: string, kind: string, thing: string): string {
  const { action } = ta;
  if (action.source === "inferred") return inferredId(ta.triggering_event, kind, thing);
  return String(action[idField]);
}

/** The flow run of a flow-run action: the firing's `prefect.resource.id` label, else the event's first flow run. */
function flowRunTarget(ta: TriggeredAction): string {
  const labelled = ta.triggering_labels["prefect.resource.id"] ?? "";
  if (labelled.startsWith("prefect.flow-run.") && UUID.test(labelled.slice("prefect.flow-run.".length))) return labelled.slice("prefect.flow-run.".length).toLowerCase();
  if (!ta.triggering_event) throw new ActionFailed("No flow run could be inferred");
  return inferredId(ta.triggering_event, "flow-run", "flow run");
}

/** Why orchestration did not accept a state: its reason, else its status. */
const refusal = (status: string, details: unknown): string => (isRecord(details) && typeof details.reason === "string" ? details.reason : status);

const targetResource = (kind: string, id: string, extra: Labels = {}): Labels => ({ "prefect.resource.id": `prefect.${kind}.${id}`, "prefect.resource.role": "target", ...extra });

/** Where the UI's links point (Prefect: PREFECT_UI_URL, else the API's address without `/api`). */
const uiUrlOf = (context: Context): string | null => context.settings.ui.apiUrl?.replace(/\/api\/?$/, "") ?? null;

function templateSource(ta: TriggeredAction, automation: Automation): TemplateSource {
  return { automation, triggeringEvent: ta.triggering_event, triggeringLabels: ta.triggering_labels, firing: ta.firing as unknown as Json };
}

async function render(context: Context, ta: TriggeredAction, automation: Automation, templates: string[]): Promise<string[]> {
  try {
    return await renderActionTemplates(context.db, templates, templateSource(ta, automation), uiUrlOf(context));
  } catch (error) {
    if (error instanceof TemplateRenderError) {
      throw new ActionFailed(`Template rendering failed: ${error.message}`, { template_error: error.reason, template_source: error.template });
    }
    throw error;
  }
}

async function setRunState(context: Context, ta: TriggeredAction, state: StateInput, force = false): Promise<ActionOutcome> {
  const id = flowRunTarget(ta);
  const result = await call(String(ta.action.type), () => setFlowRunState(context, id, state, CLIENT, force));
  if (result.status !== "ACCEPT") {
    throw new ActionFailed(`Failed to set state: ${refusal(result.status, result.details)}`);
  }
  return { resources: [targetResource("flow-run", id)], details: {} };
}

async function runDeployment(context: Context, ta: TriggeredAction, automation: Automation): Promise<ActionOutcome> {
  const { action } = ta;
  const id = target(ta, "deployment_id", "deployment", "deployment");
  let parameters: Json;
  try {
    parameters = await renderRunDeploymentParameters(context.db, isRecord(action.parameters) ? action.parameters : null, templateSource(ta, automation), uiUrlOf(context));
  } catch (error) {
    if (error instanceof HydrationError || error instanceof TemplateRenderError) throw new ActionFailed(`Unable to create flow run from deployment: ${error.message}`);
    throw error;
  }
  const scheduleAfter = typeof action.schedule_after === "number" ? action.schedule_after : 0;
  const outcome = await call("run-deployment", () =>
    createFlowRunFromDeployment(
      context,
      id,
      {
        parameters,
        job_variables: isRecord(action.job_variables) ? action.job_variables : null,
        idempotency_key: `automation ${automation.id}, action ${ta.action_index}, invocation ${ta.id}`,
        state: { type: "SCHEDULED", name: "Scheduled", state_details: { scheduled_time: addSeconds(now(), scheduleAfter) } },
      },
      { id: automation.id, type: "AUTOMATION", display_value: automation.name },
    ),
  );
  const run = outcome.run;
  return {
    resources: [
      targetResource("deployment", id),
      { "prefect.resource.id": `prefect.flow-run.${run.id}`, "prefect.resource.role": "flow-run", "prefect.resource.name": run.name },
    ],
    details: {},
  };
}

async function workPoolAction(context: Context, ta: TriggeredAction, paused: boolean): Promise<ActionOutcome> {
  const id = target(ta, "work_pool_id", "work-pool", "work pool");
  const pool = await context.db.workPools.get(id);
  if (!pool) throw new ActionFailed(`Work pool ${id} not found`);
  await call(String(ta.action.type), () => updatePool(context, pool.name, { is_paused: paused }));
  return { resources: [targetResource("work-pool", id, { "prefect.resource.name": pool.name })], details: {} };
}

async function workQueueAction(context: Context, ta: TriggeredAction, paused: boolean): Promise<ActionOutcome> {
  const id = target(ta, "work_queue_id", "work-queue", "work queue");
  const queue = await context.db.workQueues.get(id);
  if (!queue) throw new ActionFailed(`Unexpected status from '${ta.action.type}' action: 404`, { status_code: 404 });
  const pool = await context.db.workPools.get(queue.work_pool_id);
  await call(String(ta.action.type), () => updateQueue(context, queue, pool, { is_paused: paused }));
  return { resources: [targetResource("work-queue", id)], details: {} };
}

/** The block document an action names, with its secrets, and the resources its events name. */
async function loadBlock(context: Context, ta: TriggeredAction) {
  const id = String(ta.action.block_document_id);
  const block = await call(String(ta.action.type), () => readBlockDocumentById(context, id, true));
  const resources: Labels[] = [
    { "prefect.resource.id": `prefect.block-document.${block.id}`, "prefect.resource.role": "block", "prefect.resource.name": block.name },
    { "prefect.resource.id": `prefect.block-type.${block.block_type.slug}`, "prefect.resource.role": "block-type" },
  ];
  return { block, resources };
}

async function sendNotificationAction(context: Context, ta: TriggeredAction, automation: Automation): Promise<ActionOutcome> {
  const { block, resources } = await loadBlock(context, ta);
  const capabilities = block.block_schema?.capabilities ?? [];
  if (!capabilities.includes("notify")) throw new ActionFailed("The referenced block was not a notification block");
  const [subject, body] = await render(context, ta, automation, [String(ta.action.subject ?? ""), String(ta.action.body ?? "")]);
  try {
    await sendNotification(block.block_type.slug, block.data as Json, { subject: subject ?? null, body: body ?? "" });
  } catch (error) {
    if (error instanceof UnsupportedNotificationBlock) throw new ActionFailed(error.message);
    if (error instanceof NotificationFailed && !error.retryable) throw new ActionFailed("Notification failed", { notification_log: error.log });
    throw error;
  }
  return { resources, details: {} };
}

async function callWebhookAction(context: Context, ta: TriggeredAction, automation: Automation): Promise<ActionOutcome> {
  const { block, resources } = await loadBlock(context, ta);
  if (block.block_type.slug !== "webhook") throw new ActionFailed("The referenced block was not a webhook block");
  const [payload] = await render(context, ta, automation, [String(ta.action.payload ?? "")]);
  try {
    const result = await callWebhook(block.data as Json, payload ?? "");
    return { resources, details: { ...result } };
  } catch (error) {
    if (error instanceof NotificationFailed) throw new ActionFailed(`Webhook call failed: ${error.log}`);
    throw new ActionFailed(`Webhook call failed: ${(error as Error).message}`);
  }
}

/** Performs the queued action. */
export async function performAction(context: Context, ta: TriggeredAction, automation: Automation): Promise<ActionOutcome> {
  const { action } = ta;
  const type = String(action.type);
  const paused = (kind: string) => type === `pause-${kind}`;
  switch (type) {
    case "do-nothing":
      return { resources: [], details: {} };
    case "run-deployment":
      return runDeployment(context, ta, automation);
    case "pause-deployment":
    case "resume-deployment": {
      const id = target(ta, "deployment_id", "deployment", "deployment");
      await call(type, () => (paused("deployment") ? pauseDeployment(context.db, id) : resumeDeployment(context.db, id)));
      return { resources: [targetResource("deployment", id)], details: {} };
    }
    case "cancel-flow-run":
      return setRunState(context, ta, { type: "CANCELLING", message: `Cancelled by Automation ${automation.id}` });
    case "change-flow-run-state":
      return setRunState(
        context,
        ta,
        {
          type: String(action.state),
          ...(typeof action.name === "string" ? { name: action.name } : {}),
          message: typeof action.message === "string" ? action.message : `State changed by Automation ${automation.id}`,
        } as StateInput,
        action.force === true,
      );
    case "suspend-flow-run":
      return setRunState(context, ta, {
        type: "PAUSED",
        name: "Suspended",
        message: `Suspended by Automation ${automation.id}`,
        state_details: { pause_reschedule: true, pause_timeout: addSeconds(now(), 3600) },
      } as StateInput);
    case "resume-flow-run": {
      const id = flowRunTarget(ta);
      const result = await call(type, () => resumeFlowRun(context, id, null, CLIENT));
      if (result.status !== "ACCEPT") throw new ActionFailed(`Failed to resume flow run: ${refusal(result.status, result.details)}`);
      return { resources: [targetResource("flow-run", id)], details: {} };
    }
    case "delete-flow-run": {
      const id = flowRunTarget(ta);
      await call(type, () => deleteFlowRun(context.db, id));
      return { resources: [targetResource("flow-run", id)], details: {} };
    }
    case "pause-work-pool":
    case "resume-work-pool":
      return workPoolAction(context, ta, paused("work-pool"));
    case "pause-work-queue":
    case "resume-work-queue":
      return workQueueAction(context, ta, paused("work-queue"));
    case "pause-automation":
    case "resume-automation": {
      const id = target(ta, "automation_id", "automation", "automation");
      await call(type, () => setAutomationEnabled(context, id, !paused("automation")));
      return { resources: [targetResource("automation", id)], details: {} };
    }
    case "send-notification":
      return sendNotificationAction(context, ta, automation);
    case "call-webhook":
      return callWebhookAction(context, ta, automation);
    default:
      throw new ActionFailed(`Unknown action type '${type}'`);
  }
}
