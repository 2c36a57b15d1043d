/**
 * Where the built UI is and what Prefect's `GET /ui-settings` tells it: the API address, whether CSRF
 * tokens and basic-auth credentials are needed, and which feature flags are on (none).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServerSettings } from "../../settings.js";

/** The placeholder the UI's index.html carries for its base path (`<base href="/">`). */
const BASE_TAG = /<base href="[^"]*"\s*\/?>/;

/** This package's root: the nearest folder upwards with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("the server's package.json was not found");
    dir = parent;
  }
  return dir;
}

/** The folder the UI is served from: PREFECT_UI_STATIC_DIRECTORY, else the UI built next to this app. */
export function uiDirectory(settings: ServerSettings): string {
  return resolve(settings.ui.staticDirectory ?? join(packageRoot(), "..", "ui", "dist"));
}

export type UiAvailability = { readonly served: true; readonly directory: string } | { readonly served: false; readonly reason: string };

/** Whether the UI is served, and if not, why (disabled, or not built). */
export function uiAvailability(settings: ServerSettings): UiAvailability {
  if (!settings.ui.enabled) return { served: false, reason: "the UI is disabled (PREFECT_UI_ENABLED=false)" };
  const directory = uiDirectory(settings);
  if (!existsSync(join(directory, "index.html"))) return { served: false, reason: `the UI is not built (no ${join(directory, "index.html")}; run pnpm build)` };
  return { served: true, directory };
}

/** The UI's index.html with its base path set to the serve base. */
export function indexHtml(directory: string, serveBase: string): string {
  const html = readFileSync(join(directory, "index.html"), "utf8");
  const href = serveBase === "/" ? "/" : `${serveBase}/`;
  return BASE_TAG.test(html) ? html.replace(BASE_TAG, `<base href="${href}">`) : html.replace("<head>", `<head><base href="${href}">`);
}

/** Prefect's UISettings. `apiUrl` is the configured address, else this server's own. */
export function uiSettingsResponse(settings: ServerSettings, ownApiUrl: string, served: boolean) {
  const base = settings.ui.serveBase;
  return {
    api_url: settings.ui.apiUrl ?? ownApiUrl,
    csrf_enabled: settings.csrfProtection,
    auth: settings.authString ? "BASIC" : null,
    flags: [],
    default_ui: "v1",
    available_uis: served ? ["v1"] : [],
    v1_base_url: served ? base : null,
    v2_base_url: null,
  };
}
