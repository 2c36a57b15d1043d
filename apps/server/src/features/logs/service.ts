/** Logs: batched writes from clients and workers, and filtered reads. */
import type { LogCreate, LogReadOptions, Repositories } from "@prefect/db";

export const createLogs = (db: Repositories, logs: readonly LogCreate[]) => db.logs.createMany(logs);

export const readLogs = (db: Repositories, options: LogReadOptions) => db.logs.read(options);
