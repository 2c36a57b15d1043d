/**
 * The graphs of a flow run Prefect's UI draws: its task runs with their upstream dependencies (v1),
 * and (v2) the task runs and subflow runs as nodes, with edges, artifacts and the run's states.
 */
import type { Artifact, FlowRun, Repositories, State, TaskRun } from "@prefect/db";
import { badRequest } from "../../prefect/errors.js";
import { isRecord } from "../../prefect/json.js";
import { stateResponse } from "../../prefect/run-responses.js";

/** Prefect's PREFECT_API_MAX_FLOW_RUN_GRAPH_NODES / _ARTIFACTS defaults. */
const MAX_GRAPH_NODES = 10_000;
const MAX_GRAPH_ARTIFACTS = 10_000;

/** Prefect's DependencyResult for one task run of the graph (v1). */
export function dependencyResult(task: TaskRun, at: string) {
  const upstream = new Map<string, { input_type: "task_run"; id: string }>();
  for (const inputs of Object.values(task.task_inputs)) {
    if (!Array.isArray(inputs)) continue;
    for (const input of inputs) {
      if (isRecord(input) && input.input_type === "task_run" && typeof input.id === "string") upstream.set(input.id, { input_type: "task_run", id: input.id });
    }
  }
  const running = task.state_type === "RUNNING" && task.state_timestamp ? Math.max(0, (Date.parse(at) - Date.parse(task.state_timestamp)) / 1000) : 0;
  return {
    id: task.id,
    name: task.name,
    upstream_dependencies: [...upstream.values()],
    state: task.state ? stateResponse(task.state) : null,
    expected_start_time: task.expected_start_time,
    start_time: task.start_time,
    end_time: task.end_time,
    total_run_time: task.total_run_time,
    estimated_run_time: task.total_run_time + running,
    untrackable_result: task.state?.state_details.untrackable_result === true,
  };
}

interface GraphNode {
  kind: "flow-run" | "task-run";
  id: string;
  label: string;
  state_type: State["type"] | null;
  start_time: string;
  end_time: string | null;
  /** Upstream ids this node's inputs refer to, and the ids of the tasks it runs inside (`__parents__`). */
  upstream: string[];
  encapsulating: string[];
}

/**
 * Prefect's graph (v2) of a flow run: its task runs, a subflow run in place of the task run that
 * tracks it, edges from task inputs, artifacts and the run's states. Only nodes that have started
 * (or are expected to) are shown, and of those the ones still running or ended since `since`.
 */
