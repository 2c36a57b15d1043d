/**
 * Floors that run in the bench's own process: the raw driver writing the rows the server writes,
 * copied from rows it stored (a run with its first state, a batch of logs, a batch of events with
 * their resources), as many at once as the backend can take (PostgreSQL: a pool of 10, like the
 * server's; SQLite: one, it has one writer); and the machine's process-spawn rate. The ids the server
 * mints (runs, states, logs, event resources) are time-ordered UUIDs there and here; an event's id is
 * its client's (a random one in the bench's events).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { randomRunName, uuid7 } from "@prefect/db";
import { copies, type Insert, type RawDatabase, type Row } from "./raw.js";

/** Runs `unit` back to back on `concurrency` loops for `seconds`; how many ran, in how long. */
export async function repeatFor(unit: () => Promise<void>, concurrency: number, seconds: number): Promise<{ done: number; seconds: number }> {
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let done = 0;
  const loop = async () => {
    while (performance.now() < deadline) {
      await unit();
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { done, seconds: (performance.now() - start) / 1000 };
}

/** The raw driver writing `unit`s (of `rowsPerUnit` rows each), as many at once as it takes. */
export function rawSide(raw: RawDatabase, unit: () => Insert[], rowsPerUnit: number): (seconds: number) => Promise<{ done: number; seconds: number }> {
  return async (seconds) => {
    const result = await repeatFor(() => raw.insert(unit()), raw.concurrency, seconds);
    return { done: result.done * rowsPerUnit, seconds: result.seconds };
  };
}

async function one(raw: RawDatabase, sql: string, params: readonly unknown[], what: string): Promise<Row> {
  const [row] = await raw.rows(sql, params);
  if (!row) throw new Error(`no ${what} to copy`);
  return row;
}

/** A flow run and its first state, as the server stored them. */
export async function runTemplate(raw: RawDatabase, runId: string): Promise<{ run: Row; state: Row }> {
  const run = await one(raw, "SELECT * FROM flow_run WHERE id = ?", [runId], "flow run");
  const state = await one(raw, "SELECT * FROM flow_run_state WHERE id = ?", [run.state_id], "flow run state");
  return { run, state };
}

/** A new run with its first state: two rows, one transaction. */
export function runWithState(template: { run: Row; state: Row }): () => Insert[] {
  const runColumns = Object.keys(template.run);
  const stateColumns = Object.keys(template.state);
  return () => {
    const runId = uuid7();
    const stateId = uuid7();
    return [
      { table: "flow_run", columns: runColumns, rows: copies(template.run, 1, () => ({ id: runId, name: randomRunName(), state_id: stateId })) },
      { table: "flow_run_state", columns: stateColumns, rows: copies(template.state, 1, () => ({ id: stateId, flow_run_id: runId })) },
    ];
  };
}

/** `size` log rows copied from one the server stored. */
export async function logBatch(raw: RawDatabase, size: number): Promise<() => Insert[]> {
  const template = await one(raw, "SELECT * FROM log LIMIT 1", [], "log");
  const columns = Object.keys(template);
  return () => [{ table: "log", columns, rows: copies(template, size, () => ({ id: uuid7() })) }];
}

/**
 * Positions for the floor's events: counting down from far below zero, so they never meet the
 * positions the server gives (counting up from 1) and its event readers, which follow positions
 * upward, never pick the floor's rows up. The floor skips the server's numbering (a lock and the
 * head read in each transaction), which keeps it a floor.
 */
let floorPosition = -Date.now() * 1000;

/** `size` events named `name`, each with the resource rows the server stored for one of them. */
export async function eventBatch(raw: RawDatabase, name: string, size: number): Promise<() => Insert[]> {
  const event = await one(raw, "SELECT * FROM events WHERE event = ? LIMIT 1", [name], "event");
  const resources = await raw.rows("SELECT * FROM event_resources WHERE event_id = ?", [event.id]);
  if (resources.length === 0) throw new Error("no event resources to copy");
  const eventColumns = Object.keys(event);
  const resourceColumns = Object.keys(resources[0]!);
  return () => {
    const ids = Array.from({ length: size }, () => randomUUID());
    return [
      { table: "events", columns: eventColumns, rows: copies(event, size, (i) => ({ id: ids[i], position: floorPosition-- })) },
      {
        table: "event_resources",
        columns: resourceColumns,
        rows: ids.flatMap((eventId) => resources.flatMap((resource) => copies(resource, 1, () => ({ id: uuid7(), event_id: eventId })))),
      },
    ];
  };
}

/** How many `true` processes the machine starts and reaps per second, `concurrency` at a time. */
export async function spawnsPerSecond(concurrency: number, seconds: number): Promise<number> {
  const spawnTrue = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn("true", [], { stdio: "ignore" });
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`true exited with ${code}`))));
    });
  await repeatFor(spawnTrue, concurrency, Math.min(0.5, seconds / 4));
  const { done, seconds: took } = await repeatFor(spawnTrue, concurrency, seconds);
  return done / took;
}
