/**
 * What Prefect's notification blocks and its webhook block send (`prefect/blocks/notifications.py`,
 * `webhook.py`, and Apprise for the Apprise-based blocks), for the actions service's send-notification
 * and call-webhook actions. Each takes a block document's data with its secrets (read with
 * `include_secrets`).
 *
 * Supported: Slack, Microsoft Teams (Workflows), Discord and custom webhooks; the other notification
 * blocks (PagerDuty, Twilio, Opsgenie, Mattermost, Sendgrid) fail with UnsupportedNotificationBlock.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { isRecord } from "../../prefect/json.js";

type Json = Record<string, unknown>;

/** The notification block types whose requests this server sends. */
export const SUPPORTED_NOTIFICATION_BLOCK_TYPES: readonly string[] = ["slack-webhook", "ms-teams-webhook", "discord-webhook", "custom-webhook"];

/** A notification block type this server cannot send through. */
export class UnsupportedNotificationBlock extends Error {
  constructor(readonly blockTypeSlug: string) {
    super(`Notifications through '${blockTypeSlug}' blocks are not supported by this server (supported: ${SUPPORTED_NOTIFICATION_BLOCK_TYPES.join(", ")}).`);
  }
}

/**
 * The notification was not delivered (Prefect's NotificationError: the action fails with "Notification
 * failed" and this log). `retryable` is set for a custom webhook's HTTP error, which Prefect lets the
 * actions service retry instead.
 */
export class NotificationFailed extends Error {
  constructor(
    readonly log: string,
    readonly retryable = false,
  ) {
    super(log);
  }
}

/** One HTTP request, as built before it is sent. */
export interface OutgoingRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly timeoutMs: number;
}

export interface SendOptions {
  /** Where Discord's webhooks live (tests point it at a local receiver). */
  readonly discordWebhooksUrl?: string;
  readonly fetch?: typeof fetch;
}

export interface NotificationMessage {
  readonly subject: string | null;
  readonly body: string;
}

/** Apprise's default colours by notify type. */
const COLORS: Record<string, string> = { info: "#3AA3E3", success: "#3AA337", warning: "#CACF29", failure: "#A32037" };
const APP_ID = "Prefect Notifications";
const DEFAULT_TIMEOUT_MS = 10_000;

const text = (value: unknown): string => (typeof value === "string" ? value : value === null || value === undefined ? "" : String(value));
const colorOf = (data: Json) => COLORS[text(data.notify_type) || "info"] ?? COLORS.info!;
const json = (url: string, payload: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): OutgoingRequest => ({
  method: "POST",
  url,
  headers: { "content-type": "application/json", "user-agent": APP_ID },
  body: JSON.stringify(payload),
  timeoutMs,
});

// ---- Custom webhook placeholders (Prefect's `apply_values`) -------------------------------------

const PLACEHOLDER = /\{\{\s*([\w.\-[\]$]+)\s*\}\}/g;
const NOT_SET = Symbol("not set");

/** Only plain names are filled in; block and variable references and environment variables are left as written. */
const isStandard = (name: string) => !name.startsWith("prefect.blocks.") && !name.startsWith("prefect.variables.") && !name.startsWith("$");

function valueAt(values: Json, name: string): unknown {
  if (name in values) return values[name];
  let current: unknown = values;
  for (const part of name.split(".")) {
    if (!isRecord(current) || !(part in current)) return NOT_SET;
    current = current[part];
  }
  return current;
}

function applyValues(template: unknown, values: Json): unknown {
  if (typeof template === "string") {
    const matches = [...template.matchAll(PLACEHOLDER)].filter((m) => isStandard(m[1]!));
    if (matches.length === 0) return template;
    if (matches.length === 1 && matches[0]![0] === template) return valueAt(values, matches[0]![1]!);
    let out = template;
    for (const m of matches) {
      const value = valueAt(values, m[1]!);
      out = out.replaceAll(m[0], value === NOT_SET ? "" : typeof value === "string" ? value : JSON.stringify(value));
    }
    return out;
  }
  if (Array.isArray(template)) return template.map((t) => applyValues(t, values)).filter((v) => v !== NOT_SET);
  if (isRecord(template)) {
    const out: Json = {};
    for (const [key, value] of Object.entries(template)) {
      const applied = applyValues(value, values);
      if (applied !== NOT_SET) out[key] = applied;
    }
    return out;
  }
  return template;
}

