/**
 * The context Prefect renders an action's templates with (`JinjaTemplateAction._template_context`):
 * `automation`, `event`, `labels`, `firing`, `firings`, `events`, and the objects the templates name
 * (`flow_run`, `flow`, `deployment`, `task_run`, `work_pool`, `work_queue`, `concurrency_limit`,
 * `variables`), read only when named and only when there is a triggering event, from the first
 * resource of their kind in it. For the actions service: `renderActionTemplates` renders a list of
 * templates, `renderRunDeploymentParameters` a run-deployment action's parameters, and
 * `actionTemplateContext` builds the context alone.
 */
import type { Automation, Repositories } from "@prefect/db";
import type { ReceivedEvent } from "@prefect/orchestration";
import { hydrate, upgradeV1Templates, workspaceVariables } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { lazyNamesIn, type RenderOptions, renderTemplate } from "../../prefect/templates.js";
import { limitV2Response } from "../concurrency-limits/responses.js";
import { deploymentResponse } from "../deployments/responses.js";
import { flowRunResponse } from "../flow-runs/responses.js";
import { flowResponse } from "../flows/responses.js";
import { taskRunResponse } from "../task-runs/responses.js";
import { workPoolResponse, workQueueResponse } from "../work-pools/responses.js";
import { automationResponse } from "./responses.js";

type Json = Record<string, unknown>;
type Labels = Record<string, string>;

/** What Prefect's TriggeredAction gives a template (the firing as stored: `triggering_firings`, `triggering_event`, ...). */
export interface TemplateSource {
  readonly automation: Automation;
  readonly triggeringEvent: ReceivedEvent | null;
  readonly triggeringLabels: Labels;
  readonly firing: Json | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A resource as templates see it: its labels, plus `id`, `name`, `role` and `labels` (Prefect's Resource). */
function resourceObject(labels: Labels): Json {
  return { ...labels, id: labels["prefect.resource.id"] ?? null, name: labels["prefect.resource.name"] ?? null, role: labels["prefect.resource.role"] ?? null, labels: diver(labels) };
}

/** Prefect's LabelDiver: `labels.a.b` and `labels['a.b']` both reach label `a.b`. */
export function diver(labels: Labels): Json {
  const out: Json = { ...labels };
  for (const [key, value] of Object.entries(labels)) {
    const parts = key.split(".");
    let node = out;
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1) {
        if (!(part in node)) node[part] = value;
      } else {
        if (!isRecord(node[part])) node[part] = {};
        node = node[part] as Json;
      }
    }
  }
  return out;
}

/** A ReceivedEvent as templates see it (Prefect's event object with its helpers). */
export function eventObject(event: ReceivedEvent, uiUrl: string | null = null): Json {
  const resource = resourceObject(event.resource as Labels);
  const related = (event.related as Labels[]).map(resourceObject);
  const inRole: Json = {};
  const allInRole: Record<string, Json[]> = {};
  for (const r of related) {
    const role = r.role as string | null;
    if (!role) continue;
    if (!(role in inRole)) inRole[role] = r;
    allInRole[role] = [...(allInRole[role] ?? []), r];
  }
  const day = String(event.occurred).slice(0, 10);
  return {
    ...(event as unknown as Json),
    resource,
    related,
    resource_in_role: inRole,
    resources_in_role: allInRole,
    involved_resources: [resource, ...related],
    url: uiUrl ? `${uiUrl.replace(/\/+$/, "")}/events/event/${day}/${event.id}` : null,
  };
}

function flattenFirings(firing: Json | null): Json[] {
  if (!firing) return [];
  const children = Array.isArray(firing.triggering_firings) ? (firing.triggering_firings as Json[]) : [];
  return [firing, ...children.flatMap(flattenFirings)];
}

/** The first involved resource of `kind` whose id ends in a UUID (Prefect's `_first_resource_of_kind`). */
function firstOfKind(event: ReceivedEvent, kind: string): { id: string; labels: Labels } | null {
  for (const labels of [event.resource, ...event.related] as Labels[]) {
    const resourceId = labels["prefect.resource.id"] ?? "";
    const at = resourceId.lastIndexOf(".");
    if (resourceId.slice(0, at) !== kind) continue;
    const id = resourceId.slice(at + 1);
    return UUID.test(id) ? { id: id.toLowerCase(), labels } : null;
  }
  return null;
}

const STATE_LABELS = ["prefect.state-message", "prefect.state-name", "prefect.state-timestamp", "prefect.state-type"];

/** The run's state as the event saw it (Prefect rebuilds it from the four state labels when present). */
function withEventState(run: Json, labels: Labels): Json {
  if (!STATE_LABELS.every((l) => l in labels)) return run;
  const state = isRecord(run.state) ? run.state : {};
  return {
    ...run,
    state: {
      ...state,
      type: labels["prefect.state-type"],
      name: labels["prefect.state-name"],
      message: labels["prefect.state-message"],
      timestamp: labels["prefect.state-timestamp"],
    },
  };
}

