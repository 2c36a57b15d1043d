import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { callWebhook, NotificationFailed, notificationRequest, sendNotification, UnsupportedNotificationBlock } from "../src/features/blocks/notifications.js";
import { readBlockDocumentById } from "../src/features/blocks/service.js";
import { describeApi } from "./support/server.js";

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A local HTTP receiver: records each request; `/status/<n>` answers that status. */
class Receiver {
  readonly received: Received[] = [];
  #server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.#server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => {
        body += chunk;
      });
      request.on("end", () => {
        this.received.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers, body });
        const status = /^\/status\/(\d+)/.exec(request.url ?? "");
        response.writeHead(status ? Number(status[1]) : 200, { "content-type": "text/plain", "x-forwarded-for": "10.0.0.1", "x-request": "kept", traceparent: "t" });
        response.end(request.url?.includes("long") ? "y".repeat(5000) : "ok");
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.#server?.close(resolve));
  }

  last(): Received & { json: () => Record<string, unknown> } {
    const r = this.received.at(-1)!;
    return { ...r, json: () => JSON.parse(r.body) };
  }
}

const receiver = new Receiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());
beforeEach(() => {
  receiver.received.length = 0;
});

const message = { subject: "Run failed", body: "Flow run *nightly* failed." };

describe("notification blocks' requests, delivered to a local receiver", () => {
  it("posts Slack's incoming-webhook payload", async () => {
    await sendNotification("slack-webhook", { url: `${receiver.url}/services/A/B/C`, notify_type: "failure" }, message);
    const got = receiver.last();
    expect(got).toMatchObject({ method: "POST", url: "/services/A/B/C" });
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.json()).toMatchObject({
      username: "Prefect Notifications",
      attachments: [{ title: "Run failed", text: "Flow run *nightly* failed.", color: "#A32037" }],
    });
  });

  it("posts a Microsoft Teams adaptive card", async () => {
    await sendNotification("ms-teams-webhook", { url: `${receiver.url}/workflows/1/triggers/manual/paths/invoke?api-version=1&sig=s`, wrap: true }, message);
    const got = receiver.last();
    expect(got.url).toBe("/workflows/1/triggers/manual/paths/invoke?api-version=1&sig=s");
    const card = got.json();
    expect(card.type).toBe("message");
    expect((card.attachments as Record<string, unknown>[])[0]).toMatchObject({
      contentType: "application/vnd.microsoft.card.adaptive",
      contentUrl: null,
      content: {
        type: "AdaptiveCard",
        body: [
          { type: "TextBlock", text: "Run failed", weight: "Bolder" },
          { type: "TextBlock", text: "Flow run *nightly* failed.", wrap: true },
        ],
        msteams: { width: "full" },
      },
    });
  });

  it("posts a Discord embed to the webhook's id and token", async () => {
    const data = { webhook_id: "123", webhook_token: "tok/en", botname: "prefect-bot", tts: false, avatar: true, avatar_url: "https://example.com/a.png" };
    await sendNotification("discord-webhook", data, message, { discordWebhooksUrl: `${receiver.url}/api/webhooks` });
    const got = receiver.last();
    expect(got.url).toBe("/api/webhooks/123/tok%2Fen");
    expect(got.json()).toEqual({
      tts: false,
      wait: true,
      username: "prefect-bot",
      avatar_url: "https://example.com/a.png",
      embeds: [{ title: "Run failed", description: "Flow run *nightly* failed.", color: 0x3aa3e3 }],
    });
    expect(notificationRequest("discord-webhook", data, message).url).toBe("https://discord.com/api/webhooks/123/tok%2Fen");
  });

  it("fills a custom webhook's placeholders from the message, its name and its secrets", async () => {
    await sendNotification(
      "custom-webhook",
      {
        name: "ops",
        url: `${receiver.url}/hook/{{ tenant }}`,
        method: "PUT",
        params: { q: "{{subject}}", missing: "{{ nope }}" },
        json_data: { text: "{{ name }}: {{ subject }} - {{ body }}", count: "{{ count }}", nested: ["{{ body }}"] },
        headers: { Authorization: "Bearer {{ token }}" },
        cookies: { session: "{{ token }}" },
        timeout: 5,
        secrets: { tenant: "acme", token: "s3cret", count: 3 },
      },
      message,
    );
    const got = receiver.last();
    expect(got.method).toBe("PUT");
    expect(got.url).toBe("/hook/acme?q=Run+failed");
    expect(got.headers).toMatchObject({ authorization: "Bearer s3cret", cookie: "session=s3cret", "user-agent": "Prefect Notifications", "content-type": "application/json" });
    expect(got.json()).toEqual({ text: "ops: Run failed - Flow run *nightly* failed.", count: 3, nested: ["Flow run *nightly* failed."] });

    await sendNotification("custom-webhook", { url: `${receiver.url}/form`, form_data: { a: "{{ subject }}" } }, { subject: null, body: "b" });
    expect(receiver.last()).toMatchObject({ body: "a=null", headers: { "content-type": "application/x-www-form-urlencoded" } });
    await sendNotification("custom-webhook", { url: `${receiver.url}/raw`, form_data: "raw {{ body }}" }, message);
    expect(receiver.last().body).toBe("raw Flow run *nightly* failed.");
  });

  it("fails clearly: a refused delivery, an unsupported block type, a private URL when they are not allowed", async () => {
    const refused = await sendNotification("slack-webhook", { url: `${receiver.url}/status/403` }, message).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NotificationFailed);
    expect((refused as NotificationFailed).message).toBe("The slack-webhook notification was refused with HTTP 403: ok");
    expect((refused as NotificationFailed).retryable).toBe(false);
    const custom = await sendNotification("custom-webhook", { url: `${receiver.url}/status/500` }, message).catch((e: unknown) => e);
    expect((custom as NotificationFailed).retryable).toBe(true);
    for (const slug of ["twilio-sms", "pager-duty-webhook", "opsgenie-webhook", "mattermost-webhook", "sendgrid-email"]) {
      await expect(sendNotification(slug, {}, message)).rejects.toThrow(UnsupportedNotificationBlock);
    }
    await expect(sendNotification("slack-webhook", { url: `${receiver.url}/x`, allow_private_urls: false }, message)).rejects.toThrow(
      /is not a valid URL\. {2}It resolves to the private address 127\.0\.0\.1\./,
    );
    const count = receiver.received.length;
    await expect(sendNotification("custom-webhook", { url: "http://127.0.0.1:1/nothing-listens" }, message)).rejects.toThrow(NotificationFailed);
    expect(receiver.received.length).toBe(count);
  });
});