function customWebhookRequest(data: Json, message: NotificationMessage): OutgoingRequest {
  if (data.form_data !== null && data.form_data !== undefined && data.json_data !== null && data.json_data !== undefined) {
    throw new NotificationFailed("both `Form Data` and `JSON Data` provided");
  }
  const values: Json = { ...(isRecord(data.secrets) ? data.secrets : {}), subject: message.subject ?? "null", body: message.body, name: data.name ?? null };
  const url = applyValues(data.url, values);
  if (typeof url !== "string" || url === "") throw new NotificationFailed("The custom webhook's URL is missing.");
  const target = new URL(url);
  const params = applyValues(data.params ?? null, values);
  if (isRecord(params)) for (const [k, v] of Object.entries(params)) target.searchParams.append(k, text(v));
  const headers: Record<string, string> = { "user-agent": APP_ID };
  const given = applyValues(data.headers ?? null, values);
  if (isRecord(given)) for (const [k, v] of Object.entries(given)) headers[k.toLowerCase()] = text(v);
  const cookies = applyValues(data.cookies ?? null, values);
  if (isRecord(cookies) && Object.keys(cookies).length > 0) {
    headers.cookie = Object.entries(cookies)
      .map(([k, v]) => `${k}=${text(v)}`)
      .join("; ");
  }
  let body: string | undefined;
  const jsonData = applyValues(data.json_data ?? null, values);
  const formData = applyValues(data.form_data ?? null, values);
  if (jsonData !== null && jsonData !== NOT_SET) {
    body = JSON.stringify(jsonData);
    headers["content-type"] ??= "application/json";
  } else if (typeof formData === "string") {
    body = formData;
  } else if (isRecord(formData)) {
    body = new URLSearchParams(Object.entries(formData).map(([k, v]): [string, string] => [k, text(v)])).toString();
    headers["content-type"] ??= "application/x-www-form-urlencoded";
  }
  const timeout = typeof data.timeout === "number" ? data.timeout : 10;
  return { method: text(data.method) || "POST", url: target.toString(), headers, body, timeoutMs: timeout * 1000 };
}

/** The request a notification block sends for a message; UnsupportedNotificationBlock for the others. */
export function notificationRequest(blockTypeSlug: string, data: Json, message: NotificationMessage, options: SendOptions = {}): OutgoingRequest {
  const title = message.subject ?? "";
  switch (blockTypeSlug) {
    case "slack-webhook":
      return json(text(data.url), {
        username: APP_ID,
        mrkdwn: true,
        attachments: [{ title, text: message.body, color: colorOf(data), footer: APP_ID, ts: Math.floor(Date.now() / 1000) }],
      });
    case "ms-teams-webhook":
      return json(text(data.url), {
        type: "message",
        attachments: [
          {
            contentType: "application/vnd.microsoft.card.adaptive",
            contentUrl: null,
            content: {
              $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
              type: "AdaptiveCard",
              version: "1.4",
              body: [
                { type: "TextBlock", text: title, style: "heading", weight: "Bolder", size: "Large", id: "title" },
                { type: "TextBlock", text: message.body, wrap: data.wrap !== false, id: "body" },
              ],
              msteams: { width: "full" },
            },
          },
        ],
      });
    case "discord-webhook": {
      const base = (options.discordWebhooksUrl ?? "https://discord.com/api/webhooks").replace(/\/+$/, "");
      const payload: Json = {
        tts: data.tts === true,
        wait: data.tts !== true,
        embeds: [{ title, description: message.body, color: Number.parseInt(colorOf(data).slice(1), 16) }],
      };
      if (typeof data.botname === "string" && data.botname) payload.username = data.botname;
      if (data.avatar === true && typeof data.avatar_url === "string" && data.avatar_url) payload.avatar_url = data.avatar_url;
      return json(`${base}/${encodeURIComponent(text(data.webhook_id))}/${encodeURIComponent(text(data.webhook_token))}`, payload);
    }
    case "custom-webhook":
      return customWebhookRequest(data, message);
    default:
      throw new UnsupportedNotificationBlock(blockTypeSlug);
  }
}

// ---- Private addresses (Prefect's `validate_restricted_url`) -------------------------------------

