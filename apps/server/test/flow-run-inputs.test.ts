import { expect, it } from "vitest";
import { describeApi, type TestServer } from "./support/server.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const locs = (body: { detail: { loc: unknown[] }[] }) => body.detail.map((d) => d.loc);

async function flowRun(server: TestServer): Promise<string> {
  const flow = await server.request("POST", "/flows/", { name: "paused" });
  const run = await server.request("POST", "/flow_runs/", { flow_id: flow.body.id });
  expect(run.status).toBe(201);
  return run.body.id;
}

describeApi("flow run inputs API", (t) => {
  it("creates an input with 201 and reads its value back as plain text", async () => {
    const runId = await flowRun(t.server);
    const created = await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "approval", value: '{"ok": true}', sender: "prefect.flow-run.x" });
    expect(created.status).toBe(201);
    const read = await t.server.request("GET", `/flow_runs/${runId}/input/approval`);
    expect(read.status).toBe(200);
    expect(read.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(read.body).toEqual({ ok: true });

    // The value is kept as sent, byte for byte, JSON or not.
    expect((await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "note", value: "just text, ünïcode" })).status).toBe(201);
    const raw = await fetch(`${t.server.url}/api/flow_runs/${runId}/input/note`);
    expect(raw.status).toBe(200);
    expect(await raw.text()).toBe("just text, ünïcode");
  });

  it("answers 409 for a key the run already has, 404 for an unknown run, writing nothing", async () => {
    const runId = await flowRun(t.server);
    await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "k", value: "1" });
    const again = await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "k", value: "2" });
    expect(again).toMatchObject({ status: 409, body: { detail: "A flow run input with this key already exists." } });
    expect((await t.server.request("GET", `/flow_runs/${runId}/input/k`)).body).toBe(1);
    const orphan = await t.server.request("POST", `/flow_runs/${MISSING}/input`, { key: "k", value: "1" });
    expect(orphan).toMatchObject({ status: 404, body: { detail: "Flow run not found" } });
    expect((await t.server.request("POST", `/flow_runs/${MISSING}/input/filter`, { prefix: "" })).body).toEqual([]);
  });

  it("answers bad requests with 422 listing each problem and where", async () => {
    const runId = await flowRun(t.server);
    const bad = await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "Not_Safe", value: 5, sender: 1 });
    expect(bad.status).toBe(422);
    expect(locs(bad.body)).toEqual(expect.arrayContaining([["body", "key"], ["body", "value"], ["body", "sender"]]));
    expect(bad.body.detail.find((d: { loc: unknown[] }) => d.loc[1] === "key").msg).toBe("Value error, key must only contain lowercase letters, numbers, and dashes.");
    const missing = await t.server.request("POST", `/flow_runs/${runId}/input`, {});
    expect(missing.body.detail).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ loc: ["body", "key"], msg: "Field required" }),
        expect.objectContaining({ loc: ["body", "value"], msg: "Field required" }),
      ]),
    );
    expect((await t.server.request("POST", `/flow_runs/${runId}/input`, undefined)).status).toBe(422);
    expect((await t.server.request("POST", `/flow_runs/${runId}/input`, undefined, { raw: "{" })).status).toBe(422);
    const badId = await t.server.request("POST", "/flow_runs/not-a-uuid/input", { key: "k", value: "v" });
    expect(badId.status).toBe(422);
    expect(locs(badId.body)).toEqual([["path", "id"]]);
    expect((await t.server.request("GET", "/flow_runs/not-a-uuid/input/k")).status).toBe(422);
    expect((await t.server.request("DELETE", "/flow_runs/not-a-uuid/input/k")).status).toBe(422);

    const badFilter = await t.server.request("POST", `/flow_runs/${runId}/input/filter`, { limit: -1, exclude_keys: "k" });
    expect(badFilter.status).toBe(422);
    expect(locs(badFilter.body)).toEqual(expect.arrayContaining([["body", "prefix"], ["body", "limit"], ["body", "exclude_keys"]]));
    expect((await t.server.request("POST", `/flow_runs/${runId}/input/filter`, { prefix: "a", limit: 1.5 })).status).toBe(422);
    expect((await t.server.request("POST", `/flow_runs/${runId}/input/filter`, { prefix: "" })).body).toEqual([]);
  });

  it("filters by key prefix, oldest first, without the excluded keys, one by default", async () => {
    const runId = await flowRun(t.server);
    const otherRun = await flowRun(t.server);
    for (const key of ["resp-1", "resp-2", "other", "resp-3"]) {
      expect((await t.server.request("POST", `/flow_runs/${runId}/input`, { key, value: `"${key}"`, sender: key === "resp-2" ? "me" : null })).status).toBe(201);
    }
    await t.server.request("POST", `/flow_runs/${otherRun}/input`, { key: "resp-9", value: "0" });
    const filter = async (body: Record<string, unknown>) => {
      const response = await t.server.request("POST", `/flow_runs/${runId}/input/filter`, body);
      expect(response.status).toBe(200);
      return response.body;
    };
    const [first] = await filter({ prefix: "resp" });
    expect(first).toMatchObject({ flow_run_id: runId, key: "resp-1", value: '"resp-1"', sender: null });
    expect((await filter({ prefix: "resp" })).length).toBe(1);
    expect((await filter({ prefix: "resp", limit: 10 })).map((i: { key: string }) => i.key)).toEqual(["resp-1", "resp-2", "resp-3"]);
    expect((await filter({ prefix: "resp", limit: 10, exclude_keys: ["resp-1", "resp-3"] }))[0]).toMatchObject({ key: "resp-2", sender: "me" });
    expect((await filter({ prefix: "", limit: 10 })).length).toBe(4);
    expect(await filter({ prefix: "resp", limit: 0 })).toEqual([]);
    expect(await filter({ prefix: "respx", limit: 10 })).toEqual([]);
  });

  it("deletes an input with 204, then answers 404 for it", async () => {
    const runId = await flowRun(t.server);
    await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "gone", value: "1" });
    const deleted = await t.server.request("DELETE", `/flow_runs/${runId}/input/gone`);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBeUndefined();
    expect(await t.server.request("GET", `/flow_runs/${runId}/input/gone`)).toMatchObject({ status: 404, body: { detail: "Flow run input not found" } });
    expect(await t.server.request("DELETE", `/flow_runs/${runId}/input/gone`)).toMatchObject({ status: 404, body: { detail: "Flow run input not found" } });
    expect(await t.server.request("GET", `/flow_runs/${MISSING}/input/gone`)).toMatchObject({ status: 404, body: { detail: "Flow run input not found" } });
    // The same key can be sent again once deleted.
    expect((await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "gone", value: "2" })).status).toBe(201);
  });

  it("goes with its flow run", async () => {
    const runId = await flowRun(t.server);
    await t.server.request("POST", `/flow_runs/${runId}/input`, { key: "k", value: "1" });
    expect((await t.server.request("DELETE", `/flow_runs/${runId}`)).status).toBe(204);
    expect((await t.server.request("GET", `/flow_runs/${runId}/input/k`)).status).toBe(404);
  });
});
