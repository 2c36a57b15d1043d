/** A flow run's logs as the CSV file Prefect's download streams. */
import type { Log, Repositories } from "@prefect/db";
import { pythonTimestamp } from "../../prefect/python.js";

/** Logs read per page when downloading them (Prefect's FLOW_RUN_LOGS_DOWNLOAD_PAGE_LIMIT). */
const LOG_PAGE = 1000;

/** The CSV Prefect's download streams: a header, then one row per log of the run, oldest first. */
export async function* logLines(db: Repositories, flowRunId: string): AsyncGenerator<string> {
  yield csvRow(["timestamp", "level", "flow_run_id", "task_run_id", "message"]);
  for (let offset = 0; ; offset += LOG_PAGE) {
    const logs = await db.logs.read({ filter: { flow_run_id: { any_: [flowRunId] } }, sort: "TIMESTAMP_ASC", limit: LOG_PAGE, offset });
    if (logs.length === 0) return;
    yield logs.map(logRow).join("");
  }
}

function logRow(log: Log): string {
  return csvRow([pythonTimestamp(log.timestamp), String(log.level), log.flow_run_id ?? "", log.task_run_id ?? "", log.message]);
}

/** A row as Python's csv.writer writes it (minimal quoting, CRLF). */
function csvRow(fields: string[]): string {
  return `${fields.map((f) => (/[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f)).join(",")}\r\n`;
}