function isPrivateAddress(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a, b] = ip.split(".").map(Number) as [number, number];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || a >= 224;
  }
  const v6 = ip.toLowerCase();
  if (v6.startsWith("::ffff:")) return isPrivateAddress(v6.slice(7));
  return v6 === "::1" || v6 === "::" || v6.startsWith("fc") || v6.startsWith("fd") || v6.startsWith("fe8") || v6.startsWith("fe9") || v6.startsWith("fea") || v6.startsWith("feb");
}

/** Refuses URLs that are not http(s) or that resolve to a private address. */
export async function checkPublicUrl(url: string): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new NotificationFailed(`'${url}' is not a valid URL.`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new NotificationFailed(`'${url}' is not a valid URL.  Only HTTP and HTTPS URLs are allowed.`);
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch {
    throw new NotificationFailed(`'${url}' is not a valid URL.  It could not be resolved.`);
  }
  const blocked = addresses.find(isPrivateAddress);
  if (blocked) throw new NotificationFailed(`'${url}' is not a valid URL.  It resolves to the private address ${blocked}.`);
}

async function send(request: OutgoingRequest, options: SendOptions): Promise<Response> {
  const doFetch = options.fetch ?? fetch;
  return doFetch(request.url, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined && request.method !== "GET" ? { body: request.body } : {}),
    signal: AbortSignal.timeout(request.timeoutMs),
    redirect: "follow",
  });
}

/**
 * Sends the notification (Prefect's `notify` with `raise_on_failure`). Fails with NotificationFailed
 * (its log says why) or UnsupportedNotificationBlock.
 */
export async function sendNotification(blockTypeSlug: string, data: Json, message: NotificationMessage, options: SendOptions = {}): Promise<{ status: number }> {
  const request = notificationRequest(blockTypeSlug, data, message, options);
  if (data.allow_private_urls === false) await checkPublicUrl(request.url);
  let response: Response;
  try {
    response = await send(request, options);
  } catch (error) {
    throw new NotificationFailed(`Sending the ${blockTypeSlug} notification failed: ${(error as Error).message}`);
  }
  const body = await response.text().catch(() => "");
  if (response.status < 200 || response.status >= 300) {
    throw new NotificationFailed(`The ${blockTypeSlug} notification was refused with HTTP ${response.status}: ${body.slice(0, 1000)}`, blockTypeSlug === "custom-webhook");
  }
  return { status: response.status };
}

/** Response headers Prefect leaves out of the action's result. */
export function shouldRedactHeader(name: string): boolean {
  const n = name.toLowerCase();
  return ["authorization", "traceparent", "via"].includes(n) || ["x-forwarded", "x-b3", "x-cloud-trace", "x-envoy", "x-prefect"].some((p) => n.startsWith(p));
}

/** What a webhook call answered (Prefect records it whatever the status). */
export interface WebhookResult {
  readonly status_code: number;
  readonly response_body: string;
  readonly response_headers: Record<string, string>;
}

/**
 * The webhook block's call (Prefect's `Webhook.call` with a string payload): one request with the
 * block's method, URL and headers, the payload as the raw body. A 4xx/5xx answer is a result, not a
 * failure; a request that cannot be made fails (Prefect's "Webhook call failed").
 */
export async function callWebhook(data: Json, payload: string, options: SendOptions = {}): Promise<WebhookResult> {
  const url = text(data.url);
  if (data.allow_private_urls === false) await checkPublicUrl(url);
  const headers: Record<string, string> = {};
  if (isRecord(data.headers)) for (const [k, v] of Object.entries(data.headers)) headers[k] = text(v);
  const method = text(data.method) || "POST";
  const response = await send({ method, url, headers, body: method === "GET" ? undefined : payload, timeoutMs: DEFAULT_TIMEOUT_MS }, options);
  const body = await response.text();
  const responseHeaders: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!shouldRedactHeader(name)) responseHeaders[name] = value;
  });
  return { status_code: response.status, response_body: truncatedTo(1000, body), response_headers: responseHeaders };
}

/** Prefect's `truncated_to`: the beginning and the end, with how much was left out between them. */
export function truncatedTo(length: number, value: string): string {
  if (value.length <= length) return value;
  const half = Math.floor(length / 2);
  const proposed = `${value.slice(0, half)}...${value.length - 2 * half} additional characters...${value.slice(-half)}`;
  return proposed.length < value.length ? proposed : value;
}
