/**
 * Prefect's websocket handshake (`utilities/subscriptions.py::accept_prefect_socket`), shared by the
 * websocket routes:
 *  - a client that offers the `prefect` subprotocol must send `{"type": "auth", "token": ...}` first
 *    and is answered `{"type": "auth_success"}`; with PREFECT_SERVER_API_AUTH_STRING set the token
 *    must equal it, without one any token (or none) is accepted;
 *  - a legacy client (no subprotocol) is accepted without the handshake only when no auth string is
 *    set; otherwise its upgrade is refused (403, as Starlette answers a socket closed before accept).
 * Websocket upgrades are exempt from HTTP basic auth (as in Prefect, whose auth middleware only sees
 * HTTP requests): every websocket route must authenticate with this handshake.
 */
import type { WebSocket } from "@fastify/websocket";
import type { FastifyReply, FastifyRequest } from "fastify";
import { sameSecret } from "./secrets.js";

export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_UNSUPPORTED_DATA = 1003;
export const CLOSE_INVALID_PAYLOAD = 1007;
export const CLOSE_POLICY_VIOLATION = 1008;

/** A close reason must fit a control frame (123 bytes). */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  let text = reason;
  if (Buffer.byteLength(text) > 123) {
    while (Buffer.byteLength(text) > 120) text = text.slice(0, -1);
    text += "...";
  }
  if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, text);
}

export function offersPrefectSubprotocol(request: FastifyRequest): boolean {
  const header = request.headers["sec-websocket-protocol"];
  const values = Array.isArray(header) ? header : header ? [header] : [];
  return values.flatMap((v) => v.split(",")).some((p) => p.trim() === "prefect");
}

/** Route `onRequest` hook: refuses a legacy client's upgrade when an auth string is configured. */
export function legacyClientGuard(authString: string | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (authString && request.ws && !offersPrefectSubprotocol(request)) {
      return reply.code(403).send({ detail: "'prefect' subprotocol required when auth is configured" });
    }
  };
}

export type SocketMessage = { readonly text: string } | { readonly binary: Buffer };

/**
 * The messages of a socket, from the moment it opens: read them one at a time (`next`), then hand
 * the rest, buffered and future, to a synchronous handler (`drainTo`).
 */
export class SocketMessages {
  readonly #queue: SocketMessage[] = [];
  #waiter: ((message: SocketMessage | null) => void) | undefined;
  #handler: ((message: SocketMessage) => void) | undefined;
  #closed = false;

  constructor(socket: WebSocket) {
    socket.on("message", (data, isBinary) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      const message: SocketMessage = isBinary ? { binary: buffer } : { text: buffer.toString("utf8") };
      if (this.#handler) this.#handler(message);
      else if (this.#waiter) {
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter(message);
      } else this.#queue.push(message);
    });
    socket.on("close", () => {
      this.#closed = true;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.(null);
    });
  }

  /** The next message, or null once the socket has closed. */
  next(): Promise<SocketMessage | null> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  drainTo(handler: (message: SocketMessage) => void): void {
    this.#handler = handler;
    for (const message of this.#queue.splice(0)) handler(message);
  }
}

function parseObject(message: SocketMessage): Record<string, unknown> | undefined {
  if (!("text" in message)) return undefined;
  try {
    const parsed: unknown = JSON.parse(message.text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads one JSON object message; undefined when it was not one, null when the socket closed. */
export async function nextObject(messages: SocketMessages): Promise<Record<string, unknown> | undefined | null> {
  const message = await messages.next();
  if (message === null) return null;
  return parseObject(message);
}

/**
 * Runs the handshake on an upgraded socket; true when the client may proceed. A refused client's
 * socket is closed with Prefect's code and reason.
 */
export async function acceptPrefectSocket(socket: WebSocket, request: FastifyRequest, messages: SocketMessages, authString: string | undefined): Promise<boolean> {
  if (!offersPrefectSubprotocol(request)) {
    // Legacy mode (the guard has already refused legacy clients when auth is configured).
    if (!authString) return true;
    closeSocket(socket, CLOSE_PROTOCOL_ERROR, "'prefect' subprotocol required when auth is configured");
    return false;
  }
  const message = await nextObject(messages);
  if (message === null) return false;
  if (message?.type !== "auth") {
    closeSocket(socket, CLOSE_POLICY_VIOLATION, "Expected 'auth' message");
    return false;
  }
  if (authString) {
    const token = message.token;
    if (!token) {
      closeSocket(socket, CLOSE_POLICY_VIOLATION, "Auth required but no token provided");
      return false;
    }
    if (typeof token !== "string" || !sameSecret(token, authString)) {
      closeSocket(socket, CLOSE_POLICY_VIOLATION, "Invalid token");
      return false;
    }
  }
  if (socket.readyState !== socket.OPEN) return false;
  socket.send(JSON.stringify({ type: "auth_success" }));
  return true;
}
