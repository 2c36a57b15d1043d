/**
 * Flow run inputs: keyed values sent to a paused or suspended flow run, created once per key,
 * filtered by key prefix, read, deleted.
 */
import { AlreadyExistsError, type FlowRunInput, NotFoundError, type Repositories } from "@prefect/db";
import { conflict, notFound } from "../../prefect/errors.js";

const NOT_FOUND = "Flow run input not found";

export async function createFlowRunInput(db: Repositories, input: { flow_run_id: string; key: string; value: string; sender: string | null }): Promise<void> {
  try {
    await db.flowRunInputs.create(input);
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw conflict("A flow run input with this key already exists.");
    if (error instanceof NotFoundError) throw notFound("Flow run not found");
    throw error;
  }
}

export const filterFlowRunInputs = (db: Repositories, flowRunId: string, options: { prefix: string; limit: number; exclude_keys: string[] }) =>
  db.flowRunInputs.filter(flowRunId, options);

export async function readFlowRunInput(db: Repositories, flowRunId: string, key: string): Promise<FlowRunInput> {
  const input = await db.flowRunInputs.get(flowRunId, key);
  if (!input) throw notFound(NOT_FOUND);
  return input;
}

export async function deleteFlowRunInput(db: Repositories, flowRunId: string, key: string): Promise<void> {
  try {
    await db.flowRunInputs.delete(flowRunId, key);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    throw error;
  }
}
