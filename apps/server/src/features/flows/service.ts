/** Flows: created once per name, read, updated, deleted one at a time or in bulk. */
import { type Flow, type FlowCreate, type FlowReadOptions, type FlowUpdate, NotFoundError, type Repositories, type RunCriteria } from "@prefect/db";
import { notFound } from "../../prefect/errors.js";

const NOT_FOUND = "Flow not found";

/** The flow with this name, or the new one (`created`). */
export const createFlow = (db: Repositories, input: FlowCreate) => db.flows.create(input);

export async function readFlow(db: Repositories, id: string): Promise<Flow> {
  const flow = await db.flows.get(id);
  if (!flow) throw notFound(NOT_FOUND);
  return flow;
}

export async function readFlowByName(db: Repositories, name: string): Promise<Flow> {
  const flow = await db.flows.getByName(name);
  if (!flow) throw notFound(NOT_FOUND);
  return flow;
}

export const updateFlow = (db: Repositories, id: string, update: FlowUpdate) => db.flows.update(id, update);

export const deleteFlow = (db: Repositories, id: string) => db.flows.delete(id);

export const readFlows = (db: Repositories, options: FlowReadOptions) => db.flows.read(options);

export const countFlows = (db: Repositories, criteria: RunCriteria) => db.flows.count(criteria);

/** A page of the flows, and how many there are in all. */
export async function paginateFlows(db: Repositories, options: FlowReadOptions & { limit: number; offset: number }): Promise<{ flows: Flow[]; count: number }> {
  const { sort: _sort, limit: _limit, offset: _offset, ...criteria } = options;
  const [flows, count] = await Promise.all([db.flows.read(options), db.flows.count(criteria)]);
  return { flows, count };
}

/** Deletes the flows the filter selects (at most `limit`); a flow deleted meanwhile is not reported. */
export async function bulkDeleteFlows(db: Repositories, filter: RunCriteria["flows"], limit: number): Promise<string[]> {
  const flows = await db.flows.read({ flows: filter, limit, sort: "CREATED_DESC" });
  const deleted: string[] = [];
  for (const flow of flows) {
    try {
      await db.flows.delete(flow.id);
      deleted.push(flow.id);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }
  return deleted;
}
