/**
 * The HTTP application: Prefect's REST and websocket API under /api, over @prefect/db. The only
 * module that registers the features' routes.
 */
import cors from "@fastify/cors";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyInstance } from "fastify";
import type { AppContext } from "./context.js";
import { adminRoutes } from "./features/admin/routes.js";
import { artifactRoutes } from "./features/artifacts/routes.js";
import { automationRoutes } from "./features/automations/routes.js";
import { blockRoutes } from "./features/blocks/routes.js";
import { collectionRoutes } from "./features/collections/routes.js";
import { concurrencyLimitRoutes } from "./features/concurrency-limits/routes.js";
import { deploymentRoutes } from "./features/deployments/routes.js";
import { eventRoutes } from "./features/events/routes.js";
import { flowRunInputRoutes } from "./features/flow-run-inputs/routes.js";
import { flowRunRoutes } from "./features/flow-runs/routes.js";
import { flowRoutes } from "./features/flows/routes.js";
import { logRoutes } from "./features/logs/routes.js";
import { savedSearchRoutes } from "./features/saved-searches/routes.js";
import { taskRunRoutes } from "./features/task-runs/routes.js";
import { uiRoutes } from "./features/ui/routes.js";
import { uiAppRoutes } from "./features/ui-app/routes.js";
import { variableRoutes } from "./features/variables/routes.js";
import { workPoolRoutes } from "./features/work-pools/routes.js";
import { workQueueRoutes } from "./features/work-queues/routes.js";
import { basicAuth } from "./http/auth.js";
import { corsOptions } from "./http/cors.js";
import { csrfProtection } from "./http/csrf.js";
import { errorHandler } from "./http/errors.js";
import { type ZodTypeProvider, zodValidatorCompiler } from "./http/zod.js";

export type App = FastifyInstance<
  import("node:http").Server,
  import("node:http").IncomingMessage,
  import("node:http").ServerResponse,
  import("fastify").FastifyBaseLogger,
  ZodTypeProvider
>;

/** Request bodies above this are refused with 413 (Prefect's clients send at most 4 MB of logs at once). */
const BODY_LIMIT_BYTES = 16 * 1024 * 1024;

export async function buildApp(context: AppContext, options: { logger?: boolean } = {}): Promise<App> {
  const app = Fastify({
    logger: options.logger === false ? false : { level: context.settings.logLevel },
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true },
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ detail: "Not Found" }));
  // Bodies as FastAPI reads them: JSON when the content type is JSON (`application/json`,
  // `application/*+json`) or missing; the raw text for any other type (a route taking a plain string,
  // such as templates/validate, gets it as sent; a route expecting an object answers Prefect's 422).
  // An empty body counts as no body (DELETE with a content type, FastAPI's leniency).
  const json = app.getDefaultJsonParser("error", "ignore");
  const parseJson: Parameters<typeof app.addContentTypeParser>[2] = (request, body, done) => {
    if (body === "" || (typeof body === "string" && body.trim() === "")) return done(null, undefined);
    return json(request, body as string, done);
  };
  const parseAny: Parameters<typeof app.addContentTypeParser>[2] = (request, body, done) => {
    if (request.headers["content-type"] === undefined) return parseJson(request, body, done);
    return done(null, body === "" ? undefined : body);
  };
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, parseJson);
  app.addContentTypeParser(/^application\/[^;\s]+\+json(\s*;.*)?$/i, { parseAs: "string" }, parseJson);
  app.addContentTypeParser("*", { parseAs: "string" }, parseAny);

  await app.register(cors, corsOptions(context.settings.cors));
  await app.register(websocket, { options: { maxPayload: BODY_LIMIT_BYTES } });
  if (context.settings.csrfProtection) app.addHook("onRequest", csrfProtection(context.db));
  if (context.settings.authString) app.addHook("onRequest", basicAuth(context.settings.authString));

  await app.register(
    async (api) => {
      await api.register(adminRoutes(context));
      await api.register(flowRoutes(context));
      await api.register(logRoutes(context));
      await api.register(flowRunRoutes(context));
      await api.register(taskRunRoutes(context));
      await api.register(blockRoutes(context));
      await api.register(eventRoutes(context));
      await api.register(variableRoutes(context));
      await api.register(artifactRoutes(context));
      await api.register(savedSearchRoutes(context));
      await api.register(flowRunInputRoutes(context));
      await api.register(concurrencyLimitRoutes(context));
      await api.register(deploymentRoutes(context));
      await api.register(workPoolRoutes(context));
      await api.register(workQueueRoutes(context));
      await api.register(uiRoutes(context));
      await api.register(collectionRoutes(context));
      await api.register(automationRoutes(context));
    },
    { prefix: "/api" },
  );
  await app.register(uiAppRoutes(context));
  return app;
}
