import { randomUUID } from "node:crypto";
import type { ReceivedEvent } from "@prefect/orchestration";
import { afterAll, describe, expect, it } from "vitest";
import { actionTemplateContext, renderActionTemplates, renderRunDeploymentParameters } from "../src/features/automations/template-context.js";
import { HydrationError } from "../src/prefect/hydration.js";
import { renderTemplate, TemplateEngine, TemplateRenderError, templateProblem } from "../src/prefect/templates.js";
import { describeApi, type TestServer } from "./support/server.js";

describe("the template sandbox", () => {
  const engine = new TemplateEngine({ timeoutMs: 3_000, fuel: 2_000_000, memoryMiB: 64 });
  afterAll(() => engine.close());

  it("renders Jinja as Prefect's environment does: chainable undefined, Python's JSON, no loader", async () => {
    expect(await engine.render("{{ a.b }}|{{ missing.x.y }}|{{ d['k'] | upper }}", { a: { b: 1 }, d: { k: "v" } })).toBe("1||V");
    // Jinja's tojson: keys sorted, ASCII only, HTML-safe.
    expect(await engine.render("{{ x | tojson }}", { x: { b: [1, null, true], a: "<é>", "'": "&" } })).toBe(
      '{"\\u0027": "\\u0026", "a": "\\u003c\\u00e9\\u003e", "b": [1, null, true]}',
    );
    expect(await engine.render("{{ x | tojson(2) }}", { x: { a: [1] } })).toBe('{\n  "a": [\n    1\n  ]\n}');
    expect(await engine.render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", { d: { a: 1, b: 2 } })).toBe("a=1;b=2;");
    expect(await engine.render("{{ 90 | humanize_naturaldelta }}, {{ 3 | humanize_ordinal }}, {{ 1234567 | humanize_intcomma }}, {{ 3000000 | humanize_naturalsize }}", {})).toBe(
      "a minute, 3rd, 1,234,567, 3.0 MB",
    );
    await expect(engine.render("{% include 'other' %}", {})).rejects.toThrow(TemplateRenderError);
    await expect(engine.render("{% set l = [1] %}{{ l.append(2) }}", {})).rejects.toThrow(TemplateRenderError);
  });

  it("gives templates no way into JavaScript: prototypes, constructors and globals are not there", async () => {
    const probes = [
      "{{ ''.constructor }}",
      "{{ x.constructor.constructor('return process')() }}",
      "{{ x.__proto__ }}",
      "{{ x | attr('__class__') }}",
      "{{ process }}{{ globalThis }}{{ require }}",
      "{{ x.toString }}",
    ];
    for (const probe of probes) {
      const out = await engine.render(probe, { x: {} }).catch((error: Error) => `failed: ${error.message}`);
      expect(out, probe).not.toMatch(/function|native code|process|object Object/);
    }
  });

  it("cuts off a looping template and a huge one by the sandbox's limits, and keeps working", async () => {
    const looping = "{% for i in range(100) %}{% for j in range(100) %}{% for k in items %}{{ i }}{% endfor %}{% endfor %}{% endfor %}";
    await expect(engine.render(looping, { items: Array.from({ length: 1000 }, (_, i) => i) })).rejects.toThrow(
      "The template ran too long: it took more steps than the sandbox allows.",
    );
    const doubling = "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}";
    await expect(engine.render(doubling, {})).rejects.toThrow("The template needed more memory than the sandbox allows.");
    await expect(engine.render("{{ 'x' * 2000000000 }}", {})).rejects.toThrow(TemplateRenderError);
    await expect(engine.render("{% for i in range(101) %}{% endfor %}", {})).rejects.toThrow("Range too big. The sandbox blocks ranges larger than MAX_TEMPLATE_RANGE=100.");
    const small = new TemplateEngine({ maxOutputChars: 100 });
    await expect(small.render("{{ 'x' * 101 }}", {})).rejects.toThrow("The template rendered more than 100 characters.");
    await small.close();
    // The engine is replaced after a failure that broke it; renders go on.
    expect(await engine.render("{{ 6 * 7 }}", {})).toBe("42");
    expect(process.memoryUsage().heapUsed).toBeLessThan(1024 * 1024 * 1024);
  });

  it("stops a render that outlives its time limit, and the next render works", async () => {
    const slow = new TemplateEngine({ timeoutMs: 200, fuel: 1_000_000_000 });
    await expect(slow.render("{% for i in range(100) %}{% for j in range(100) %}{% for k in items %}{{ k }}{% endfor %}{% endfor %}{% endfor %}", { items: Array(10_000).fill(1) })).rejects.toThrow(
      "The template took longer than 0.2 seconds to render.",
    );
    expect(await slow.render("{{ 'still' }} {{ 'here' }}", {})).toBe("still here");
    await slow.close();
  });

  it("checks syntax with its line, then the loop limits (line 0)", async () => {
    expect(await templateProblem("ok {{ x }}")).toBeNull();
    expect(await templateProblem("a\nb\n{% if %}")).toMatchObject({ line: 3 });
    expect(await templateProblem("{% for a in b %}{% for c in a %}{% for d in c %}{% endfor %}{% endfor %}{% endfor %}")).toEqual({
      line: 0,
      message: "Contains nested for loops at a depth of 3. Templates can nest for loops no more than 2 loops deep.",
    });
    // Text without `{{` or `{%` is never rendered.
    expect(await renderTemplate("{# just text #} 100%", {})).toBe("{# just text #} 100%");
  });
});

function event(fields: Partial<ReceivedEvent> & Pick<ReceivedEvent, "resource">): ReceivedEvent {
  return {
    id: randomUUID(),
    occurred: "2026-03-04T05:06:07.000000Z",
    received: "2026-03-04T05:06:08.000000Z",
    event: "prefect.flow-run.Failed",
    related: [],
    payload: {},
    follows: null,
    ...fields,
  } as ReceivedEvent;
}

async function seed(server: TestServer) {
  const flow = (await server.request("POST", "/flows/", { name: "etl" })).body;
  const deployment = (await server.request("POST", "/deployments/", { name: "nightly", flow_id: flow.id })).body;
  const run = (await server.request("POST", `/deployments/${deployment.id}/create_flow_run`, {})).body;
  await server.request("POST", "/variables/", { name: "region", value: "eu" });
  const automation = (await server.request("POST", "/automations/", { name: "on failure", trigger: { posture: "Reactive", expect: ["prefect.flow-run.Failed"] }, actions: [] })).body;
  const failed = event({
    resource: {
      "prefect.resource.id": `prefect.flow-run.${run.id}`,
      "prefect.resource.name": run.name,
      "prefect.state-type": "FAILED",
      "prefect.state-name": "Failed",
      "prefect.state-message": "boom",
      "prefect.state-timestamp": "2026-03-04T05:06:07.000000Z",
    },
    related: [
      { "prefect.resource.id": `prefect.flow.${flow.id}`, "prefect.resource.role": "flow", "prefect.resource.name": "etl" },
      { "prefect.resource.id": `prefect.deployment.${deployment.id}`, "prefect.resource.role": "deployment", "prefect.resource.name": "nightly" },
    ],
  });
  const stored = await server.db.automations.get(automation.id);
  return { flow, deployment, run, failed, automation: stored! };
}

describeApi("action templates with Prefect's context", (t) => {
  it("renders the event, the automation, labels and the objects a template names", async () => {
    const { flow, deployment, run, failed, automation } = await seed(t.server);
    const source = { automation, triggeringEvent: failed, triggeringLabels: { "prefect.resource.id": `prefect.flow-run.${run.id}` }, firing: null };
    const [subject, body] = await renderActionTemplates(
      t.server.db,
      [
        "{{ automation.name }}: {{ flow.name }}/{{ deployment.name }} {{ flow_run.state.name }}",
        [
          "{{ flow_run.name }} ({{ flow_run.state.message }}) {{ flow_run | ui_url }}",
          "{{ deployment | ui_url }} {{ automation | ui_url }} {{ event | ui_url }}",
          "{{ event.resource.id }} {{ event.resource_in_role['flow'].name }} {{ event.resources_in_role.deployment[0].id }}",
          "{{ labels.prefect.resource.id }} {{ labels['prefect.resource.id'] }} {{ variables.region }}",
          "{{ automation | ui_resource_events_url }} {{ flow_run.id | flow_run_id }}",
        ].join("\n"),
      ],
      source,
      "http://127.0.0.1:4200",
    );
    expect(subject).toBe(`on failure: etl/nightly Failed`);
    expect(body!.split("\n")).toEqual([
      `${run.name} (boom) http://127.0.0.1:4200/runs/flow-run/${run.id}`,
      `http://127.0.0.1:4200/deployments/deployment/${deployment.id} http://127.0.0.1:4200/automations/automation/${automation.id} http://127.0.0.1:4200/events/event/2026-03-04/${failed.id}`,
      `prefect.flow-run.${run.id} etl prefect.deployment.${deployment.id}`,
      `prefect.flow-run.${run.id} prefect.flow-run.${run.id} eu`,
      `http://127.0.0.1:4200/events?resource=prefect.automation.${automation.id} none`,
    ]);
    expect(flow.id).toBeDefined();
  });

  it("reads only the objects a template names, and none without an event", async () => {
    const { automation, failed } = await seed(t.server);
    const source = { automation, triggeringEvent: failed, triggeringLabels: {}, firing: null };
    const { context } = await actionTemplateContext(t.server.db, ["{{ event.flow_run }} {{ x | flow }} {{ deployment.name }}"], source);
    expect(Object.keys(context).sort()).toEqual(["automation", "deployment", "event", "events", "firing", "firings", "labels"]);
    const proactive = await actionTemplateContext(t.server.db, ["{{ flow_run.name }}"], { ...source, triggeringEvent: null });
    expect(proactive.context.flow_run).toBeUndefined();
    expect(await renderActionTemplates(t.server.db, ["[{{ flow_run.name }}][{{ event.id }}]"], { ...source, triggeringEvent: null })).toEqual(["[][]"]);
  });

  it("renders run-deployment parameters as Prefect does: a lone expression keeps its type", async () => {
    const { automation, failed, run } = await seed(t.server);
    const source = { automation, triggeringEvent: failed, triggeringLabels: {}, firing: null };
    const parameters = await renderRunDeploymentParameters(
      t.server.db,
      {
        name: "{{ flow_run.name }}",
        greeting: "Run {{ flow_run.name }} failed",
        count: "{{ flow_run.run_count }}",
        nested: { items: ["{{ [1, 2] }}", "plain"] },
        region: { __prefect_kind: "workspace_variable", variable_name: "region" },
        kept: { __prefect_kind: "none", value: "{{ not rendered }}" },
      },
      source,
    );
    expect(parameters).toEqual({ name: run.name, greeting: `Run ${run.name} failed`, count: 0, nested: { items: [[1, 2], "plain"] }, region: "eu", kept: "{{ not rendered }}" });
    await expect(renderRunDeploymentParameters(t.server.db, { x: { __prefect_kind: "workspace_variable", variable_name: "nope" } }, source)).rejects.toThrow(HydrationError);
  });
});

describeApi("templates in a server's requests", (t) => {
  it("cuts off a looping or huge template in run parameters with a clear 400, and keeps serving", async () => {
    const flow = (await t.server.request("POST", "/flows/", { name: "etl" })).body;
    const deployment = (await t.server.request("POST", "/deployments/", { name: "d", flow_id: flow.id, enforce_parameter_schema: false })).body;
    const run = (template: string) => t.server.request("POST", `/deployments/${deployment.id}/create_flow_run`, { parameters: { x: { __prefect_kind: "jinja", template } } });
    const huge = await run("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}");
    expect(huge).toMatchObject({ status: 400, body: { detail: expect.stringContaining("The template needed more memory than the sandbox allows.") } });
    // Within Prefect's loop limits (3 loops, 2 deep), but a million steps through the macro.
    const looping = await run("{% macro f() %}{% for k in range(100) %}{{ k }}{% endfor %}{% endmacro %}{% for i in range(100) %}{% for j in range(100) %}{{ f() }}{% endfor %}{% endfor %}");
    expect(looping).toMatchObject({ status: 400, body: { detail: expect.stringContaining("The template ran too long") } });
    expect((await t.server.request("GET", "/health")).body).toBe(true);
    expect((await run("{{ 'ok' }}")).body.parameters).toEqual({ x: "ok" });
  });
});