describe("the webhook block's call", () => {
  it("sends the payload as the raw body with the block's method and headers; any answer is a result", async () => {
    const result = await callWebhook({ method: "PATCH", url: `${receiver.url}/status/502`, headers: { "Content-Type": "application/json", "X-Key": "k" } }, '{"a": 1}');
    expect(receiver.last()).toMatchObject({ method: "PATCH", url: "/status/502", body: '{"a": 1}', headers: { "content-type": "application/json", "x-key": "k" } });
    expect(result.status_code).toBe(502);
    expect(result.response_body).toBe("ok");
    expect(result.response_headers["x-request"]).toBe("kept");
    expect(result.response_headers["x-forwarded-for"]).toBeUndefined();
    expect(result.response_headers.traceparent).toBeUndefined();
    const long = await callWebhook({ url: `${receiver.url}/long` }, "");
    expect(long.response_body).toBe(`${"y".repeat(500)}...4000 additional characters...${"y".repeat(500)}`);
  });
});

describeApi("notification blocks stored on this server", (t) => {
  it("sends through a Slack block document created the way Prefect's client saves one", async () => {
    await t.server.request("POST", "/block_types/install_system_block_types");
    const type = (await t.server.request("GET", "/block_types/slug/slack-webhook")).body;
    const [schema] = (await t.server.request("POST", "/block_schemas/filter", { block_schemas: { block_type_id: { any_: [type.id] } } })).body;
    const created = await t.server.request("POST", "/block_documents/", {
      name: "alerts",
      block_type_id: type.id,
      block_schema_id: schema.id,
      data: { url: `${receiver.url}/services/T/B/X`, notify_type: "info", allow_private_urls: true },
    });
    expect(created.status).toBe(201);
    expect(created.body.data.url).toBe("********");
    const document = await readBlockDocumentById(t.server.context, created.body.id, true);
    expect(document.block_schema?.capabilities).toEqual(["notify"]);
    await sendNotification(document.block_type!.slug, document.data, { subject: "s", body: "b" });
    expect(receiver.last()).toMatchObject({ url: "/services/T/B/X" });
    expect(receiver.last().json()).toMatchObject({ attachments: [{ title: "s", text: "b" }] });
  });
});
