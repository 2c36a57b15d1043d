/**
 * Work pools, their queues and workers, and the scheduled runs workers take from them (Prefect's
 * models/workers.py, models/work_queues.py and the foreman's bookkeeping), one repository per concept:
 * `db.workPools` (pools.ts), `db.workQueues` (queues.ts), `db.workers` (workers.ts) and
 * `db.workerRuns` (claims.ts), over the shared row readers of rows.ts.
 */
export { type PoolSlotHolderOptions, type WorkPoolReadOptions, type WorkPoolRepository, workPoolRepository } from "./pools.js";
export { type PollTimeoutOptions, type WorkQueueReadOptions, type WorkQueueRepository, workQueueRepository } from "./queues.js";
export { type WorkerHealthOptions, type WorkerReadOptions, type WorkerRepository, workerRepository } from "./workers.js";
export { type WorkerRunRepository, workerRunRepository } from "./claims.js";
