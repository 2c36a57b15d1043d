/**
 * Cross-origin requests as Prefect's server answers them (Starlette's CORSMiddleware over the
 * `server.api.cors_allowed_*` settings), through @fastify/cors: each setting is a comma-separated
 * list, `*` allowing any origin, method or header. Preflight requests (`OPTIONS` with
 * `Access-Control-Request-Method`) are answered before routing and authentication.
 */
import type { FastifyCorsOptions } from "@fastify/cors";
import type { ServerSettings } from "../settings.js";

/** The methods Starlette names for `allow_methods=["*"]`. */
const ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
/** Starlette's default `max_age` for preflight answers (seconds). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

const list = (setting: string) =>
  setting
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
const allowsAny = (items: readonly string[]) => items.includes("*");

export function corsOptions(settings: ServerSettings["cors"]): FastifyCorsOptions {
  const origins = list(settings.allowedOrigins);
  const methods = list(settings.allowedMethods);
  const headers = list(settings.allowedHeaders);
  return {
    origin: allowsAny(origins) ? "*" : origins,
    methods: allowsAny(methods) ? ALL_METHODS : methods,
    // Left out, the plugin reflects the headers a preflight asks for: Starlette's answer to `*`.
    ...(allowsAny(headers) ? {} : { allowedHeaders: headers }),
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
    strictPreflight: false,
    optionsSuccessStatus: 200,
  };
}
