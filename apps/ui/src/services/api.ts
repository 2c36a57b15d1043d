/**
 * The library's API client for this server, with what Prefect's server may ask of a browser: basic-auth
 * credentials on every request, and CSRF tokens (fetched from `/csrf-token?client=...`, renewed before
 * they expire) on every change.
 */
import { type AxiosInstanceSetupHook, createApi } from "@prefecthq/prefect-ui-library";
import { AutomationsApi } from "./automations";
import { credentials } from "./credentials";
import type { UiSettings } from "./settings";

const CHANGES = new Set(["post", "put", "patch", "delete"]);

interface CsrfToken {
  token: string;
  expiration: number;
}

function csrfTokens(apiUrl: string) {
  const client = crypto.randomUUID();
  let current: CsrfToken | undefined;
  let pending: Promise<CsrfToken> | undefined;
  const fetchToken = async (): Promise<CsrfToken> => {
    const password = credentials.get();
    const response = await fetch(`${apiUrl}/csrf-token?client=${encodeURIComponent(client)}`, {
      headers: password ? { authorization: `Basic ${password}` } : {},
    });
    if (!response.ok) throw new Error(`The server refused a CSRF token (${response.status})`);
    const body = (await response.json()) as { token: string; expiration: string };
    return { token: body.token, expiration: Date.parse(body.expiration) };
  };
  return {
    client,
    async token(): Promise<string> {
      // Renewed a minute before it expires.
      if (!current || current.expiration - 60_000 < Date.now()) {
        pending ??= fetchToken().finally(() => {
          pending = undefined;
        });
        current = await pending;
      }
      return current.token;
    },
  };
}

/** The library's API client, and the app's automations client, sharing credentials and CSRF tokens. */
export function createServerApi(settings: UiSettings) {
  const csrf = settings.csrfEnabled ? csrfTokens(settings.apiUrl) : null;
  const setup: AxiosInstanceSetupHook = (instance) => {
    instance.interceptors.request.use(async (config) => {
      const password = credentials.get();
      if (password) config.headers.Authorization = `Basic ${password}`;
      if (csrf && CHANGES.has((config.method ?? "get").toLowerCase())) {
        config.headers["Prefect-Csrf-Token"] = await csrf.token();
        config.headers["Prefect-Csrf-Client"] = csrf.client;
      }
      return config;
    });
  };
  return { api: createApi({ baseUrl: settings.apiUrl }, setup), automations: new AutomationsApi({ baseUrl: settings.apiUrl }, setup) };
}

/** Whether the API accepts the stored credentials (or needs none). */
export async function credentialsAccepted(settings: UiSettings): Promise<boolean> {
  const password = credentials.get();
  const response = await fetch(`${settings.apiUrl}/admin/version`, { headers: password ? { authorization: `Basic ${password}` } : {} });
  return response.status !== 401;
}
