/**
 * Work pools, their queues and workers, and the scheduled runs workers take from them (Prefect's
 * models/workers.py, models/work_queues.py and the foreman's bookkeeping), one module per concept:
 * pools.ts, queues.ts, workers.ts and claims.ts. `db.workPools` offers all of them together.
 */
import type { RepositoryContext } from "../context.js";
import { type PoolRepository, poolRepository } from "./pools.js";
import { type WorkQueueRepository, workQueueRepository } from "./queues.js";
import { workPoolRows } from "./rows.js";
import { type WorkerRunRepository, workerRunRepository } from "./claims.js";
import { type WorkerRepository, workerRepository } from "./workers.js";

export type { PoolSlotHolderOptions, PoolRepository, WorkPoolReadOptions } from "./pools.js";
export type { PollTimeoutOptions, WorkQueueReadOptions, WorkQueueRepository } from "./queues.js";
export type { WorkerHealthOptions, WorkerReadOptions, WorkerRepository } from "./workers.js";
export type { WorkerRunRepository } from "./claims.js";

export interface WorkPoolRepository extends PoolRepository, WorkQueueRepository, WorkerRepository, WorkerRunRepository {}

export function workPoolRepository(context: RepositoryContext): WorkPoolRepository {
  const rows = workPoolRows(context);
  return {
    ...poolRepository(rows),
    ...workQueueRepository(rows),
    ...workerRepository(rows),
    ...workerRunRepository(context),
  };
}
