/**
 * Prefect's UI at the serve base (`/` by default): the built files, hashed assets cached for a year,
 * every other path answered with index.html (the UI's router takes it from there), all compressed;
 * and `GET /ui-settings`. Paths under /api are never the UI's: unknown ones stay JSON 404s.
 */
import compress from "@fastify/compress";
import fastifyStatic from "@fastify/static";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../../context.js";
import type { Routes } from "../../http/zod.js";
import { indexHtml, uiAvailability, uiSettingsResponse } from "./service.js";

const ONE_YEAR_SECONDS = 365 * 24 * 3600;

/** `/` + `rest` under the serve base. */
const under = (base: string, rest: string) => (base === "/" ? `/${rest}` : `${base}/${rest}`);

export function uiAppRoutes(context: AppContext): Routes {
  const { settings } = context;
  const base = settings.ui.serveBase;
  const availability = uiAvailability(settings);
  return async (app) => {
    await app.register(compress, { global: true, threshold: 500 });

    app.get(under(base, "ui-settings"), async (request) => {
      const address = request.server.server.address();
      const port = typeof address === "object" && address ? address.port : settings.port;
      const host = settings.host.includes(":") ? `[${settings.host}]` : settings.host;
      return uiSettingsResponse(settings, `http://${host}:${port}/api`, availability.served);
    });

    if (!availability.served) {
      app.log.warn(`Serving the API only: ${availability.reason}`);
      return;
    }
    const { directory } = availability;
    const html = indexHtml(directory, base);
    await app.register(fastifyStatic, { root: directory, serve: false });

    const page = (reply: FastifyReply) => reply.header("cache-control", "no-cache").type("text/html; charset=utf-8").send(html);
    const serve = async (request: FastifyRequest<{ Params: { "*"?: string } }>, reply: FastifyReply) => {
      const path = request.url.split("?")[0]!;
      if (path === "/api" || path.startsWith("/api/")) return reply.code(404).send({ detail: "Not Found" });
      const file = request.params["*"] ?? "";
      if (file.startsWith("assets/")) {
        return reply.header("cache-control", `public, max-age=${ONE_YEAR_SECONDS}, immutable`).sendFile(file, { cacheControl: false });
      }
      // Files at the top of the build (icons) are served as they are; any other path is a page of the UI.
      if (file && !file.includes("/") && file !== "index.html" && /\.[a-z0-9]+$/i.test(file)) {
        return reply.header("cache-control", "public, max-age=3600").sendFile(file, { cacheControl: false });
      }
      return page(reply);
    };
    if (base !== "/") app.get(base, async (_request, reply) => page(reply));
    app.get(under(base, "*"), serve);
  };
}
