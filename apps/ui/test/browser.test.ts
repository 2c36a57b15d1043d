/**
 * Prefect's UI in a real browser (Debian's chromium, headless) against the real server on a fresh
 * database of each backend under test, seeded through the API: every page opens, shows the seeded
 * data, makes no failed API request and logs no console error. A screenshot of each page is saved
 * under test-results/screenshots/<backend>/. A custom run is submitted through the deployment's
 * form, a work pool is created through the wizard, and an automation is created through the
 * automation wizard, toggled, and found in the list, on its pages and in the deployment's Triggers.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { selectedBackends } from "@prefect/db/testing";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Seeded, seed } from "./support/seed.js";
import { type RunningServer, startServer, UI_DIST } from "./support/server.js";

const CHROMIUM = process.env.PREFECT_TEST_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = join(dirname(fileURLToPath(import.meta.url)), "..", "test-results", "screenshots");
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // WebGL for the run graph, in software.
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
];

// The server runs in its own process: an in-memory SQLite database could not be shared with it.
const backends = selectedBackends().filter((backend) => backend !== "sqlite-memory");

for (const backend of backends) {
  describe(`Prefect's UI in a browser [${backend}]`, () => {
    let server: RunningServer;
    let browser: Browser;
    let page: Page;
    let data: Seeded;
    let problems: string[] = [];
    let shot = 0;

    beforeAll(async () => {
      if (!existsSync(join(UI_DIST, "index.html"))) throw new Error("Build the UI first (pnpm build)");
      if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium)`);
      server = await startServer(backend);
      data = await seed(server.api);
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
      const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
      page = await context.newPage();
      page.on("response", (response) => {
        if (response.url().includes("/api/") && response.status() >= 400) problems.push(`${response.request().method()} ${response.url()} answered ${response.status()}`);
      });
      page.on("requestfailed", (request) => {
        const failure = request.failure()?.errorText ?? "";
        // Requests a page abandons when it moves on are not failures of the server.
        if (request.url().includes("/api/") && !failure.includes("ERR_ABORTED")) problems.push(`${request.method()} ${request.url()} failed: ${failure}`);
      });
      page.on("console", (message) => {
        if (message.type() !== "error") return;
        // Block types' logos live on Prefect's image host, which this offline machine cannot reach.
        const source = message.location().url;
        if (message.text().startsWith("Failed to load resource") && source && !source.startsWith(server.url)) return;
        problems.push(`console error: ${message.text()} (${source})`);
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      rmSync(join(SCREENSHOTS, backend), { recursive: true, force: true });
      mkdirSync(join(SCREENSHOTS, backend), { recursive: true });
    });

    afterAll(async () => {
      await browser?.close();
      await server?.stop();
    });

    /** Opens `path`, waits for every text to show, then checks that nothing failed and takes a screenshot. */
    async function visit(name: string, path: string, texts: readonly string[], after?: () => Promise<void>, tabTexts?: { tab: string; texts: readonly string[] }): Promise<void> {
      problems = [];
      shot += 1;
      const screenshot = join(SCREENSHOTS, backend, `${String(shot).padStart(2, "0")}-${name}.png`);
      try {
        await page.goto(`${server.url}${path}`);
        for (const text of texts) await page.getByText(text, { exact: false }).first().waitFor({ state: "visible", timeout: 30_000 });
        await after?.();
        if (tabTexts) {
          await page.locator(".p-tabs--not-mobile .p-tab").filter({ hasText: new RegExp(`^\\s*${tabTexts.tab}\\s*$`) }).first().click();
          for (const text of tabTexts.texts) await page.getByText(text, { exact: false }).first().waitFor({ state: "visible", timeout: 30_000 });
        }
        await page.waitForLoadState("networkidle");
      } finally {
        await page.screenshot({ path: screenshot, fullPage: false });
      }
      expect(problems, `${name}: ${problems.join("\n")}`).toEqual([]);
    }

    it("shows the dashboard, the runs with their scatter plot, and a flow run with its graph, logs and task runs", async () => {
      await visit("dashboard", "/", ["Dashboard", "Flow Runs", data.pool]);
      expect(new URL(page.url()).pathname).toBe("/dashboard");
      await visit("runs", "/runs", [data.run.name, data.failedRun.name, "2 Task runs"]);
      expect(await page.locator(".runs__scatter-plot svg circle, .runs__scatter-plot canvas, .runs__scatter-plot svg").count()).toBeGreaterThan(0);
      await visit("flow-run", `/runs/flow-run/${data.run.id}`, [data.run.name, "Starting the load"], async () => {
        await page.locator(".flow-run-graph-panel__graph canvas").first().waitFor({ timeout: 30_000 });
      });
      await visit("flow-run-task-runs", `/runs/flow-run/${data.run.id}`, [], undefined, { tab: "Task Runs", texts: ["extract-rows", "load-rows"] });
      await visit("flow-run-subflows", `/runs/flow-run/${data.run.id}`, [], undefined, { tab: "Subflow Runs", texts: [data.subflowRun.name] });
      await visit("flow-run-artifacts", `/runs/flow-run/${data.run.id}`, [], undefined, { tab: "Artifacts", texts: [data.artifactKey] });
      await visit("flow-run-parameters", `/runs/flow-run/${data.run.id}`, [], undefined, { tab: "Parameters", texts: ['"table": "users"'] });
      await visit("task-run", `/runs/task-run/${data.task.id}`, [data.task.name, data.logMessage]);
    });

    it("shows flows and deployments, with a deployment's runs, parameters and configuration", async () => {
      await visit("flows", "/flows", [data.flow.name, "1 Deployment", "upcoming-load"]);
      await visit("flow", `/flows/flow/${data.flow.id}`, [data.flow.name, data.run.name]);
      await visit("deployments", "/deployments", [data.deployment.name, data.flow.name]);
      await visit("deployment", `/deployments/deployment/${data.deployment.id}`, [data.deployment.name, "Hourly"]);
      await visit("deployment-runs", `/deployments/deployment/${data.deployment.id}`, [], undefined, { tab: "Runs", texts: [data.failedRun.name] });
      await visit("deployment-upcoming", `/deployments/deployment/${data.deployment.id}`, [], undefined, { tab: "Upcoming", texts: ["upcoming-load"] });
      await visit("deployment-parameters", `/deployments/deployment/${data.deployment.id}`, [], undefined, { tab: "Parameters", texts: ["table", "users"] });
      await visit("deployment-configuration", `/deployments/deployment/${data.deployment.id}`, [], undefined, { tab: "Configuration", texts: [data.pool] });
      await visit("deployment-edit", `/deployments/deployment/${data.deployment.id}/edit`, ["Edit", "Loads the day's rows"]);
      await visit("deployment-duplicate", `/deployments/deployment/${data.deployment.id}/duplicate`, ["Duplicate"]);
    });

    it("submits a custom run from the deployment's form", async () => {
      const before = await countRuns();
      await visit("deployment-run", `/deployments/deployment/${data.deployment.id}/run`, ["Run", "table"]);
      problems = [];
      await page.getByRole("button", { name: "Submit" }).click();
      await page.waitForURL((url) => url.pathname === `/deployments/deployment/${data.deployment.id}`, { timeout: 30_000 });
      await page.waitForLoadState("networkidle");
      expect(problems).toEqual([]);
      expect(await countRuns()).toBe(before + 1);
    });

    it("shows work pools, a pool's queues and workers, and creates a pool through the wizard", async () => {
      await visit("work-pools", "/work-pools", [data.pool]);
      await visit("work-pool", `/work-pools/work-pool/${data.pool}`, [data.pool, "pnpm worker"]);
      await visit("work-pool-queues", `/work-pools/work-pool/${data.pool}`, [], undefined, { tab: "Work Queues", texts: [data.queue, "default"] });
      await visit("work-pool-queue", `/work-pools/work-pool/${data.pool}/queue/${data.queue}`, [data.queue]);
      await visit("work-pool-edit", `/work-pools/work-pool/${data.pool}/edit`, [data.pool]);
      await visit("work-pool-queue-create", `/work-pools/work-pool/${data.pool}/queue/create`, ["Create"]);
      await visit("work-pool-queue-edit", `/work-pools/work-pool/${data.pool}/queue/${data.queue}/edit`, [data.queue]);
      await visit("work-queue", `/work-queues/work-queue/${await queueId()}`, [data.queue]);
      await visit("work-pool-create", "/work-pools/create", ["Process", "Execute flow runs as subprocesses"]);
      problems = [];
      await page.getByText("Process", { exact: true }).first().click();
      await page.getByLabel("Name").fill("wizard-pool");
      await page.getByRole("button", { name: "Next" }).click();
      await page.getByText("Base Job Template").first().waitFor();
      await page.getByRole("button", { name: "Create" }).click();
      await page.waitForURL((url) => url.pathname === "/work-pools/work-pool/wizard-pool", { timeout: 30_000 });
      await page.waitForLoadState("networkidle");
      expect(problems).toEqual([]);
      const created = await (await fetch(`${server.api}/work_pools/wizard-pool`)).json();
      expect(created).toMatchObject({ name: "wizard-pool", type: "process" });
      expect(created.base_job_template.job_configuration.command).toBe("{{ command }}");
    });

    it("shows blocks, the catalogue and a block's pages, variables, artifacts, events and concurrency limits", async () => {
      await visit("blocks", "/blocks", [data.block.name]);
      await visit("blocks-catalog", "/blocks/catalog", ["Secret", "Webhook", "Local File System"]);
      await visit("blocks-catalog-view", "/blocks/catalog/secret", ["Secret"]);
      await visit("block-create", "/blocks/catalog/secret/create", ["Block Name"]);
      await visit("block", `/blocks/block/${data.block.id}`, [data.block.name, "********"]);
      await visit("block-edit", `/blocks/block/${data.block.id}/edit`, [data.block.name]);
      await visit("variables", "/variables", [data.variable, "eu-west-1"]);
      await visit("artifacts", "/artifacts", [data.artifactKey]);
      await visit("artifact-key", `/artifacts/key/${data.artifactKey}`, [data.artifactKey, "Rows loaded"]);
      await visit("artifact", `/artifacts/artifact/${data.artifactId}`, ["Rows loaded"]);
      await visit("events", "/events", ["Event Feed", "Warehouse rows loaded"]);
      await visit("event", `/events/event/${data.event.occurred.slice(0, 10)}/${data.event.id}`, ["warehouse.rows.loaded"]);
      await visit("concurrency", "/concurrency-limits", [data.globalLimit.name]);
      await visit("concurrency-task-run", "/concurrency-limits", [], undefined, { tab: "Task Run", texts: [data.tagLimit.tag] });
      await visit("concurrency-limit", `/concurrency-limits/concurrency-limit/${data.tagLimit.id}`, [data.tagLimit.tag]);
      await visit("concurrency-limit-global", `/concurrency-limits/concurrency-limit/${data.globalLimit.id}`, [data.globalLimit.name]);
    });

    it("creates an automation through the wizard, toggles it, and shows it in the list, on its pages and in a deployment's Triggers", async () => {
      await visit("automations-empty", "/automations", ["Create an automation to get started"]);
      await visit("automation-create", "/automations/create", ["Trigger Template", "Flow run state"]);
      problems = [];
      await choose(".automation-wizard__template", "Custom");
      await page.getByText("prefect.flow-run.Failed").first().waitFor();
      await page.getByRole("button", { name: "Next" }).click();
      await choose(".automation-wizard__action-type", "Run a deployment");
      await choose(".automation-deployment-combobox", data.deployment.name);
      await page.getByRole("button", { name: "Next" }).click();
      await page.locator(".automation-wizard__name input").fill("rerun on failure");
      await page.screenshot({ path: join(SCREENSHOTS, backend, `${String(++shot).padStart(2, "0")}-automation-create-details.png`) });
      await page.getByRole("button", { name: "Create" }).click();
      await page.waitForURL((url) => url.pathname === "/automations", { timeout: 30_000 });
      await page.getByText("rerun on failure").first().waitFor();
      await page.waitForLoadState("networkidle");
      expect(problems).toEqual([]);

      const [created] = await automations();
      expect(created).toMatchObject({
        name: "rerun on failure",
        enabled: true,
        trigger: { type: "event", posture: "Reactive", expect: ["prefect.flow-run.Failed"] },
        actions: [{ type: "run-deployment", source: "selected", deployment_id: data.deployment.id }],
      });

      await visit("automations", "/automations", ["rerun on failure", "A custom trigger", "Run deployment"], async () => {
        await page.locator(".automations__item .p-toggle").first().click();
        await page.waitForLoadState("networkidle");
      });
      expect((await automations())[0]!.enabled).toBe(false);
      await visit("automation", `/automations/automation/${created!.id}`, ["rerun on failure", "A custom trigger", data.deployment.name]);
      await visit("automation-edit", `/automations/automation/${created!.id}/edit`, ["Edit", "Trigger Template", "Custom"]);
      await visit("deployment-triggers", `/deployments/deployment/${data.deployment.id}`, [], undefined, { tab: "Triggers", texts: ["rerun on failure"] });
      // "Automate" from an event starts the wizard from that event.
      await visit("automation-from-event", `/automations/create?from=event&eventId=${data.event.id}&occurred=${encodeURIComponent(data.event.occurred)}`, ["Trigger Template", "Custom"]);
    });

    it("shows the settings and a 404 page", async () => {
      await visit("settings", "/settings", ["Theme", "Color Mode"]);
      await visit("not-found", "/no/such/page", ["404: nothing here"]);
    });

    /** Picks `option` in the select under `selector` (the library's selects open from the keyboard). */
    async function choose(selector: string, option: string): Promise<void> {
      await page.locator(`${selector} button`).first().focus();
      await page.keyboard.press("ArrowDown");
      await page.locator(".p-select-option").filter({ hasText: option }).first().click();
    }

    async function automations(): Promise<{ id: string; name: string; enabled: boolean }[]> {
      const response = await fetch(`${server.api}/automations/filter`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      return (await response.json()) as { id: string; name: string; enabled: boolean }[];
    }

    async function countRuns(): Promise<number> {
      const response = await fetch(`${server.api}/flow_runs/count`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ deployments: { id: { any_: [data.deployment.id] } } }),
      });
      return (await response.json()) as number;
    }

    async function queueId(): Promise<string> {
      const response = await fetch(`${server.api}/work_pools/${data.pool}/queues/${data.queue}`);
      return ((await response.json()) as { id: string }).id;
    }
  });
}
