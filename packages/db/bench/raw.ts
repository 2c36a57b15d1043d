/**
 * The benchmark's baselines: the same SQL statements @prefect/db issues for each hot path, written out
 * by hand and run straight on the driver (prepared once, values encoded inline).
 */
import { randomUUID } from "node:crypto";
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { now, randomRunName } from "@prefect/db";

export interface RawPaths {
  createRun(flowId: string): Promise<void> | void;
  setState(runId: string): Promise<void> | void;
  insertLogs(logs: readonly { name: string; level: number; message: string; timestamp: string; flow_run_id: string }[]): Promise<void> | void;
  insertEvents(events: readonly RawEvent[]): Promise<void> | void;
}

interface RawEvent {
  id: string;
  occurred: string;
  event: string;
  resource: Record<string, string>;
  related: Record<string, string>[];
  payload: Record<string, unknown>;
}

const RUN_COLUMNS =
  "id, created, updated, name, state_type, state_name, state_timestamp, run_count, expected_start_time, next_scheduled_start_time, start_time, end_time, total_run_time, flow_id, deployment_id, work_queue_name, flow_version, deployment_version, parameters, idempotency_key, context, empirical_policy, tags, labels, created_by, infrastructure_pid, job_variables, infrastructure_document_id, parent_task_run_id, auto_scheduled, state_id, work_queue_id";
const STATE_COLUMNS = "id, created, updated, flow_run_id, type, timestamp, name, message, state_details, data, result_artifact_id";
const LOG_COLUMNS = "id, created, updated, name, level, flow_run_id, task_run_id, message, timestamp";
const EVENT_COLUMNS = "id, created, updated, occurred, event, resource_id, resource, related_resource_ids, related, payload, received, recorded, follows, position";
const RESOURCE_COLUMNS = "id, created, updated, occurred, resource_id, resource_role, resource, event_id";

function runValues(flowId: string, stateId: string, ts: string, bool: (b: boolean) => unknown): unknown[] {
  return [
    randomUUID(), ts, ts, randomRunName(), "PENDING", "Pending", ts, 0, null, null, null, null, 0, flowId, null, null, null, null,
    "{}", null, "{}", "{}", JSON.stringify(["bench"]), null, null, null, "{}", null, null, bool(false), stateId, null,
  ];
}

function stateValues(stateId: string, runId: string, type: string, name: string, ts: string, details: unknown): unknown[] {
  return [stateId, ts, ts, runId, type, ts, name, null, JSON.stringify(details), null, null];
}

function logValues(logs: Parameters<RawPaths["insertLogs"]>[0]): unknown[] {
  const ts = now();
  return logs.flatMap((l) => [randomUUID(), ts, ts, l.name, l.level, l.flow_run_id, null, l.message, l.timestamp]);
}

/** The events' rows, numbered after `head` (the highest position stored). */
function eventRows(events: readonly RawEvent[], head: number) {
  const ts = now();
  const eventParams = events.flatMap((e, i) => [
    e.id, ts, ts, e.occurred, e.event, e.resource["prefect.resource.id"], JSON.stringify(e.resource),
    JSON.stringify(e.related.map((r) => r["prefect.resource.id"])), JSON.stringify(e.related), JSON.stringify(e.payload), ts, ts, null, head + i + 1,
  ]);
  const resourceParams = events.flatMap((e) =>
    [{ ...e.resource, "prefect.resource.role": "" }, ...e.related].flatMap(({ "prefect.resource.role": role, ...resource }) => [
      randomUUID(), ts, ts, e.occurred, resource["prefect.resource.id"], role ?? "", JSON.stringify(resource), e.id,
    ]),
  );
  return { eventParams, resourceParams, resourceCount: resourceParams.length / 8 };
}

const tuples = (rows: number, columns: number, mark: (i: number) => string) =>
  Array.from({ length: rows }, (_, r) => `(${Array.from({ length: columns }, (_, c) => mark(r * columns + c + 1)).join(", ")})`).join(", ");