export async function flowRunGraph(db: Repositories, run: FlowRun, since: string | null) {
  const tasks = await db.taskRuns.read({ task_runs: { flow_run_id: { any_: [run.id] } } });
  const subflows = tasks.length > 0 ? await db.flowRuns.read({ flow_runs: { parent_flow_run_id: { any_: [run.id] } } }) : [];
  const flowIds = [...new Set(subflows.map((s) => s.flow_id))];
  const flows = flowIds.length > 0 ? await db.flows.read({ flows: { id: { any_: flowIds } } }) : [];
  const flowNames = new Map(flows.map((f) => [f.id, f.name]));
  const subflowsByTask = new Map<string, FlowRun[]>();
  for (const subflow of subflows) {
    if (!subflow.parent_task_run_id) continue;
    subflowsByTask.set(subflow.parent_task_run_id, [...(subflowsByTask.get(subflow.parent_task_run_id) ?? []), subflow]);
  }

  const nodes: GraphNode[] = [];
  for (const task of tasks) {
    const upstream: string[] = [];
    const encapsulating: string[] = [];
    for (const [key, inputs] of Object.entries(task.task_inputs)) {
      if (!Array.isArray(inputs)) continue;
      for (const input of inputs) {
        if (isRecord(input) && typeof input.id === "string") (key === "__parents__" ? encapsulating : upstream).push(input.id.toLowerCase());
      }
    }
    const runs: (FlowRun | null)[] = subflowsByTask.get(task.id) ?? [null];
    for (const subflow of runs) {
      const start = subflow?.start_time ?? subflow?.expected_start_time ?? task.start_time ?? task.expected_start_time;
      if (!start) continue;
      const flowName = subflow ? flowNames.get(subflow.flow_id) : undefined;
      nodes.push({
        kind: subflow ? "flow-run" : "task-run",
        id: subflow?.id ?? task.id,
        label: subflow && flowName !== undefined ? `${flowName} / ${subflow.name}` : task.name,
        state_type: subflow?.state_type ?? task.state_type,
        start_time: start,
        end_time: subflow?.end_time ?? task.end_time ?? (task.state_type === "COMPLETED" ? task.expected_start_time : null),
        upstream,
        encapsulating,
      });
    }
  }

  const byId = new Map(nodes.map((n) => [n.id, n]));
  const byStart = (a: GraphNode, b: GraphNode) => (a.start_time < b.start_time ? -1 : a.start_time > b.start_time ? 1 : 0);
  const edges = (ids: Iterable<string>) =>
    [...new Set(ids)]
      .map((id) => byId.get(id))
      .filter((n): n is GraphNode => n !== undefined)
      .sort(byStart)
      .map((n) => ({ id: n.id }));
  const children = new Map<string, string[]>();
  for (const node of nodes) {
    for (const parent of new Set(node.upstream)) {
      if (byId.has(parent)) children.set(parent, [...(children.get(parent) ?? []), node.id]);
    }
  }

  const shown = nodes
    .filter((n) => n.state_type !== null && (since === null || n.end_time === null || n.end_time >= since))
    .sort((a, b) => byStart(a, b) || (a.end_time === b.end_time ? 0 : a.end_time === null ? 1 : b.end_time === null ? -1 : a.end_time < b.end_time ? -1 : 1));
  if (shown.length > MAX_GRAPH_NODES) throw badRequest(`The graph of flow run ${run.id} has more than ${MAX_GRAPH_NODES} nodes.`);

  const artifacts = await graphArtifacts(db, run.id);
  const graphNodes = shown.map((node) => {
    const parents = edges(node.upstream);
    return [
      node.id,
      {
        kind: node.kind,
        id: node.id,
        label: node.label,
        state_type: node.state_type,
        start_time: node.start_time,
        end_time: node.end_time,
        parents,
        children: edges(children.get(node.id) ?? []),
        encapsulating: edges(node.encapsulating),
        artifacts: artifacts.get(node.id) ?? [],
      },
    ] as const;
  });
  const states = await db.flowRuns.readStates(run.id);
  return {
    start_time: run.start_time ?? run.expected_start_time,
    end_time: run.end_time,
    root_node_ids: graphNodes.filter(([, node]) => node.parents.length === 0).map(([id]) => id),
    nodes: graphNodes,
    artifacts: artifacts.get(null) ?? [],
    states: states.map((s) => ({ id: s.id, timestamp: s.timestamp, type: s.type, name: s.name })),
  };
}

/** The run's artifacts (results excluded) for the graph, oldest first, by task run (null: the flow run's own). */
async function graphArtifacts(db: Repositories, flowRunId: string) {
  const all = await db.artifacts.read({ artifacts: { flow_run_id: { any_: [flowRunId] } } });
  const kept = all
    .filter((a) => a.type !== null && a.type !== "result")
    .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1))
    .slice(0, MAX_GRAPH_ARTIFACTS);
  const latest = new Map<string, string | null>();
  for (const key of new Set(kept.map((a) => a.key).filter((k): k is string => k !== null))) {
    latest.set(key, (await db.artifacts.getLatest(key))?.latest_id ?? null);
  }
  const byTask = new Map<string | null, ReturnType<typeof graphArtifact>[]>();
  for (const artifact of kept) {
    const entry = graphArtifact(artifact, artifact.key === null || latest.get(artifact.key) === artifact.id);
    byTask.set(artifact.task_run_id, [...(byTask.get(artifact.task_run_id) ?? []), entry]);
  }
  return byTask;
}

function graphArtifact(artifact: Artifact, isLatest: boolean) {
  return {
    id: artifact.id,
    created: artifact.created,
    key: artifact.key,
    type: artifact.type,
    is_latest: isLatest,
    // Only progress artifacts carry their data in the graph.
    data: artifact.type === "progress" ? artifact.data : null,
  };
}
