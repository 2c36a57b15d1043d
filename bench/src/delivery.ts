/**
 * Event delivery latency: from the commit of an event to its arrival at an `/api/events/out`
 * subscriber of a server in another process. The bench process stores events one at a time through
 * @prefect/db (as a worker or another server does) and subscribes to the real server, so both times
 * are read on one clock; the server learns of the events from the events table alone.
 */
import { randomUUID } from "node:crypto";
import { loadDatabaseConfig, now, openDatabase } from "@prefect/db";
import WebSocket from "ws";
import { startServer, stopCleanly } from "./apps.js";
import type { ScratchDatabase } from "./scratch.js";
import type { BenchSettings } from "./settings.js";

const EVENT_NAME = "bench.delivery";
/** Pause between two events: latency, not throughput, is measured. */
const GAP_MS = 20;

export interface DeliveryLatency {
  readonly p50: number;
  readonly p99: number;
  readonly events: number;
}

/** A subscriber that calls `arrived(id)` for each event it receives. */
async function subscribe(api: string, arrived: (id: string) => void): Promise<WebSocket> {
  const socket = new WebSocket(`${api.replace(/^http/, "ws")}/events/out`, ["prefect"]);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  const authenticated = new Promise<void>((resolve) => {
    socket.on("message", (raw) => {
      const message = JSON.parse(String(raw)) as { type: string; event?: { id: string } };
      if (message.type === "auth_success") resolve();
      else if (message.type === "event" && message.event) arrived(message.event.id);
    });
  });
  socket.send(JSON.stringify({ type: "auth", token: null }));
  await authenticated;
  const until = new Date(Date.now() + 86_400_000).toISOString();
  socket.send(JSON.stringify({ type: "filter", filter: { event: { name: [EVENT_NAME] }, occurred: { until } }, backfill: false }));
  return socket;
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

export async function deliveryLatency(scratch: ScratchDatabase, settings: BenchSettings): Promise<DeliveryLatency> {
  const server = await startServer({ env: scratch.env });
  const db = await openDatabase(loadDatabaseConfig(scratch.env), { migrate: false });
  const committed = new Map<string, number>();
  const arrived = new Map<string, number>();
  const store = async () => {
    const id = randomUUID();
    await db.events.createMany([{ id, occurred: now(), event: EVENT_NAME, resource: { "prefect.resource.id": "bench.delivery" } }]);
    return id;
  };
  try {
    const socket = await subscribe(server.api, (id) => arrived.set(id, performance.now()));
    try {
      // The subscription is in place once an event arrives: probe until one does.
      while (arrived.size === 0) {
        await store();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const end = performance.now() + settings.seconds * 1000;
      let sent = 0;
      while (performance.now() < end) {
        committed.set(await store(), performance.now());
        sent++;
        await new Promise((resolve) => setTimeout(resolve, GAP_MS));
      }
      const missing = () => [...committed.keys()].filter((id) => !arrived.has(id)).length;
      const deadline = performance.now() + 10_000;
      while (missing() > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      if (missing() > 0) throw new Error(`${missing()} of ${sent} events did not reach the subscriber`);
    } finally {
      socket.close();
    }
  } finally {
    await db.close();
    await stopCleanly(server.child, "The server");
  }
  const sorted = [...committed].map(([id, at]) => arrived.get(id)! - at).sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), events: sorted.length };
}
