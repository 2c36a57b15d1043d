/**
 * What the server tells the UI at start (Prefect's `GET /ui-settings`), and where the UI lives: the
 * server writes the path it is served under into index.html's `<base href>`.
 */
export interface UiSettings {
  readonly apiUrl: string;
  readonly csrfEnabled: boolean;
  readonly auth: "BASIC" | null;
  readonly flags: readonly string[];
}

interface UiSettingsResponse {
  api_url: string;
  csrf_enabled: boolean;
  auth: "BASIC" | null;
  flags: string[];
}

/** The path the UI is served under, with a trailing slash (`/`, `/prefect/`). */
export function basePath(): string {
  return new URL(document.baseURI).pathname;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "0.0.0.0"]);

/**
 * The API address, without a trailing slash. An address on a loopback name and this page's port is
 * this very server under another name (the page may be open as localhost, the server calls itself
 * 127.0.0.1): then this page's origin is used, so that no request crosses origins.
 */
function sameServer(apiUrl: string): string {
  const url = new URL(apiUrl, window.location.href);
  const here = window.location;
  const path = url.pathname.replace(/\/+$/, "");
  if (LOOPBACK.has(url.hostname) && LOOPBACK.has(here.hostname) && url.port === here.port) return `${here.origin}${path}`;
  return `${url.origin}${path}`;
}

let loaded: Promise<UiSettings> | undefined;

export function uiSettings(): Promise<UiSettings> {
  loaded ??= (async () => {
    const response = await fetch(new URL("ui-settings", document.baseURI));
    if (!response.ok) throw new Error(`The server answered ${response.status} for its UI settings`);
    const body = (await response.json()) as UiSettingsResponse;
    return { apiUrl: sameServer(body.api_url), csrfEnabled: body.csrf_enabled, auth: body.auth, flags: body.flags };
  })();
  return loaded;
}
