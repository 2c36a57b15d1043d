import { secondsBetween } from "@prefect/db";
import { describe, expect, it } from "vitest";
import { loadServerSettings, SettingsError } from "../src/settings.js";
import { describeApi, type TestServer } from "./support/server.js";

const ON = { PREFECT_SERVER_CSRF_PROTECTION_ENABLED: "true" };

async function issue(server: TestServer, client: string): Promise<string> {
  const response = await server.request("GET", `/csrf-token?client=${encodeURIComponent(client)}`);
  expect(response.status).toBe(200);
  return response.body.token;
}

const headers = (token: string, client: string) => ({ "prefect-csrf-token": token, "prefect-csrf-client": client });

describeApi(
  "CSRF protection",
  (t) => {
    it("issues a token per client, valid for an hour by default", async () => {
      const response = await t.server.request("GET", "/csrf-token?client=browser-1");
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ client: "browser-1" });
      expect(response.body.token).toMatch(/^[0-9a-f]{64}$/);
      expect(secondsBetween(response.body.expiration, response.body.updated)).toBe(3600);
      expect((await t.server.request("GET", "/admin/settings")).body.server.api.csrf_protection_enabled).toBe(true);
      const missing = await t.server.request("GET", "/csrf-token");
      expect(missing.status).toBe(422);
      expect(missing.body.detail[0]).toMatchObject({ loc: ["query", "client"], msg: "Field required" });
    });

    it("refuses changes without a valid token and client with 403 and Prefect's words", async () => {
      const token = await issue(t.server, "c1");
      const body = { name: "guarded", value: 1 };
      expect(await t.server.request("POST", "/variables/", body)).toMatchObject({ status: 403, body: { detail: "Missing CSRF token." } });
      expect(await t.server.request("POST", "/variables/", body, { headers: { "prefect-csrf-token": token } })).toMatchObject({
        status: 403,
        body: { detail: "Missing client identifier." },
      });
      const wrong = await t.server.request("POST", "/variables/", body, { headers: headers(`${token.slice(0, -1)}${token.endsWith("0") ? "1" : "0"}`, "c1") });
      expect(wrong).toMatchObject({ status: 403, body: { detail: "Invalid CSRF token or client identifier." } });
      expect(wrong.headers.get("access-control-allow-origin")).toBe("*");
      expect((await t.server.request("POST", "/variables/", body, { headers: headers(token, "someone-else") })).status).toBe(403);
      expect((await t.server.request("POST", "/variables/", body, { headers: headers("", "c1") })).status).toBe(403);
      // Refused before the body is even looked at, and nothing was written.
      expect((await t.server.request("POST", "/variables/", { bad: true })).status).toBe(403);
      expect((await t.server.request("POST", "/variables/count", {}, { headers: headers(token, "c1") })).body).toBe(0);

      // Reads need no token.
      expect((await t.server.request("GET", "/variables/name/guarded")).status).toBe(404);
      expect((await t.server.request("GET", "/admin/storage")).status).toBe(200);
    });

    it("lets every kind of change through with the client's current token", async () => {
      const token = await issue(t.server, "c2");
      const h = { headers: headers(token, "c2") };
      const created = await t.server.request("POST", "/variables/", { name: "ok", value: 1 }, h);
      expect(created.status).toBe(201);
      expect((await t.server.request("PATCH", "/variables/name/ok", { value: 2 }, h)).status).toBe(204);
      expect((await t.server.request("PATCH", "/variables/name/ok", { value: 3 })).status).toBe(403);
      expect((await t.server.request("PUT", "/saved_searches/", { name: "s" })).status).toBe(403);
      expect((await t.server.request("PUT", "/saved_searches/", { name: "s" }, h)).status).toBe(201);
      expect((await t.server.request("DELETE", "/variables/name/ok")).status).toBe(403);
      expect((await t.server.request("GET", "/variables/name/ok")).body.value).toBe(2);
      expect((await t.server.request("DELETE", "/variables/name/ok", undefined, h)).status).toBe(204);
      // Validation still applies once the token is accepted.
      expect((await t.server.request("POST", "/variables/", { bad: true }, h)).status).toBe(422);
    });

    it("replaces a client's token when it asks again; other clients keep theirs", async () => {
      const old = await issue(t.server, "c3");
      const other = await issue(t.server, "c4");
      const fresh = await issue(t.server, "c3");
      expect(fresh).not.toBe(old);
      expect((await t.server.request("POST", "/flows/", { name: "a" }, { headers: headers(old, "c3") })).status).toBe(403);
      expect((await t.server.request("POST", "/flows/", { name: "a" }, { headers: headers(fresh, "c3") })).status).toBe(201);
      expect((await t.server.request("POST", "/flows/", { name: "b" }, { headers: headers(other, "c4") })).status).toBe(201);
      expect((await t.server.request("POST", "/flows/", { name: "c" }, { headers: headers(other, "c3") })).status).toBe(403);
    });

    it("refuses an expired token", async () => {
      // Expires one microsecond after it is issued; the server's clock never goes back.
      const expired = await t.server.db.csrfTokens.createOrUpdate("c5", { expires_in_seconds: 0.000001 });
      const response = await t.server.request("POST", "/flows/", { name: "late" }, { headers: headers(expired.token, "c5") });
      expect(response).toMatchObject({ status: 403, body: { detail: "Invalid CSRF token or client identifier." } });
      expect((await t.server.request("POST", "/flows/", { name: "late" }, { headers: headers(await issue(t.server, "c5"), "c5") })).status).toBe(201);
    });
  },
  ON,
);

