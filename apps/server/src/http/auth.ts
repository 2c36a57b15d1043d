import type { FastifyReply, FastifyRequest } from "fastify";
import { sameSecret } from "./secrets.js";

const OPEN_PATHS = new Set(["/api/health", "/api/ready"]);

/**
 * HTTP basic auth with Prefect's PREFECT_SERVER_API_AUTH_STRING (`user:password`); health and readiness
 * probes stay open, as in Prefect. Websocket upgrades are left to the websocket routes, which
 * authenticate with Prefect's handshake (http/prefect-socket.ts), as Prefect's HTTP-only middleware
 * does; an upgrade to any other route is closed at once by @fastify/websocket.
 */
export function basicAuth(authString: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.ws) return;
    const path = request.url.split("?")[0]!.replace(/\/+$/, "");
    // Only the API needs credentials: the UI's files are public, and the UI asks for them.
    if (path !== "/api" && !path.startsWith("/api/")) return;
    if (request.method === "GET" && OPEN_PATHS.has(path)) return;
    const header = request.headers.authorization ?? "";
    const [scheme, credentials] = header.split(" ");
    let decoded = "";
    if (scheme === "Basic" && credentials) decoded = Buffer.from(credentials, "base64").toString("utf8");
    if (!sameSecret(decoded, authString)) {
      return reply.code(401).send({ exception_message: "Unauthorized" });
    }
  };
}
