/**
 * @prefect/worker: a process worker (Prefect's ProcessWorker) that takes scheduled flow runs from the
 * database through @prefect/db and @prefect/orchestration and runs them as local processes.
 */
export { type ClaimedRun, type ClaimOptions, type ClaimOutcome, claimScheduledFlowRuns } from "./claim.js";
export { EventWriter } from "./events.js";
export { defaultBaseJobTemplate, type ProcessJobConfiguration, resolveJobConfiguration } from "./job-configuration.js";
export { createLogger, logLevelFrom, type WorkerLogger } from "./logger.js";
export { DEFAULT_API_URL, defaultWorkerName, HELP, parseArguments, type ParseResult, type WorkerOptions } from "./options.js";
export { splitCommand } from "./shlex.js";
export { applyValues } from "./templating.js";
export { ProcessWorker, type WorkerEnvironment } from "./worker.js";
