/**
 * Test support for the events API: a websocket client that speaks Prefect's protocol, polling with a
 * bounded timeout, and events shaped as Prefect's clients send them.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, type Timestamp, toMicros } from "@prefect/db";
import WebSocket from "ws";

/** Polls `probe` until it returns something other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export type Json = Record<string, unknown>;

/** A websocket client that queues what it receives. */
export class TestSocket {
  readonly #received: string[] = [];
  #waiter: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.#received.push(String(data));
      this.#waiter?.();
    });
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString("utf8") })));
    this.closed.then(() => this.#waiter?.());
  }

  /** Opens `url` (ws://...); rejects with the HTTP status when the upgrade is refused. */
  static open(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<TestSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers ?? {} });
      const socket = new TestSocket(ws);
      ws.once("open", () => resolve(socket));
      ws.once("unexpected-response", (_request, response) => reject(new UpgradeRefused(response.statusCode ?? 0)));
      ws.once("error", reject);
    });
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** The next message, parsed; fails after `timeoutMs` or when the socket closes first. */
  async next(timeoutMs = 20_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    while (this.#received.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error("socket closed before a message arrived");
      if (Date.now() > deadline) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return JSON.parse(this.#received.shift()!) as Json;
  }

  /** Messages received so far and not read. */
  get unread(): number {
    return this.#received.length;
  }

  /** Pings and waits for the pong (how Prefect's client checkpoints the events it sent). */
  ping(timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no pong")), timeoutMs);
      this.ws.once("pong", () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.ping();
    });
  }

  /** Prefect's `_auth_handshake`. */
  async authenticate(token: string | null): Promise<Json> {
    this.send({ type: "auth", token });
    return this.next();
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    await this.closed;
  }
}

export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

export const wsUrl = (serverUrl: string, path: string) => `${serverUrl.replace(/^http/, "ws")}/api${path}`;

/** A Prefect 3.x events client's connection: `prefect` subprotocol, auth handshake. */
export async function openEventsIn(serverUrl: string, token: string | null = null): Promise<TestSocket> {
  const socket = await TestSocket.open(wsUrl(serverUrl, "/events/in"), { protocols: ["prefect"] });
  const answer = await socket.authenticate(token);
  if (answer.type !== "auth_success") throw new Error(`handshake failed: ${JSON.stringify(answer)}`);
  return socket;
}

export interface EventShape {
  id: string;
  occurred: string;
  event: string;
  resource: Record<string, string>;
  related: Record<string, string>[];
  payload: Record<string, unknown>;
  follows?: string | null;
}

/** A plain event: `seconds` after now (default), on resource `prefect.flow-run.<n>`. */
export function makeEvent(overrides: Partial<EventShape> & { seconds?: number } = {}): EventShape {
  const { seconds = 0, ...rest } = overrides;
  return {
    id: randomUUID(),
    occurred: addSeconds(now(), seconds),
    event: "test.thing.happened",
    resource: { "prefect.resource.id": "prefect.flow-run.1" },
    related: [],
    payload: {},
    ...rest,
  };
}

export interface TaskRunStep {
  readonly type: "PENDING" | "RUNNING" | "COMPLETED";
  readonly occurred: Timestamp;
}

/**
 * The `prefect.task-run.*` events a Prefect 3.x client emits for one task run of a flow run
 * (task_engine.py + emit_task_run_state_change_event, related resources from the run context).
 */
export function taskRunEvents(options: {
  taskRunId: string;
  flowRunId: string;
  flowId: string;
  flowName: string;
  flowRunName: string;
  taskName: string;
  taskKey: string;
  dynamicKey: string;
  tags?: string[];
  steps: readonly TaskRunStep[];
}): EventShape[] {
  const names = { PENDING: "Pending", RUNNING: "Running", COMPLETED: "Completed" } as const;
  const events: EventShape[] = [];
  let previous: TaskRunStep | undefined;
  let startTime: Timestamp | undefined;
  let runCount = 0;
  let totalRunTime = 0;
  for (const step of options.steps) {
    if (previous?.type === "RUNNING") totalRunTime += (toMicros(step.occurred) - toMicros(previous.occurred)) / 1e6;
    if (step.type === "RUNNING") {
      runCount += 1;
      startTime ??= step.occurred;
    }
    const taskRun: Record<string, unknown> = {
      name: options.taskName,
      task_key: options.taskKey,
      dynamic_key: options.dynamicKey,
      empirical_policy: { max_retries: 0, retry_delay_seconds: 0.0, retries: 0, retry_delay: 0, retry_jitter_factor: null },
      tags: options.tags ?? [],
      labels: {},
      task_inputs: { x: [], y: [] },
      run_count: runCount,
      flow_run_run_count: 1,
      expected_start_time: options.steps[0]!.occurred,
      ...(startTime ? { start_time: startTime } : {}),
      ...(step.type === "COMPLETED" ? { end_time: step.occurred } : {}),
      total_run_time: totalRunTime,
    };
    const id = randomUUID();
    events.push({
      id,
      occurred: step.occurred,
      event: `prefect.task-run.${names[step.type]}`,
      resource: {
        "prefect.resource.id": `prefect.task-run.${options.taskRunId}`,
        "prefect.resource.name": options.taskName,
        "prefect.run-count": String(runCount),
        "prefect.state-message": "",
        "prefect.state-name": names[step.type],
        "prefect.state-timestamp": step.occurred,
        "prefect.state-type": step.type,
        "prefect.orchestration": "client",
      },
      related: [
        ...(options.tags ?? []).sort().map((tag) => ({ "prefect.resource.id": `prefect.tag.${tag}`, "prefect.resource.role": "tag" })),
        { "prefect.resource.id": `prefect.flow-run.${options.flowRunId}`, "prefect.resource.role": "flow-run", "prefect.resource.name": options.flowRunName },
        ...(step.type === "PENDING"
          ? []
          : [{ "prefect.resource.id": `prefect.task-run.${options.taskRunId}`, "prefect.resource.role": "task-run", "prefect.resource.name": options.taskName }]),
        { "prefect.resource.id": `prefect.flow.${options.flowId}`, "prefect.resource.role": "flow", "prefect.resource.name": options.flowName },
      ],
      payload: {
        intended: { from: previous?.type ?? null, to: step.type },
        initial_state: previous ? { type: previous.type, name: names[previous.type], message: "", state_details: {} } : null,
        validated_state: {
          type: step.type,
          name: names[step.type],
          message: "",
          state_details: step.type === "COMPLETED" ? { untrackable_result: false, retriable: false } : {},
          data: step.type === "COMPLETED" ? { storage_key: `/tmp/results/${id}`, expiration: null, serializer: { type: "pickle" }, prefect_version: "3.8.3" } : null,
        },
        task_run: taskRun,
      },
      ...(events.length > 0 ? { follows: events[events.length - 1]!.id } : {}),
    });
    previous = step;
  }
  return events;
}
