/**
 * What the triggers and actions suites share: the settings that run both services, events as clients
 * send them, automations and deployments created over HTTP, the events the server emits, and a local
 * HTTP receiver for webhooks and notifications.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ReceivedEvent } from "@prefect/orchestration";
import { expect } from "vitest";
import type { TestServer } from "./server.js";

type Labels = Record<string, string>;
/** What the helpers call: a test server, or the API of a server process (`apiRequests`). */
type Api = Pick<TestServer, "request">;

/** The triggers and actions services on, as the server runs them, looking often so that the tests wait little. */
export const AUTOMATION_SERVICES_ON: Record<string, string> = {
  PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: "true",
  PREFECT_SERVER_SERVICES_ACTIONS_ENABLED: "true",
  PREFECT_SERVER_SERVICES_ACTIONS_LOOP_SECONDS: "0.2",
  PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY: "1",
};

/** An event as received now (or at `occurred`). */
export function receivedEvent(event: string, resource: Labels, related: Labels[] = [], extra: Partial<ReceivedEvent> = {}): ReceivedEvent {
  const at = new Date().toISOString();
  return { id: randomUUID(), occurred: at, event, resource, related, payload: {}, received: at, follows: null, ...extra };
}

export const secondsAfter = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000).toISOString();

/** Records every event the server publishes from now on. */
export function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

export const named = (events: readonly ReceivedEvent[], name: string) => events.filter((e) => e.event === name);

/** POST /automations/; returns the automation as the server answers it. */
// biome-ignore lint/suspicious/noExplicitAny: automations are read freely in tests
export async function createAutomation(server: Api, body: Record<string, unknown>): Promise<any> {
  const response = await server.request("POST", "/automations/", { name: "automation", actions: [{ type: "do-nothing" }], ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
}

/** An automation whose one action calls `url` through a webhook block with the rendered `payload`. */
// biome-ignore lint/suspicious/noExplicitAny: automations are read freely in tests
export async function webhookAutomation(server: Api, url: string, trigger: Record<string, unknown>, payload = "{{ event.id }}"): Promise<any> {
  await server.request("POST", "/block_types/install_system_block_types");
  const type = (await server.request("GET", "/block_types/slug/webhook")).body;
  const [schema] = (await server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [type.id] } } })).body;
  const block = (await server.request("POST", "/block_documents/", { name: "hook", block_type_id: type.id, block_schema_id: schema.id, data: { url } })).body;
  return createAutomation(server, { trigger, actions: [{ type: "call-webhook", block_document_id: block.id, payload }] });
}

/** POST /events with `event` as a client sends it (without `received`). */
export async function sendEvent(server: Api, event: ReceivedEvent): Promise<void> {
  const { received: _received, ...sent } = event;
  expect((await server.request("POST", "/events", [sent])).status).toBe(204);
}

/** A flow and a deployment of it; returns the deployment's id. */
export async function createDeployment(server: TestServer, name: string): Promise<string> {
  const flow = (await server.request("POST", "/flows/", { name: "etl" })).body;
  const response = await server.request("POST", "/deployments/", { name, flow_id: flow.id });
  expect(response.status).toBeLessThan(300);
  return response.body.id;
}

export async function runsOf(server: TestServer, deploymentId: string): Promise<{ id: string }[]> {
  return (await server.request("POST", "/flow_runs/filter", { deployments: { id: { any_: [deploymentId] } } })).body;
}

export interface Received {
  method: string;
  url: string;
  body: string;
  /** Whether the receiver answered it (not when `hold` kept it waiting). */
  answered: boolean;
}

/**
 * A local HTTP receiver: records each request and answers 200 (`/status/<n>`: that status), but for
 * the requests `hold` picks, which it records and leaves waiting for an answer that never comes.
 */
export class Receiver {
  readonly received: Received[] = [];
  hold: ((request: Received) => boolean) | undefined;
  #server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.#server = createServer((request: IncomingMessage, response) => {
      let body = "";
      request.on("data", (chunk) => {
        body += chunk;
      });
      request.on("end", () => {
        const received = { method: request.method ?? "", url: request.url ?? "", body, answered: false };
        this.received.push(received);
        if (this.hold?.(received)) return;
        const status = /^\/status\/(\d+)/.exec(request.url ?? "");
        response.writeHead(status ? Number(status[1]) : 200, { "content-type": "text/plain" });
        response.end("ok");
        received.answered = true;
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}