async function lazyObject(db: Repositories, name: string, event: ReceivedEvent): Promise<{ value: Json | null; kind: string }> {
  const kind = name.replace(/_/g, "-");
  const found = firstOfKind(event, `prefect.${kind}`);
  if (!found) return { value: null, kind };
  switch (name) {
    case "flow_run": {
      const run = await db.flowRuns.get(found.id);
      return { value: run ? withEventState(flowRunResponse(run), found.labels) : null, kind };
    }
    case "task_run": {
      const run = await db.taskRuns.get(found.id);
      return { value: run ? withEventState(taskRunResponse(run), found.labels) : null, kind };
    }
    case "flow": {
      const flow = await db.flows.get(found.id);
      return { value: flow ? flowResponse(flow) : null, kind };
    }
    case "deployment": {
      const deployment = await db.deployments.get(found.id);
      return { value: deployment ? deploymentResponse(deployment) : null, kind };
    }
    case "work_pool": {
      const pool = await db.workPools.get(found.id);
      return { value: pool ? workPoolResponse(pool, null) : null, kind };
    }
    case "work_queue": {
      const queue = await db.workQueues.get(found.id);
      return { value: queue ? workQueueResponse(queue, null) : null, kind };
    }
    case "concurrency_limit": {
      const limit = await db.concurrencyLimits.get(found.id);
      return { value: limit ? (limitV2Response(limit) as unknown as Json) : null, kind };
    }
    default:
      return { value: null, kind };
  }
}

/** Workspace variables by name (Prefect reads at most 1000). */
async function variablesObject(db: Repositories): Promise<Json> {
  const out: Json = {};
  for (let offset = 0; offset < 1000; offset += 200) {
    const page = await db.variables.read({ limit: 200, offset });
    for (const v of page) out[v.name] = v.value ?? null;
    if (page.length < 200) break;
  }
  return out;
}

/** The context and the kinds of its objects (for the `ui_url` filters) for rendering `templates`. */
export async function actionTemplateContext(
  db: Repositories,
  templates: readonly string[],
  source: TemplateSource,
  uiUrl: string | null = null,
): Promise<{ context: Json; kinds: Record<string, string> }> {
  const automation = automationResponse(source.automation);
  const kinds: Record<string, string> = { [automation.id]: "automation" };
  const events = flattenFirings(source.firing)
    .map((f) => f.triggering_event)
    .filter(isRecord);
  const context: Json = {
    automation,
    event: source.triggeringEvent ? eventObject(source.triggeringEvent, uiUrl) : null,
    labels: diver(source.triggeringLabels),
    firing: source.firing,
    firings: flattenFirings(source.firing),
    events: events.map((e) => eventObject(e as unknown as ReceivedEvent, uiUrl)),
  };
  if (source.triggeringEvent) kinds[source.triggeringEvent.id] = "event";
  for (const e of events) if (typeof e.id === "string") kinds[e.id] = "event";
  const event = source.triggeringEvent;
  if (event) {
    for (const name of lazyNamesIn(templates)) {
      if (name === "variables") {
        context.variables = await variablesObject(db);
        continue;
      }
      const { value, kind } = await lazyObject(db, name, event);
      context[name] = value;
      if (value && typeof value.id === "string") kinds[value.id] = kind;
    }
  }
  return { context, kinds };
}

/**
 * Renders an action's templates (Prefect's `JinjaTemplateAction._render`): one context for all of
 * them; a failure is a TemplateRenderError naming the template.
 */
export async function renderActionTemplates(db: Repositories, templates: readonly string[], source: TemplateSource, uiUrl: string | null = null): Promise<string[]> {
  const { context, kinds } = await actionTemplateContext(db, templates, source, uiUrl);
  const options: RenderOptions = { uiUrl, kinds };
  const out: string[] = [];
  for (const template of templates) out.push(await renderTemplate(template, context, options));
  return out;
}

/** The `jinja` templates inside hydration values. */
function jinjaTemplates(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(jinjaTemplates);
  if (!isRecord(value)) return [];
  const own = value.__prefect_kind === "jinja" && typeof value.template === "string" ? [value.template] : [];
  return [...own, ...Object.values(value).flatMap(jinjaTemplates)];
}

/**
 * Prefect's `RunDeployment.render_parameters`: v1 templates upgraded, then the parameters hydrated
 * with workspace variables and their templates rendered with the action's context. A problem is a
 * HydrationError (Prefect's "Unable to create flow run from deployment: ...").
 */
export async function renderRunDeploymentParameters(
  db: Repositories,
  parameters: Json | null,
  source: TemplateSource,
  uiUrl: string | null = null,
): Promise<Json> {
  const upgraded = upgradeV1Templates(structuredClone(parameters ?? {}));
  const { context, kinds } = await actionTemplateContext(db, jinjaTemplates(upgraded), source, uiUrl);
  return hydrate(upgraded, workspaceVariables(db), { context, options: { uiUrl, kinds } });
}
