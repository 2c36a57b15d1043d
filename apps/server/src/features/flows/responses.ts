/** A flow as Prefect's API shows it. */
import type { Flow } from "@prefect/db";

export function flowResponse(flow: Flow) {
  return { id: flow.id, created: flow.created, updated: flow.updated, name: flow.name, tags: flow.tags, labels: flow.labels ?? {} };
}
