/**
 * What an infrastructure exit code means, in Prefect's words (`_internal/infrastructure_exit_codes`):
 * the explanation that goes into state messages and logs, a hint on what to do, and the level the
 * exit is logged at. Codes follow Python's convention: minus the signal number for a signal.
 */
import { LogLevel } from "./run-logs.js";

export interface ExitInfo {
  readonly explanation: string;
  readonly resolution: string;
  readonly level: number;
}

const KNOWN: Record<number, ExitInfo> = {
  0: { explanation: "Process exited cleanly.", resolution: "No action needed.", level: LogLevel.INFO },
  [-9]: {
    explanation:
      "Process exited due to a SIGKILL signal. Typically caused by the operating system terminating the process for exceeding memory limits, or by manual cancellation.",
    resolution:
      "Check whether the flow run exceeded its memory allocation. If running in a container, increase the memory limit. If this was intentional cancellation, no action is needed.",
    level: LogLevel.INFO,
  },
  [-15]: {
    explanation: "Process exited due to a SIGTERM signal. Typically caused by graceful shutdown or manual cancellation.",
    resolution: "If this was caused by cancellation, no action is needed. Otherwise, check for infrastructure scaling events or deployment rollovers.",
    level: LogLevel.INFO,
  },
  1: {
    explanation: "Process exited with a general error.",
    resolution: "Check the flow run logs for an unhandled exception or assertion error.",
    level: LogLevel.ERROR,
  },
  126: {
    explanation: "Command found but not executable (permission denied).",
    resolution: "Check file permissions on the entrypoint script or binary. Ensure the file has the executable bit set.",
    level: LogLevel.ERROR,
  },
  127: {
    explanation: "Command not found.",
    resolution: "Verify that the entrypoint command or script is installed in the execution environment. Check your PATH and container image contents.",
    level: LogLevel.ERROR,
  },
  137: {
    explanation: "Process was killed, likely due to an out-of-memory (OOM) condition.",
    resolution:
      "Increase the memory allocation for the flow run infrastructure. In Kubernetes, raise the memory limit in the job template. In ECS, increase the task memory.",
    level: LogLevel.ERROR,
  },
  143: {
    explanation: "Process received SIGTERM via the container runtime. This is the containerized equivalent of exit code -15.",
    resolution: "If this was caused by cancellation or a scaling event, no action is needed. Otherwise, check for pod evictions or ECS task stops.",
    level: LogLevel.INFO,
  },
  247: {
    explanation: "Process was terminated due to high memory usage.",
    resolution: "Increase the memory allocation for the flow run infrastructure. Consider profiling memory usage to find the source of consumption.",
    level: LogLevel.ERROR,
  },
};

export function exitInfo(code: number): ExitInfo {
  return (
    KNOWN[code] ?? {
      explanation: "Process exited with an unexpected status code.",
      resolution: "Check the flow run logs and infrastructure logs for more details.",
      level: LogLevel.ERROR,
    }
  );
}