export function sqliteRaw(db: BetterSqlite3.Database): RawPaths {
  const q = () => "?";
  const deferKeys = db.prepare("PRAGMA defer_foreign_keys = ON");
  const insertRun = db.prepare(`INSERT INTO flow_run (${RUN_COLUMNS}) VALUES (${tuples(1, 32, q).slice(1, -1)}) ON CONFLICT (flow_id, idempotency_key) DO NOTHING RETURNING id`);
  const insertState = db.prepare(`INSERT INTO flow_run_state (${STATE_COLUMNS}) VALUES (${tuples(1, 11, q).slice(1, -1)}) RETURNING id`);
  const insertStateOnce = db.prepare(
    `INSERT INTO flow_run_state (${STATE_COLUMNS}) VALUES (${tuples(1, 11, q).slice(1, -1)}) ON CONFLICT (flow_run_id, "timestamp") DO NOTHING RETURNING id`,
  );
  const movePointer = db.prepare(`UPDATE flow_run SET state_id = ?, state_type = ?, state_name = ?, state_timestamp = ?, updated = ?, run_count = ? WHERE id = ?`);
  const createRun = db.transaction((flowId: string) => {
    const stateId = randomUUID();
    const ts = now();
    const run = runValues(flowId, stateId, ts, (b) => (b ? 1 : 0));
    deferKeys.run();
    if (insertRun.all(run).length > 0) insertState.all(stateValues(stateId, run[0] as string, "PENDING", "Pending", ts, {}));
  });
  const setState = db.transaction((runId: string) => {
    const stateId = randomUUID();
    const ts = now();
    if (insertStateOnce.all(stateValues(stateId, runId, "RUNNING", "Running", ts, { flow_run_id: runId })).length > 0) {
      movePointer.run(stateId, "RUNNING", "Running", ts, now(), 1, runId);
    }
  });
  const logStatement = db.prepare(`INSERT INTO log (${LOG_COLUMNS}) VALUES ${tuples(100, 9, q)}`);
  const eventStatement = db.prepare(`INSERT INTO events (${EVENT_COLUMNS}) VALUES ${tuples(50, 14, q)} ON CONFLICT (id) DO NOTHING RETURNING id`);
  const resourceStatement = db.prepare(`INSERT INTO event_resources (${RESOURCE_COLUMNS}) VALUES ${tuples(150, 8, q)}`);
  const headStatement = db.prepare("SELECT COALESCE(MAX(position), 0) AS head FROM events");
  const insertEvents = db.transaction((events: readonly RawEvent[]) => {
    const { eventParams, resourceParams } = eventRows(events, (headStatement.get() as { head: number }).head);
    eventStatement.all(eventParams);
    resourceStatement.run(resourceParams);
  });
  return {
    createRun: (flowId) => createRun.immediate(flowId),
    setState: (runId) => setState.immediate(runId),
    insertLogs: (logs) => void logStatement.run(logValues(logs)),
    insertEvents: (events) => insertEvents.immediate(events),
  };
}

export function postgresRaw(pool: pg.Pool): RawPaths {
  const d = (i: number) => `$${i}`;
  const createText =
    `WITH r AS (INSERT INTO flow_run (${RUN_COLUMNS}) VALUES (${tuples(1, 32, d).slice(1, -1)}) ON CONFLICT (flow_id, idempotency_key) DO NOTHING RETURNING id), ` +
    `s AS (INSERT INTO flow_run_state (${STATE_COLUMNS}) SELECT $33::uuid, $34::timestamptz, $35::timestamptz, $36::uuid, $37::state_type, $38::timestamptz, $39::text, $40::text, $41::jsonb, $42::jsonb, $43::uuid FROM r RETURNING id) ` +
    "SELECT count(*) AS inserted FROM r";
  const stateText =
    `WITH s AS (INSERT INTO flow_run_state (${STATE_COLUMNS}) VALUES (${tuples(1, 11, d).slice(1, -1)}) ON CONFLICT (flow_run_id, "timestamp") DO NOTHING RETURNING id) ` +
    "UPDATE flow_run AS run SET state_id = $12, state_type = $13, state_name = $14, state_timestamp = $15, updated = $16, run_count = $17 FROM s WHERE run.id = $18 RETURNING run.id";
  const logText = `INSERT INTO log (${LOG_COLUMNS}) VALUES ${tuples(100, 9, d)}`;
  const eventText = `INSERT INTO events (${EVENT_COLUMNS}) VALUES ${tuples(50, 14, d)} ON CONFLICT (id) DO NOTHING RETURNING id`;
  const resourceText = `INSERT INTO event_resources (${RESOURCE_COLUMNS}) VALUES ${tuples(150, 8, d)}`;
  return {
    async createRun(flowId) {
      const stateId = randomUUID();
      const ts = now();
      const run = runValues(flowId, stateId, ts, (b) => b);
      await pool.query({ name: "raw_create_run", text: createText, values: [...run, ...stateValues(stateId, run[0] as string, "PENDING", "Pending", ts, {})] });
    },
    async setState(runId) {
      const stateId = randomUUID();
      const ts = now();
      await pool.query({
        name: "raw_set_state",
        text: stateText,
        values: [...stateValues(stateId, runId, "RUNNING", "Running", ts, { flow_run_id: runId }), stateId, "RUNNING", "Running", ts, now(), 1, runId],
      });
    },
    async insertLogs(logs) {
      await pool.query({ name: "raw_logs", text: logText, values: logValues(logs) });
    },
    async insertEvents(events) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        await client.query({ name: "raw_events_lock", text: "SELECT pg_advisory_xact_lock(72707369455179)" });
        const head = await client.query({ name: "raw_events_head", text: "SELECT COALESCE(MAX(position), 0) AS head FROM events" });
        const { eventParams, resourceParams } = eventRows(events, Number(head.rows[0].head));
        await client.query({ name: "raw_events", text: eventText, values: eventParams });
        await client.query({ name: "raw_resources", text: resourceText, values: resourceParams });
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw error;
      } finally {
        client.release();
      }
    },
  };
}
