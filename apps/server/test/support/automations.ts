/**
 * What the triggers and actions suites share: events as clients send them, automations and
 * deployments created over HTTP, the events the server emits, and a local HTTP receiver for webhooks
 * and notifications.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ReceivedEvent } from "@prefect/orchestration";
import { expect } from "vitest";
import type { TestServer } from "./server.js";

type Labels = Record<string, string>;

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
export async function createAutomation(server: TestServer, body: Record<string, unknown>): Promise<any> {
  const response = await server.request("POST", "/automations/", { name: "automation", actions: [{ type: "do-nothing" }], ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
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
}

/** A local HTTP receiver: records each request and answers 200 (`/status/<n>`: that status). */
export class Receiver {
  readonly received: Received[] = [];
  #server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.#server = createServer((request: IncomingMessage, response) => {
      let body = "";
      request.on("data", (chunk) => {
        body += chunk;
      });
      request.on("end", () => {
        this.received.push({ method: request.method ?? "", url: request.url ?? "", body });
        const status = /^\/status\/(\d+)/.exec(request.url ?? "");
        response.writeHead(status ? Number(status[1]) : 200, { "content-type": "text/plain" });
        response.end("ok");
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}
