/**
 * Events as Prefect clients send them, each with a resource and 3 related resources, and the two ways
 * they arrive: `POST /api/events` (a batch per request) and the `/api/events/in` websocket (one event
 * per frame, as Prefect's PrefectEventsClient sends them, confirming with a ping every 700 events).
 * The server acknowledges events before it stores them (its event persister writes them in batches),
 * so a measurement only counts events once their rows are in the table.
 */
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import type { RawDatabase } from "./raw.js";

/** PrefectEventsClient's checkpoint_every: a ping (and its pong) after this many events. */
export const WEBSOCKET_CHECKPOINT_EVENTS = 700;

export interface EventShape {
  /** The event name (also how the bench counts its own events in the table). */
  readonly name: string;
  readonly flowRunIds: readonly string[];
  readonly flowId: string;
}

/** One event's JSON, with fresh ids. */
export function eventJson(shape: EventShape, index: number): string {
  const runId = shape.flowRunIds[index % shape.flowRunIds.length];
  return JSON.stringify({
    id: randomUUID(),
    occurred: new Date().toISOString(),
    event: shape.name,
    resource: { "prefect.resource.id": `prefect.task-run.${randomUUID()}`, "prefect.resource.name": `task-${index % 100}` },
    related: [
      { "prefect.resource.id": `prefect.flow-run.${runId}`, "prefect.resource.role": "flow-run", "prefect.resource.name": "bench-run" },
      { "prefect.resource.id": `prefect.flow.${shape.flowId}`, "prefect.resource.role": "flow", "prefect.resource.name": "bench" },
      { "prefect.resource.id": "prefect.tag.bench", "prefect.resource.role": "tag" },
    ],
    payload: { intended: { from: "RUNNING", to: "COMPLETED" } },
  });
}

/** A JSON array of `size` events, as `POST /api/events` takes them. */
export function eventBatchJson(shape: EventShape, size: number): string {
  return `[${Array.from({ length: size }, (_, i) => eventJson(shape, i)).join(",")}]`;
}

/**
 * Counts the stored events named `name`, reading only the rows stored since its last look: positions
 * grow in the order events are committed (a reader that saw position n never sees a lower one appear
 * later), so each look counts the rows after the highest position it saw. Counting the whole table
 * on every look cost the database more as the table grew, and took CPU from the server it measures.
 */
export class StoredEvents {
  readonly #raw: RawDatabase;
  readonly #name: string;
  #count = 0;
  #position = 0;

  private constructor(raw: RawDatabase, name: string) {
    this.#raw = raw;
    this.#name = name;
  }

  static async open(raw: RawDatabase, name: string): Promise<StoredEvents> {
    const counter = new StoredEvents(raw, name);
    await counter.look();
    return counter;
  }

  /** The events named `name` stored as of the last look. */
  get count(): number {
    return this.#count;
  }

  /** Reads what was stored since the last look; returns the count. */
  async look(): Promise<number> {
    // The condition on the name stays out of WHERE, so that both databases read the position index.
    const [row] = await this.#raw.rows(
      "SELECT SUM(CASE WHEN event = ? THEN 1 ELSE 0 END) AS n, MAX(position) AS p FROM events WHERE position > ?",
      [this.#name, this.#position],
    );
    if (row?.p !== null && row?.p !== undefined) {
      this.#count += Number(row.n);
      this.#position = Number(row.p);
    }
    return this.#count;
  }

  /**
   * Waits until `expected` events named `name` are stored; returns when the last one was seen. Fails
   * when the count stops growing for `stallMs` (events were acknowledged but not stored).
   */
  async waitFor(expected: number, stallMs = 30_000): Promise<number> {
    let last = -1;
    let lastChange = performance.now();
    for (;;) {
      const count = await this.look();
      const at = performance.now();
      if (count >= expected) {
        if (count > expected) throw new Error(`${count} events named ${this.#name} are stored, more than the ${expected} sent`);
        return at;
      }
      if (count !== last) {
        last = count;
        lastChange = at;
      } else if (at - lastChange > stallMs) {
        throw new Error(`only ${count} of ${expected} acknowledged events named ${this.#name} were stored (no progress for ${stallMs / 1000} s)`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Sends events over `connections` websockets to `/api/events/in` for `seconds`, as
 * PrefectEventsClient does (no subprotocol: the server has no auth string), with a checkpoint ping
 * every 700 events; resolves with the number of events confirmed by a pong.
 */
export async function sendOverWebsockets(api: string, shape: EventShape, connections: number, seconds: number): Promise<number> {
  const url = `${api.replace(/^http/, "ws")}/events/in`;
  const deadline = performance.now() + seconds * 1000;
  const one = async (): Promise<number> => {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    let closed: Error | undefined;
    let waiting: { resolve: () => void; reject: (error: Error) => void } | undefined;
    socket.on("pong", () => {
      waiting?.resolve();
      waiting = undefined;
    });
    socket.on("error", (error) => {
      closed ??= error;
    });
    socket.on("close", (code, reason) => {
      closed ??= new Error(`the server closed /api/events/in (${code} ${reason.toString()})`);
      waiting?.reject(closed);
      waiting = undefined;
    });
    // Frames are handled in order: the pong comes once every event sent before the ping was taken.
    const pong = () =>
      new Promise<void>((resolve, reject) => {
        if (closed) return reject(closed);
        waiting = { resolve, reject };
        socket.ping();
      });
    await pong();
    let confirmed = 0;
    let index = 0;
    while (performance.now() < deadline) {
      for (let i = 0; i < WEBSOCKET_CHECKPOINT_EVENTS; i++) socket.send(eventJson(shape, index++));
      await pong();
      confirmed = index;
    }
    const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.close(1000);
    await gone;
    return confirmed;
  };
  const counts = await Promise.all(Array.from({ length: connections }, one));
  return counts.reduce((a, b) => a + b, 0);
}
