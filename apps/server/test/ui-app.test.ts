/**
 * The UI served by the server (its files, the fallback to index.html, caching, compression), Prefect's
 * `/ui-settings`, the collections view the work-pool wizard reads, and the server without a built UI.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { describeApi } from "./support/server.js";

const built = mkdtempSync(join(tmpdir(), "prefect-ui-"));
mkdirSync(join(built, "assets"));
writeFileSync(join(built, "index.html"), '<!doctype html><html><head><base href="/"><title>Prefect</title></head><body><div id="app"></div></body></html>');
const script = `console.log(${JSON.stringify("x".repeat(4000))});`;
writeFileSync(join(built, "assets", "index-abc123.js"), script);
writeFileSync(join(built, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
afterAll(() => rmSync(built, { recursive: true, force: true }));

const missing = join(tmpdir(), "prefect-ui-never-built");

describeApi(
  "the UI at /",
  (t) => {
    it("serves index.html for the UI's pages, with no-cache, and hashed assets cached for a year, compressed", async () => {
      for (const path of ["/", "/runs", "/runs/flow-run/1234", "/deployments/deployment/x/edit?tab=a"]) {
        const page = await fetch(`${t.server.url}${path}`);
        expect(page.status).toBe(200);
        expect(page.headers.get("content-type")).toMatch(/^text\/html/);
        expect(page.headers.get("cache-control")).toBe("no-cache");
        expect(await page.text()).toContain('<div id="app">');
      }
      const asset = await fetch(`${t.server.url}/assets/index-abc123.js`, { headers: { "accept-encoding": "gzip" } });
      expect(asset.status).toBe(200);
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(asset.headers.get("content-encoding")).toBe("gzip");
      expect(asset.headers.get("content-type")).toMatch(/javascript/);
      // fetch has already decompressed it.
      expect(await asset.text()).toBe(script);
      expect((await fetch(`${t.server.url}/favicon.svg`)).status).toBe(200);
      expect((await fetch(`${t.server.url}/assets/missing-000.js`)).status).toBe(404);
      const outside = await fetch(`${t.server.url}/assets/..%2f..%2fpackage.json`);
      expect([403, 404]).toContain(outside.status);
      expect(await outside.text()).not.toContain("dependencies");
    });

    it("keeps unknown API paths JSON 404s", async () => {
      for (const path of ["/api/no-such-route", "/api/flows/filter/extra", "/api"]) {
        const response = await fetch(`${t.server.url}${path}`);
        expect(response.status).toBe(404);
        expect(await response.json()).toEqual({ detail: "Not Found" });
      }
      expect((await fetch(`${t.server.url}/api/health`)).status).toBe(200);
    });

    it("answers Prefect's /ui-settings with this server's API address", async () => {
      const settings = await (await fetch(`${t.server.url}/ui-settings`)).json();
      expect(settings).toEqual({
        api_url: `${t.server.url}/api`,
        csrf_enabled: false,
        auth: null,
        flags: [],
        default_ui: "v1",
        available_uis: ["v1"],
        v1_base_url: "/",
        v2_base_url: null,
      });
    });
  },
  { PREFECT_UI_STATIC_DIRECTORY: built },
);

describeApi(
  "the UI under a serve base, with basic auth and CSRF protection",
  (t) => {
    it("serves the UI under the base without credentials; the API still needs them", async () => {
      const page = await fetch(`${t.server.url}/prefect/runs`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<base href="/prefect/">');
      expect((await fetch(`${t.server.url}/prefect`)).status).toBe(200);
      expect((await fetch(`${t.server.url}/prefect/assets/index-abc123.js`)).status).toBe(200);
      expect((await fetch(`${t.server.url}/runs`)).status).toBe(404);
      const settings = await (await fetch(`${t.server.url}/prefect/ui-settings`)).json();
      expect(settings).toMatchObject({ api_url: "http://ui.example/api", csrf_enabled: true, auth: "BASIC", v1_base_url: "/prefect" });
      expect((await fetch(`${t.server.url}/api/flows/count`, { method: "POST" })).status).toBe(403);
      expect((await fetch(`${t.server.url}/api/admin/version`)).status).toBe(401);
      const version = await fetch(`${t.server.url}/api/admin/version`, { headers: { authorization: `Basic ${Buffer.from("admin:pass").toString("base64")}` } });
      expect(version.status).toBe(200);
    });
  },
  {
    PREFECT_UI_STATIC_DIRECTORY: built,
    PREFECT_UI_SERVE_BASE: "/prefect/",
    PREFECT_UI_API_URL: "http://ui.example/api",
    PREFECT_SERVER_API_AUTH_STRING: "admin:pass",
    PREFECT_SERVER_CSRF_PROTECTION_ENABLED: "true",
  },
);

describeApi(
  "the server without a built UI",
  (t) => {
    it("serves the API only: pages are JSON 404s, /ui-settings still answers", async () => {
      const page = await fetch(`${t.server.url}/runs`);
      expect(page.status).toBe(404);
      expect(await page.json()).toEqual({ detail: "Not Found" });
      expect(await (await fetch(`${t.server.url}/ui-settings`)).json()).toMatchObject({ available_uis: [], v1_base_url: null });
      expect((await t.server.request("GET", "/health")).body).toBe(true);
    });
  },
  { PREFECT_UI_STATIC_DIRECTORY: missing },
);

describeApi(
  "the UI switched off",
  (t) => {
    it("serves no pages when PREFECT_UI_ENABLED is false", async () => {
      expect((await fetch(`${t.server.url}/`)).status).toBe(404);
    });
  },
  { PREFECT_UI_STATIC_DIRECTORY: built, PREFECT_UI_ENABLED: "false" },
);

describeApi("collections views", (t) => {
  it("describes the process worker with its base job template, offline", async () => {
    const view = await t.server.request("GET", "/collections/views/aggregate-worker-metadata");
    expect(view.status).toBe(200);
    const process = view.body.prefect.process;
    expect(process).toMatchObject({ type: "process", display_name: "Process", is_beta: false });
    expect(process.logo_url).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(Object.keys(process.default_base_job_configuration.job_configuration).sort()).toEqual(["command", "env", "labels", "name", "stream_output", "working_dir"]);
    expect(process.default_base_job_configuration.variables.properties.stream_output).toMatchObject({ type: "boolean", default: true });
    // A pool created from it is accepted as Prefect's API would.
    const pool = await t.server.request("POST", "/work_pools/", { name: "from-wizard", type: "process", base_job_template: process.default_base_job_configuration });
    expect(pool.status).toBe(201);
  });

  it("answers 404 for views it has no content for and for unknown views", async () => {
    expect(await t.server.request("GET", "/collections/views/aggregate-flow-metadata")).toMatchObject({
      status: 404,
      body: { detail: "Requested content missing for view aggregate-flow-metadata" },
    });
    expect(await t.server.request("GET", "/collections/views/nope")).toMatchObject({ status: 404, body: { detail: "View nope not found in registry" } });
  });
});

describe("settings", () => {
  it("refuses a serve base that is not a path", async () => {
    const { loadServerSettings } = await import("../src/settings.js");
    expect(() => loadServerSettings({ PREFECT_UI_SERVE_BASE: "/a b" })).toThrow(/PREFECT_UI_SERVE_BASE/);
    expect(loadServerSettings({ PREFECT_UI_SERVE_BASE: "prefect/" }).ui.serveBase).toBe("/prefect");
    expect(loadServerSettings({}).ui).toEqual({ enabled: true, apiUrl: undefined, serveBase: "/", staticDirectory: undefined });
  });
});
