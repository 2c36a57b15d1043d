/**
 * The `prefect.flow-run.<StateName>` event Prefect's InstrumentFlowRunStateTransitions emits for an
 * accepted or rejected-with-a-state flow-run transition (`server/models/events.py`): the state's id
 * is the event's id, the run is the resource, its flow, deployment, work queue, work pool, parent
 * task run, tags and creator are the related resources.
 */
import { type FlowRun, type FlowRunRelated, type RelatedIds, secondsBetween } from "@prefect/db";
import type { FlowOrchestrationContext, OrchestrationEvent } from "./context.js";
import type { OrchestrationState } from "./states.js";
import { isoformat, isPlainObject } from "./util.js";

/** Prefect's TRUNCATE_STATE_MESSAGES_AT. */
const TRUNCATE_STATE_MESSAGES_AT = 100_000;
/** Events follow the previous state's event when the two are less than 5 minutes apart. */
const TIGHT_TIMING_SECONDS = 5 * 60;

/** Prefect's `truncated_to`: "" for no text; long text keeps its head and tail around a marker. */
export function truncatedTo(length: number, value: string | null | undefined): string {
  if (!value) return "";
  const chars = [...value];
  if (chars.length <= length) return value;
  const half = Math.floor(length / 2);
  const beginning = chars.slice(0, half).join("");
  const end = chars.slice(chars.length - half).join("");
  const omitted = chars.length - 2 * half;
  const proposed = `${beginning}...${omitted} additional characters...${end}`;
  return [...proposed].length < chars.length ? proposed : value;
}

/** Prefect's `state_payload`: the essential string parts of a state. */
export function statePayload(state: OrchestrationState | null): Record<string, string> | null {
  if (!state) return null;
  const payload: Record<string, string> = { type: state.type };
  if (state.name) payload.name = state.name;
  if (state.message) payload.message = truncatedTo(TRUNCATE_STATE_MESSAGES_AT, state.message);
  if (state.type === "PAUSED") payload.pause_reschedule = String(state.state_details.pause_reschedule);
  return payload;
}

interface ResourceData {
  readonly id: string;
  readonly name: string;
  readonly tags: readonly string[];
  readonly role: string;
  readonly type?: string;
}

const asRow = (row: { id: string; name: string; tags?: readonly string[] | null }) => ({ id: row.id, name: row.name, tags: row.tags ?? [] });

/** Whether `ids` are the ones `run` points at now. */
const sameIds = (ids: RelatedIds, run: FlowRun) =>
  ids.flow_id === run.flow_id &&
  ids.deployment_id === (run.deployment_id ?? null) &&
  ids.work_queue_id === (run.work_queue_id ?? null) &&
  ids.parent_task_run_id === (run.parent_task_run_id ?? null);

/**
 * The rows the run's events name: as read with the run in this transaction; else the flow and
 * deployment the caller has just read as they are, and everything else read in one statement.
 */
async function relatedRows(context: FlowOrchestrationContext, run: FlowRun): Promise<FlowRunRelated> {
  const prefetched = await context.prefetchedRelated;
  if (prefetched && sameIds(prefetched.ids, run)) {
    const { ids: _ids, ...related } = prefetched;
    return related;
  }
  const { known } = context;
  const flow = known.flow?.id === run.flow_id ? known.flow : undefined;
  const deployment = !run.deployment_id ? null : known.deployment?.id === run.deployment_id ? known.deployment : undefined;
  if (flow !== undefined && deployment !== undefined && !run.work_queue_id && !run.parent_task_run_id) {
    return { flow: flow && asRow(flow), deployment: deployment && asRow(deployment), workQueue: null, workPool: null, parentTaskRun: null };
  }
  const read = await context.db.flowRuns.related(run);
  return { ...read, flow: flow === undefined ? read.flow : flow && asRow(flow), deployment: deployment === undefined ? read.deployment : deployment && asRow(deployment) };
}

/** Prefect's `_flow_run_related_resources_from_orm`. */
async function relatedResources(context: FlowOrchestrationContext, run: FlowRun): Promise<Record<string, string>[]> {
  const rows = await relatedRows(context, run);
  const resources: [kind: string, data: ResourceData | null][] = [
    ["flow", rows.flow && { ...rows.flow, role: "flow" }],
    ["deployment", rows.deployment && { ...rows.deployment, role: "deployment" }],
    ["work-queue", rows.workQueue && { ...rows.workQueue, tags: [], role: "work-queue" }],
    ["work-pool", rows.workPool && { ...rows.workPool, tags: [], role: "work-pool" }],
    ["task-run", rows.parentTaskRun && { ...rows.parentTaskRun, role: "task-run" }],
  ];

  const related: Record<string, string>[] = [];
  const tags = new Set<string>(run.tags ?? []);
  for (const [kind, data] of resources) {
    if (!data) continue;
    for (const tag of data.tags) tags.add(tag);
    const resource: Record<string, string> = {
      "prefect.resource.id": `prefect.${kind}.${data.id}`,
      "prefect.resource.role": data.role,
      "prefect.resource.name": data.name,
    };
    if (kind === "work-pool" && data.type !== undefined) resource["prefect.work-pool.type"] = data.type;
    related.push(resource);
  }
  for (const tag of [...tags].sort()) related.push({ "prefect.resource.id": `prefect.tag.${tag}`, "prefect.resource.role": "tag" });
  return [...related, ...provenance(run.created_by)];
}

/** Prefect's `_provenance_as_related_resources`: the deployment or automation that created the run. */
function provenance(createdBy: FlowRun["created_by"]): Record<string, string>[] {
  if (!isPlainObject(createdBy)) return [];
  const kind = createdBy.type === "DEPLOYMENT" ? "deployment" : createdBy.type === "AUTOMATION" ? "automation" : null;
  if (!kind || createdBy.id === null || createdBy.id === undefined) return [];
  const related: Record<string, string> = { "prefect.resource.id": `prefect.${kind}.${String(createdBy.id)}`, "prefect.resource.role": "creator" };
  if (typeof createdBy.display_value === "string" && createdBy.display_value) related["prefect.resource.name"] = createdBy.display_value;
  return [related];
}

/** Prefect's `flow_run_state_change_event`. */
export async function flowRunStateChangeEvent(
  context: FlowOrchestrationContext,
  initial: OrchestrationState | null,
  validated: OrchestrationState,
): Promise<OrchestrationEvent> {
  const run = context.run;
  const tight = initial !== null && Math.abs(secondsBetween(validated.timestamp, initial.timestamp)) < TIGHT_TIMING_SECONDS;
  return {
    id: validated.id,
    occurred: validated.timestamp,
    event: `prefect.flow-run.${validated.name}`,
    resource: {
      "prefect.resource.id": `prefect.flow-run.${run.id}`,
      "prefect.resource.name": run.name,
      "prefect.run-count": String(run.run_count),
      "prefect.state-message": truncatedTo(TRUNCATE_STATE_MESSAGES_AT, validated.message),
      "prefect.state-name": validated.name || "",
      "prefect.state-timestamp": isoformat(validated.timestamp),
      "prefect.state-type": validated.type,
    },
    related: await relatedResources(context, run),
    payload: {
      intended: { from: initial?.type ?? null, to: validated.type },
      initial_state: statePayload(initial),
      validated_state: statePayload(validated),
    },
    follows: tight && initial ? initial.id : null,
  };
}
