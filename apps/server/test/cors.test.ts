/**
 * Cross-origin requests (Prefect's `PREFECT_SERVER_CORS_ALLOWED_ORIGINS` / `_METHODS` / `_HEADERS`,
 * `*` by default): the allow headers on answers to other origins, and preflight requests answered
 * before routing, as Starlette's CORSMiddleware answers them.
 */
import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const preflight = (server: TestServer, path: string, origin: string, method: string, headers?: string) =>
  fetch(`${server.url}/api${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}) },
  });

const get = (server: TestServer, path: string, origin: string) => fetch(`${server.url}/api${path}`, { headers: { origin } });

describeApi("CORS, Prefect's defaults", (t) => {
  it("allows any origin on answers", async () => {
    const answer = await get(t.server, "/health", "https://ui.example.com");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("answers a preflight with every method, the headers asked for and a max age", async () => {
    const answer = await preflight(t.server, "/flows/filter", "https://ui.example.com", "POST", "content-type,x-prefect-api-version");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("access-control-allow-origin")).toBe("*");
    expect(answer.headers.get("access-control-allow-methods")?.split(/,\s*/)).toEqual(["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]);
    expect(answer.headers.get("access-control-allow-headers")).toBe("content-type,x-prefect-api-version");
    expect(answer.headers.get("access-control-max-age")).toBe("600");
  });
});

describeApi(
  "CORS, configured",
  (t) => {
    it("allows the origins listed only, naming the one that asked", async () => {
      const allowed = await get(t.server, "/health", "https://b.example.com");
      expect(allowed.headers.get("access-control-allow-origin")).toBe("https://b.example.com");
      expect(allowed.headers.get("vary")).toContain("Origin");
      const refused = await get(t.server, "/health", "https://evil.example.com");
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("answers a preflight with the methods and headers listed", async () => {
      const answer = await preflight(t.server, "/flows/filter", "https://a.example.com", "POST", "content-type,x-other");
      expect(answer.status).toBe(200);
      expect(answer.headers.get("access-control-allow-origin")).toBe("https://a.example.com");
      expect(answer.headers.get("access-control-allow-methods")?.split(/,\s*/)).toEqual(["GET", "POST"]);
      expect(answer.headers.get("access-control-allow-headers")?.split(/,\s*/)).toEqual(["content-type", "x-prefect-api-version"]);
    });

    it("answers a preflight before authentication", async () => {
      const answer = await preflight(t.server, "/flows/filter", "https://a.example.com", "POST");
      expect(answer.status).toBe(200);
      const unauthenticated = await fetch(`${t.server.url}/api/flows/filter`, { method: "POST", headers: { origin: "https://a.example.com" } });
      expect(unauthenticated.status).toBe(401);
    });
  },
  {
    PREFECT_SERVER_CORS_ALLOWED_ORIGINS: "https://a.example.com, https://b.example.com",
    PREFECT_SERVER_API_CORS_ALLOWED_METHODS: "GET,POST",
    PREFECT_SERVER_CORS_ALLOWED_HEADERS: "content-type,x-prefect-api-version",
    PREFECT_SERVER_API_AUTH_STRING: "admin:pass",
  },
);
