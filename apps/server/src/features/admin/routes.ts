/**
 * Root and Admin routes: health, readiness, hello, version, settings, the server's default result
 * storage block, and the CSRF token endpoint (see http/csrf.ts for the check on every change).
 */
import type { CsrfToken } from "@prefect/db";
import type { FastifyReply } from "fastify";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import type { Routes } from "../../http/zod.js";
import { API_VERSION, PREFECT_VERSION } from "../../settings.js";
import { clearStorageDefault, issueCsrfToken, readStorageDefault, setStorageDefault } from "./service.js";

const CsrfQuery = z.object({
  client: z.string({ error: (issue) => (issue.input === undefined ? "Field required" : "Input should be a valid string") }),
});

function csrfTokenResponse(token: CsrfToken) {
  return { id: token.id, created: token.created, updated: token.updated, token: token.token, client: token.client, expiration: token.expiration };
}

export function adminRoutes(context: AppContext): Routes {
  return async (app) => {
    app.get("/health", async () => true);

    // Strings are JSON strings in Prefect's API (its client reads them with `.json()`).
    const json = (value: string) => (_request: unknown, reply: FastifyReply) => reply.type("application/json").send(JSON.stringify(value));

    app.get("/hello", json("👋"));

    app.get("/ready", async (_request, reply) => {
      const health = await context.db.health();
      return health.ok ? { message: "OK" } : reply.code(503).send({ message: "Database is not available" });
    });

    app.get("/version", json(API_VERSION));

    app.get("/admin/version", json(PREFECT_VERSION));

    app.get("/admin/settings", async () => ({
      server: {
        api: {
          host: context.settings.host,
          port: context.settings.port,
          csrf_protection_enabled: context.settings.csrfProtection,
        },
        database: { backend: context.db.backend, location: context.db.location },
      },
    }));

    app.get("/admin/storage", async () => ({ default_result_storage_block_id: await readStorageDefault(context.db) }));

    app.put("/admin/storage", { schema: { body: api.ServerDefaultResultStorageUpdate } }, async (request) => {
      const id = request.body.default_result_storage_block_id;
      await setStorageDefault(context.db, id);
      return { default_result_storage_block_id: id };
    });

    app.delete("/admin/storage", async (_request, reply) => {
      await clearStorageDefault(context.db);
      return reply.code(204).send();
    });

    app.get("/csrf-token", { schema: { querystring: CsrfQuery } }, async (request, reply) => {
      // With CSRF protection off (Prefect's default), Prefect answers 422 with this text and its
      // client stops asking.
      if (!context.settings.csrfProtection) return reply.code(422).send({ detail: "CSRF protection is disabled." });
      const token = await issueCsrfToken(context.db, request.query.client, context.settings.csrfTokenExpirationSeconds);
      return csrfTokenResponse(token);
    });
  };
}