describeApi(
  "CSRF protection with a configured token lifetime",
  (t) => {
    it("issues tokens valid for PREFECT_SERVER_CSRF_TOKEN_EXPIRATION", async () => {
      const response = await t.server.request("GET", "/csrf-token?client=c");
      expect(secondsBetween(response.body.expiration, response.body.updated)).toBe(120);
    });
  },
  { ...ON, PREFECT_SERVER_CSRF_TOKEN_EXPIRATION: "PT2M" },
);

describeApi(
  "CSRF protection with basic auth",
  (t) => {
    it("checks the CSRF headers first, then the credentials, as Prefect's middleware layers do", async () => {
      const call = (method: string, path: string, headers: Record<string, string> = {}, body?: unknown) =>
        fetch(`${t.server.url}/api${path}`, {
          method,
          headers: { "content-type": "application/json", ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const auth = { authorization: `Basic ${Buffer.from("user:secret").toString("base64")}` };
      const anonymous = await call("POST", "/flows/", {}, { name: "x" });
      expect(anonymous.status).toBe(403);
      expect(await anonymous.json()).toEqual({ detail: "Missing CSRF token." });
      expect((await call("GET", "/csrf-token?client=c")).status).toBe(401);
      const issued = await call("GET", "/csrf-token?client=c", auth);
      expect(issued.status).toBe(200);
      const { token } = (await issued.json()) as { token: string };
      expect((await call("POST", "/flows/", headers(token, "c"), { name: "x" })).status).toBe(401);
      expect((await call("POST", "/flows/", { ...auth, ...headers(token, "c") }, { name: "x" })).status).toBe(201);
    });
  },
  { ...ON, PREFECT_SERVER_API_AUTH_STRING: "user:secret" },
);

describe("CSRF settings", () => {
  it("reads the token lifetime as pydantic reads a timedelta", () => {
    const lifetime = (value: string) => loadServerSettings({ PREFECT_SERVER_CSRF_TOKEN_EXPIRATION: value }).csrfTokenExpirationSeconds;
    expect(loadServerSettings({}).csrfTokenExpirationSeconds).toBe(3600);
    expect(lifetime("90")).toBe(90);
    expect(lifetime("1.5")).toBe(1.5);
    expect(lifetime("PT1H")).toBe(3600);
    expect(lifetime("P1DT2H30M")).toBe(95400);
    expect(lifetime("PT0.5S")).toBe(0.5);
    expect(lifetime("01:30:00")).toBe(5400);
    expect(lifetime("1 day, 0:00:01")).toBe(86401);
    expect(loadServerSettings({ PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION: "PT5M" }).csrfTokenExpirationSeconds).toBe(300);
    for (const bad of ["soon", "P", "PT", "0", "-5", "PT0S"]) expect(() => lifetime(bad)).toThrow(SettingsError);
  });

  it("turns protection on with either of Prefect's setting names", () => {
    expect(loadServerSettings({}).csrfProtection).toBe(false);
    expect(loadServerSettings({ PREFECT_SERVER_CSRF_PROTECTION_ENABLED: "true" }).csrfProtection).toBe(true);
    expect(loadServerSettings({ PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED: "1" }).csrfProtection).toBe(true);
  });
});
