/** Work pools, their queues and workers, and the runs workers get, as Prefect's API shows them. */
import { type FlowRun, secondsBetween, type SlotHolder, type Timestamp, type Worker, type WorkPool, type WorkQueue } from "@prefect/db";
import { flowRunResponse } from "../flow-runs/responses.js";

/** Prefect's WorkPoolResponse: `active_slots` only for pools with a limit. */
export function workPoolResponse(pool: WorkPool, activeSlots: number | null, omitResultStorageBlock = false) {
  const { default_result_storage_block_id, ...storage } = pool.storage_configuration;
  return {
    id: pool.id,
    created: pool.created,
    updated: pool.updated,
    name: pool.name,
    description: pool.description,
    type: pool.type,
    base_job_template: pool.base_job_template,
    is_paused: pool.is_paused,
    concurrency_limit: pool.concurrency_limit,
    status: pool.status,
    default_queue_id: pool.default_queue_id,
    storage_configuration: omitResultStorageBlock ? storage : { ...storage, default_result_storage_block_id },
    active_slots: pool.concurrency_limit === null ? null : activeSlots,
  };
}

/** Prefect's WorkQueueResponse: `active_slots` only for queues with a limit. */
export function workQueueResponse(queue: WorkQueue, activeSlots: number | null) {
  return {
    id: queue.id,
    created: queue.created,
    updated: queue.updated,
    name: queue.name,
    description: queue.description,
    is_paused: queue.is_paused,
    concurrency_limit: queue.concurrency_limit,
    priority: queue.priority,
    work_pool_id: queue.work_pool_id,
    filter: queue.filter,
    last_polled: queue.last_polled,
    work_pool_name: queue.work_pool_name,
    status: queue.status,
    active_slots: queue.concurrency_limit === null ? null : activeSlots,
  };
}

/** Prefect's WorkerResponse. */
export function workerResponse(worker: Worker) {
  return {
    id: worker.id,
    created: worker.created,
    updated: worker.updated,
    name: worker.name,
    work_pool_id: worker.work_pool_id,
    last_heartbeat_time: worker.last_heartbeat_time,
    heartbeat_interval_seconds: worker.heartbeat_interval_seconds,
    status: worker.status,
  };
}

/** A flow run as Prefect's core FlowRun shows it (what workers get: no pool fields). */
export function coreFlowRunResponse(run: FlowRun, at: Timestamp) {
  const { work_pool_id: _pool, work_pool_name: _poolName, ...core } = flowRunResponse(run, at);
  return core;
}

/** Prefect's FlowRunSlotSummary. */
export function slotSummary(holder: SlotHolder, at: Timestamp) {
  return {
    id: holder.id,
    name: holder.name,
    state_type: holder.state_type,
    state_name: holder.state_name,
    start_time: holder.start_time,
    state_timestamp: holder.state_timestamp,
    time_in_current_state: holder.state_timestamp === null ? null : secondsBetween(at, holder.state_timestamp),
  };
}

/** Prefect's WorkQueue (core schema, without the pool's name, status or slots), as `work_queue_check` lists them. */
export function coreWorkQueueResponse(queue: WorkQueue) {
  const { work_pool_name: _pool, status: _status, active_slots: _slots, ...core } = workQueueResponse(queue, null);
  return core;
}
