/**
 * CSRF protection (Prefect's PREFECT_SERVER_CSRF_PROTECTION_ENABLED): every POST, PUT, PATCH and DELETE
 * must carry the token the server issued to its client (`GET /api/csrf-token?client=...`) in the
 * `Prefect-Csrf-Token` and `Prefect-Csrf-Client` headers, else 403 with Prefect's words. Checked
 * before anything else about the request, as Prefect's outermost middleware does.
 */
import type { Database } from "@prefect/db";
import type { FastifyReply, FastifyRequest } from "fastify";
import { sameSecret } from "./secrets.js";

const CHANGES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The first value of a header, as Starlette's `headers.get` reads it. */
function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function csrfProtection(db: Database) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!CHANGES.has(request.method)) return;
    const token = header(request, "prefect-csrf-token");
    const client = header(request, "prefect-csrf-client");
    if (token === undefined) return reply.code(403).send({ detail: "Missing CSRF token." });
    if (client === undefined) return reply.code(403).send({ detail: "Missing client identifier." });
    const stored = await db.csrfTokens.getForClient(client);
    if (!stored || !sameSecret(stored.token, token)) {
      // Prefect's client sees "Invalid CSRF token" and fetches a fresh token before retrying.
      return reply.code(403).header("Access-Control-Allow-Origin", "*").send({ detail: "Invalid CSRF token or client identifier." });
    }
  };
}
