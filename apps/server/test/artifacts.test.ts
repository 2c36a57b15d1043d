import type { ReceivedEvent } from "@prefect/orchestration";
import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const locs = (body: { detail: { loc: unknown[] }[] }) => body.detail.map((d) => d.loc);

async function flowRun(server: TestServer, flowName: string, extra: Record<string, unknown> = {}) {
  const flow = await server.request("POST", "/flows/", { name: flowName });
  const run = await server.request("POST", "/flow_runs/", { flow_id: flow.body.id, tags: [], ...extra });
  expect(run.status).toBe(201);
  return { flowId: flow.body.id as string, runId: run.body.id as string };
}

describeApi("artifacts API", (t) => {
  it("creates artifacts with 201 and reads them back", async () => {
    const { runId } = await flowRun(t.server, "f");
    const created = await t.server.request("POST", "/artifacts/", {
      key: "my-table",
      type: "table",
      description: "# rows",
      data: { b: 1, a: [1, 2] },
      metadata_: { rows: "2" },
      flow_run_id: runId,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ key: "my-table", type: "table", description: "# rows", data: { b: 1, a: [1, 2] }, metadata_: { rows: "2" }, flow_run_id: runId, task_run_id: null });
    expect(Object.keys(created.body.data)).toEqual(["b", "a"]);
    expect((await t.server.request("GET", `/artifacts/${created.body.id}`)).body).toEqual(created.body);

    // Everything is optional; data may be any JSON value.
    const bare = await t.server.request("POST", "/artifacts/", {});
    expect(bare.status).toBe(201);
    expect(bare.body).toMatchObject({ key: null, type: null, description: null, data: null, metadata_: null, flow_run_id: null, task_run_id: null });
    for (const data of ["markdown text", 3.5, [1, "two"], true]) {
      const response = await t.server.request("POST", "/artifacts/", { type: "result", data });
      expect(response.status).toBe(201);
      expect((await t.server.request("GET", `/artifacts/${response.body.id}`)).body.data).toEqual(data);
    }
  });

  it("cuts metadata values longer than 500 characters, as Prefect does", async () => {
    const created = await t.server.request("POST", "/artifacts/", { metadata_: { long: "x".repeat(600), short: "ok" } });
    expect(created.status).toBe(201);
    expect(created.body.metadata_).toEqual({ long: `${"x".repeat(500)}...`, short: "ok" });
  });

  it("answers 404 for unknown artifacts and keys, and for ids that are not UUIDs (no such route)", async () => {
    expect(await t.server.request("GET", `/artifacts/${MISSING}`)).toMatchObject({ status: 404, body: { detail: "Artifact not found." } });
    expect(await t.server.request("GET", "/artifacts/nope/latest")).toMatchObject({ status: 404, body: { detail: "Artifact not found." } });
    expect(await t.server.request("PATCH", `/artifacts/${MISSING}`, { description: "x" })).toMatchObject({ status: 404, body: { detail: "Artifact not found." } });
    expect(await t.server.request("DELETE", `/artifacts/${MISSING}`)).toMatchObject({ status: 404, body: { detail: "Artifact not found." } });
    expect(await t.server.request("GET", "/artifacts/not-a-uuid")).toMatchObject({ status: 404, body: { detail: "Not Found" } });
  });

  it("answers bad bodies with 422 listing each problem and where, writing nothing", async () => {
    const bad = await t.server.request("POST", "/artifacts/", { key: "Bad_Key", metadata_: { n: 1 }, flow_run_id: "nope", extra: true });
    expect(bad.status).toBe(422);
    expect(locs(bad.body)).toEqual(expect.arrayContaining([["body", "key"], ["body", "metadata_", "n"], ["body", "flow_run_id"], ["body", "extra"]]));
    expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[1] === "key").msg).toBe(
      "Value error, Artifact key must only contain lowercase letters, numbers, and dashes.",
    );
    expect((await t.server.request("POST", "/artifacts/", undefined, { raw: "[1," })).status).toBe(422);
    expect((await t.server.request("POST", "/artifacts/", ["not", "an", "object"])).status).toBe(422);
    expect((await t.server.request("POST", "/artifacts/count", {})).body).toBe(0);
    expect((await t.server.request("POST", "/artifacts/latest/count", {})).body).toBe(0);

    const { body: artifact } = await t.server.request("POST", "/artifacts/", { key: "k", description: "before" });
    const badPatch = await t.server.request("PATCH", `/artifacts/${artifact.id}`, { description: 5, key: "other" });
    expect(badPatch.status).toBe(422);
    expect(locs(badPatch.body)).toEqual(expect.arrayContaining([["body", "description"], ["body", "key"]]));
    expect((await t.server.request("GET", `/artifacts/${artifact.id}`)).body).toEqual(artifact);
  });

  it("keeps the latest artifact of each key as its collection", async () => {
    const first = (await t.server.request("POST", "/artifacts/", { key: "report", data: 1, description: "v1" })).body;
    const second = (await t.server.request("POST", "/artifacts/", { key: "report", data: 2, description: "v2" })).body;
    const other = (await t.server.request("POST", "/artifacts/", { key: "other", data: 3 })).body;

    const latest = await t.server.request("GET", "/artifacts/report/latest");
    expect(latest.status).toBe(200);
    expect(latest.body).toMatchObject({ key: "report", data: 2, description: "v2" });
    // As in Prefect, the collection answers with its own id.
    expect(latest.body).not.toHaveProperty("latest_id");

    const collections = await t.server.request("POST", "/artifacts/latest/filter", { sort: "KEY_ASC" });
    expect(collections.body.map((c: { key: string; latest_id: string }) => [c.key, c.latest_id])).toEqual([
      ["other", other.id],
      ["report", second.id],
    ]);
    expect(latest.body.id).toBe(collections.body[1].id);
    expect((await t.server.request("POST", "/artifacts/latest/count", null)).body).toBe(2);
    expect((await t.server.request("POST", "/artifacts/count", null)).body).toBe(3);

    // Updating the latest artifact updates its collection; an older one leaves it alone.
    expect((await t.server.request("PATCH", `/artifacts/${second.id}`, { description: "v2 edited", metadata_: { m: "1" } })).status).toBe(204);
    expect((await t.server.request("GET", "/artifacts/report/latest")).body).toMatchObject({ description: "v2 edited", metadata_: { m: "1" }, data: 2 });
    expect((await t.server.request("PATCH", `/artifacts/${first.id}`, { data: { old: true } })).status).toBe(204);
    expect((await t.server.request("GET", `/artifacts/${first.id}`)).body).toMatchObject({ data: { old: true }, description: "v1" });
    expect((await t.server.request("GET", "/artifacts/report/latest")).body.data).toBe(2);

    // Deleting the latest falls back to the previous version; deleting the last removes the key.
    expect((await t.server.request("DELETE", `/artifacts/${second.id}`)).status).toBe(204);
    expect((await t.server.request("GET", "/artifacts/report/latest")).body).toMatchObject({ data: { old: true }, description: "v1" });
    expect((await t.server.request("DELETE", `/artifacts/${first.id}`)).status).toBe(204);
    expect((await t.server.request("GET", "/artifacts/report/latest")).status).toBe(404);
    expect((await t.server.request("DELETE", `/artifacts/${first.id}`)).status).toBe(404);
    expect((await t.server.request("POST", "/artifacts/latest/count", {})).body).toBe(1);
  });

  it("filters, sorts, pages and counts artifacts and collections by their fields and their runs", async () => {
    const a = await flowRun(t.server, "flow-a");
    const b = await flowRun(t.server, "flow-b");
    const task = await t.server.request("POST", "/task_runs/", { flow_run_id: a.runId, task_key: "t", dynamic_key: "0", name: "t-0" });
    expect(task.status).toBe(201);
    const make = async (body: Record<string, unknown>) => (await t.server.request("POST", "/artifacts/", body)).body.id as string;
    const ids = {
      tableA: await make({ key: "table-a", type: "table", flow_run_id: a.runId, task_run_id: task.body.id }),
      mdA: await make({ key: "md", type: "markdown", flow_run_id: a.runId }),
      mdB: await make({ key: "md", type: "markdown", flow_run_id: b.runId }),
      loose: await make({ type: "result" }),
    };
    const read = async (path: string, body: unknown) => {
      const response = await t.server.request("POST", path, body);
      expect(response.status).toBe(200);
      return response.body.map((x: { id: string; latest_id?: string }) => x.latest_id ?? x.id);
    };

    expect(await read("/artifacts/filter", {})).toEqual(Object.values(ids).sort().reverse());
    expect(await read("/artifacts/filter", { artifacts: { key: { any_: ["md"] } }, sort: "CREATED_DESC" })).toEqual([ids.mdB, ids.mdA]);
    expect(await read("/artifacts/filter", { artifacts: { key: { exists_: false } } })).toEqual([ids.loose]);
    expect(await read("/artifacts/filter", { artifacts: { key: { like_: "tab" } } })).toEqual([ids.tableA]);
    expect(await read("/artifacts/filter", { artifacts: { type: { not_any_: ["markdown"] } }, sort: "CREATED_DESC" })).toEqual([ids.loose, ids.tableA]);
    expect(await read("/artifacts/filter", { artifacts: { flow_run_id: { any_: [b.runId] } } })).toEqual([ids.mdB]);
    expect(await read("/artifacts/filter", { artifacts: { task_run_id: { any_: [task.body.id] } } })).toEqual([ids.tableA]);
    expect(await read("/artifacts/filter", { flows: { name: { any_: ["flow-a"] } }, sort: "CREATED_DESC" })).toEqual([ids.mdA, ids.tableA]);
    expect(await read("/artifacts/filter", { flow_runs: { id: { any_: [b.runId] } } })).toEqual([ids.mdB]);
    expect(await read("/artifacts/filter", { task_runs: { id: { any_: [task.body.id] } } })).toEqual([ids.tableA]);
    expect(await read("/artifacts/filter", { sort: "CREATED_DESC", limit: 2, offset: 1 })).toEqual([ids.mdB, ids.mdA]);
    const mdByIdDesc = [ids.mdA, ids.mdB].sort().reverse();
    expect(await read("/artifacts/filter", { sort: "KEY_ASC", artifacts: { key: { exists_: true } } })).toEqual([...mdByIdDesc, ids.tableA]);

    expect(await read("/artifacts/latest/filter", { sort: "KEY_DESC" })).toEqual([ids.tableA, ids.mdB]);
    expect(await read("/artifacts/latest/filter", { artifacts: { latest_id: { any_: [ids.mdB] } } })).toEqual([ids.mdB]);
    expect(await read("/artifacts/latest/filter", { flows: { name: { any_: ["flow-a"] } } })).toEqual([ids.tableA]);
    expect(await read("/artifacts/latest/filter", { artifacts: { type: { any_: ["markdown"] } } })).toEqual([ids.mdB]);

    expect((await t.server.request("POST", "/artifacts/count", { flows: { name: { any_: ["flow-a"] } } })).body).toBe(2);
    expect((await t.server.request("POST", "/artifacts/count", { artifacts: { type: { any_: ["markdown", "result"] } } })).body).toBe(3);
    expect((await t.server.request("POST", "/artifacts/latest/count", { flow_runs: { id: { any_: [a.runId] } } })).body).toBe(1);
    expect((await t.server.request("POST", "/artifacts/latest/count", { task_runs: { id: { any_: [task.body.id] } } })).body).toBe(1);

    for (const path of ["/artifacts/filter", "/artifacts/latest/filter"]) {
      expect((await t.server.request("POST", path, { limit: 201 })).status).toBe(422);
      const bad = await t.server.request("POST", path, { sort: "NOPE", offset: -1, artifacts: { key: { bad: 1 } } });
      expect(bad.status).toBe(422);
      expect(locs(bad.body)).toEqual(expect.arrayContaining([["body", "sort"], ["body", "offset"], ["body", "artifacts", "key", "bad"]]));
    }
    expect((await t.server.request("POST", "/artifacts/count", { flow_runs: { id: { any_: ["nope"] } } })).status).toBe(422);
    expect((await t.server.request("POST", "/artifacts/latest/count", { artifacts: { id: {} } })).status).toBe(422);
  });

  it("filters by the deployment of the artifact's flow run", async () => {
    const flow = await t.server.request("POST", "/flows/", { name: "deployed" });
    const { row: deployment } = await t.server.db.deployments.create({ name: "prod", flow_id: flow.body.id });
    const run = await t.server.request("POST", "/flow_runs/", { flow_id: flow.body.id, deployment_id: deployment.id });
    expect(run.status).toBe(201);
    const other = await flowRun(t.server, "undeployed");
    const mine = (await t.server.request("POST", "/artifacts/", { key: "dep", flow_run_id: run.body.id })).body;
    await t.server.request("POST", "/artifacts/", { key: "nodep", flow_run_id: other.runId });
    const filtered = await t.server.request("POST", "/artifacts/filter", { deployments: { id: { any_: [deployment.id] } } });
    expect(filtered.body.map((x: { id: string }) => x.id)).toEqual([mine.id]);
    expect((await t.server.request("POST", "/artifacts/latest/count", { deployments: { name: { any_: ["prod"] } } })).body).toBe(1);
  });

  it("publishes Prefect's artifact collection lifecycle events", async () => {
    const { runId } = await flowRun(t.server, "ev");
    const seen: ReceivedEvent[] = [];
    t.server.context.events.subscribe((events) => seen.push(...events));
    const first = (await t.server.request("POST", "/artifacts/", { key: "ev", type: "markdown", data: "one", flow_run_id: runId })).body;
    const second = (await t.server.request("POST", "/artifacts/", { key: "ev", type: "markdown", data: "two", description: "d" })).body;
    await t.server.request("POST", "/artifacts/", { type: "unkeyed" });
    await t.server.request("DELETE", `/artifacts/${first.id}`);
    await t.server.request("DELETE", `/artifacts/${second.id}`);
    expect(seen.map((e) => e.event)).toEqual([
      "prefect.artifact-collection.created",
      "prefect.artifact-collection.updated",
      "prefect.artifact-collection.deleted",
    ]);
    const collectionId = seen[0]!.resource["prefect.resource.id"];
    expect(collectionId).toMatch(/^prefect\.artifact-collection\./);
    for (const event of seen) expect(event.resource).toEqual({ "prefect.resource.id": collectionId, "prefect.resource.name": "ev" });
    expect(seen[0]!.related).toEqual([
      { "prefect.resource.id": `prefect.artifact.${first.id}`, "prefect.resource.role": "latest" },
      { "prefect.resource.id": `prefect.flow-run.${runId}`, "prefect.resource.role": "flow-run" },
    ]);
    expect(seen[0]!.payload).toEqual({ key: "ev", type: "markdown", data: "one", description: null });
    expect(seen[1]!.payload).toEqual({ key: "ev", type: "markdown", data: "two", description: "d" });
    expect(seen[2]!.related).toEqual([{ "prefect.resource.id": `prefect.artifact.${second.id}`, "prefect.resource.role": "latest" }]);
  });
});
