import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendFor } from "../../src/backends/index.js";
import type { Driver } from "../../src/driver/types.js";
import {
  type Artifact,
  type ArtifactCollectionReadOptions,
  type ArtifactCreate,
  type ArtifactReadOptions,
  type Flow,
  type FlowRun,
  InvalidError,
  NotFoundError,
  type TaskRun,
} from "../../src/index.js";
import { insertSql, tables } from "../../src/tables.js";
import { selectedBackends, type TestBackend } from "../../src/testing/backends.js";
import { describeEachBackend, openTestDatabase, type TestDatabase } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

describeEachBackend("artifacts", (t) => {
  const create = (input: ArtifactCreate = {}) => t.db.artifacts.create(input);

  describe("create and get", () => {
    it("creates an artifact and reads it back by id", async () => {
      const artifact = await create({ key: "voltaic", data: 1, metadata_: { description: "opens many doors" } });
      expect(artifact).toMatchObject({ key: "voltaic", data: 1, metadata_: { description: "opens many doors" }, type: null, description: null });
      expect(artifact.created).toBe(artifact.updated);
      expect(await t.db.artifacts.get(artifact.id)).toEqual(artifact);
    });

    it.each([
      ["an integer", 42],
      ["a float", 50.5],
      ["a string", "a markdown **table**"],
      ["a numeric string", "0042"],
      ["a boolean", false],
      ["an array", [1, "two", { three: 3 }, null]],
      ["an object", { rows: [[1, 2]], nested: { ok: true } }],
      ["null", null],
    ])("stores %s as data", async (_, data) => {
      const artifact = await create({ type: "table", data });
      expect((await t.db.artifacts.get(artifact.id))?.data).toStrictEqual(data);
    });

    it("keeps the key order of the data it was given", async () => {
      const data = { zeta: 1, alpha: { y: 2, b: 3, m: [{ z: 0, a: 1 }] }, mid: null };
      const artifact = await create({ key: "ordered", data });
      const read = await t.db.artifacts.get(artifact.id);
      expect(JSON.stringify(read?.data)).toBe(JSON.stringify(data));
      expect(JSON.stringify((await t.db.artifacts.getLatest("ordered"))?.data)).toBe(JSON.stringify(data));
    });

    it("accepts the id it is given, in any case", async () => {
      const id = "0A0B0C0D-0000-4000-8000-00000000000A";
      const artifact = await create({ id, key: "with-id" });
      expect(artifact.id).toBe(id.toLowerCase());
      expect((await t.db.artifacts.get(id))?.id).toBe(id.toLowerCase());
      expect((await t.db.artifacts.getLatest("with-id"))?.latest_id).toBe(id.toLowerCase());
    });

    it("refuses an id that is already taken and leaves the collection as it was", async () => {
      const first = await create({ key: "dup", data: 1 });
      await expect(create({ id: first.id, key: "dup", data: 2 })).rejects.toMatchObject({ code: "ALREADY_EXISTS" });
      expect(await t.db.artifacts.getLatest("dup")).toMatchObject({ latest_id: first.id, data: 1 });
    });

    it.each([["Upper"], ["under_score"], ["with space"], ["dot.ted"], ["slash/y"]])("refuses the key %j", async (key) => {
      await expect(create({ key })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.artifacts.count()).toBe(0);
    });

    it("accepts keys of lowercase letters, numbers and dashes", async () => {
      const artifact = await create({ key: "my-artifact-2024" });
      expect(artifact.key).toBe("my-artifact-2024");
    });

    it("refuses data that is not JSON and metadata that is not a string map", async () => {
      await expect(create({ data: Number.NaN })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ data: new Date() as unknown as string })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ metadata_: { n: 1 } as unknown as Record<string, string> })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ flow_run_id: "not-a-uuid" })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.artifacts.count()).toBe(0);
    });

    it("cuts metadata values longer than 500 characters, as Prefect does", async () => {
      const artifact = await create({ metadata_: { long: "x".repeat(501), exact: "y".repeat(500) } });
      expect(artifact.metadata_?.long).toBe(`${"x".repeat(500)}...`);
      expect(artifact.metadata_?.exact).toBe("y".repeat(500));
      expect((await t.db.artifacts.get(artifact.id))?.metadata_).toEqual(artifact.metadata_);
    });

    it("returns null for an unknown id and refuses a malformed one", async () => {
      expect(await t.db.artifacts.get(MISSING)).toBeNull();
      await expect(t.db.artifacts.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("collections", () => {
    it("upserts the collection of a key to point at a new artifact, copying its fields", async () => {
      const flow = (await t.db.flows.create({ name: "f" })).row;
      const run = (await t.db.flowRuns.create({ flow_id: flow.id })).row;
      const artifact = await create({ key: "voltaic", type: "markdown", description: "d", data: { a: 1 }, metadata_: { m: "1" }, flow_run_id: run.id });
      const collection = await t.db.artifacts.getLatest("voltaic");
      expect(collection).toMatchObject({
        key: "voltaic",
        latest_id: artifact.id,
        type: "markdown",
        description: "d",
        data: { a: 1 },
        metadata_: { m: "1" },
        flow_run_id: run.id,
        task_run_id: null,
      });
      expect(collection?.id).not.toBe(artifact.id);
      expect(collection?.created).toBe(collection?.updated);
    });

    it("creates no collection for an artifact without a key", async () => {
      await create({ data: 1, description: "Some info about my artifact" });
      await create({ key: null, data: 2 });
      expect(await t.db.artifacts.countLatest()).toBe(0);
      expect(await t.db.artifacts.count()).toBe(2);
    });

    it("keeps every version and points the collection at the newest", async () => {
      const first = await create({ key: "voltaic", data: 1, description: "first", type: "table" });
      const before = await t.db.artifacts.getLatest("voltaic");
      const second = await create({ key: "voltaic", data: 2 });
      expect(await t.db.artifacts.get(first.id)).not.toBeNull();
      expect(await t.db.artifacts.get(second.id)).not.toBeNull();
      const after = await t.db.artifacts.getLatest("voltaic");
      // Every field comes from the newest version, unset ones included.
      expect(after).toMatchObject({ id: before?.id, created: before?.created, latest_id: second.id, data: 2, description: null, type: null });
      expect(after!.updated > before!.updated).toBe(true);
      expect(second.created > first.created).toBe(true);
    });

    it("returns null for a key without a collection", async () => {
      expect(await t.db.artifacts.getLatest("missing")).toBeNull();
    });

    it("points the collection at the newest artifact when many of one key are created at once", async () => {
      const created = await Promise.all(Array.from({ length: 12 }, (_, i) => create({ key: "busy", data: i, description: `v${i}` })));
      const newest = [...created].sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : a.id < b.id ? 1 : -1))[0]!;
      expect(new Set(created.map((a) => a.created)).size).toBe(created.length);
      const collection = await t.db.artifacts.getLatest("busy");
      expect(collection).toMatchObject({ latest_id: newest.id, data: newest.data, description: newest.description });
      expect(await t.db.artifacts.count({ artifacts: { key: { any_: ["busy"] } } })).toBe(12);
      expect(await t.db.artifacts.countLatest()).toBe(1);
    });

    it("keeps the collection on the newest artifact while versions are created and deleted at once", async () => {
      const initial: Artifact[] = [];
      for (let i = 0; i < 4; i++) initial.push(await create({ key: "churn", data: i }));
      const results = await Promise.all([
        t.db.artifacts.delete(initial[3]!.id),
        create({ key: "churn", data: 10 }),
        t.db.artifacts.delete(initial[1]!.id),
        create({ key: "churn", data: 11 }),
        t.db.artifacts.delete(initial[2]!.id),
      ]);
      const remaining = await t.db.artifacts.read({ artifacts: { key: { any_: ["churn"] } }, sort: "CREATED_DESC" });
      expect(remaining.map((a) => a.data).sort()).toEqual([0, 10, 11]);
      expect(results.filter((r) => r !== undefined)).toHaveLength(2);
      expect((await t.db.artifacts.getLatest("churn"))?.latest_id).toBe(remaining[0]!.id);
    });

    it("keeps the collection a copy of the newest version while its versions are updated, deleted and created at once", async () => {
      const versions: Artifact[] = [];
      for (let i = 0; i < 3; i++) versions.push(await create({ key: "mixed", data: i, description: `v${i}` }));
      const [v0, v1, v2] = versions as [Artifact, Artifact, Artifact];
      const outcomes = await Promise.allSettled([
        t.db.artifacts.update(v2.id, { data: 20, description: "v2 updated" }),
        t.db.artifacts.delete(v2.id),
        t.db.artifacts.update(v1.id, { description: "v1 updated" }),
        create({ key: "mixed", data: 3, description: "v3" }),
        t.db.artifacts.update(v2.id, { metadata_: { late: "yes" } }),
        t.db.artifacts.delete(v0.id),
      ]);
      // Only updates of the deleted version may fail, and only as not found (no deadlock, no busy error).
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.status === "rejected") {
          expect([0, 4]).toContain(i);
          expect(outcome.reason).toBeInstanceOf(NotFoundError);
        }
      }
      const remaining = await t.db.artifacts.read({ artifacts: { key: { any_: ["mixed"] } }, sort: "CREATED_DESC" });
      expect(remaining.map((a) => a.description)).toEqual(["v3", "v1 updated"]);
      const collection = await t.db.artifacts.getLatest("mixed");
      const newest = remaining[0]!;
      expect(collection).toMatchObject({
        latest_id: newest.id,
        data: newest.data,
        description: newest.description,
        type: newest.type,
        metadata_: newest.metadata_,
      });
    });

    it("leaves neither artifact nor collection behind when the surrounding transaction fails", async () => {
      await expect(
        t.db.transaction(async (tx) => {
          await tx.artifacts.create({ key: "rolled-back", data: 1 });
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      expect(await t.db.artifacts.count()).toBe(0);
      expect(await t.db.artifacts.getLatest("rolled-back")).toBeNull();
    });
  });

  describe("update", () => {
    it("writes data, description and metadata, and keeps the collection in step", async () => {
      const artifact = await create({ key: "voltaic", data: 1, metadata_: { a: "1" }, description: "old" });
      const updated = await t.db.artifacts.update(artifact.id, { data: { progress: 2 }, description: "new", metadata_: { b: "2" } });
      expect(updated).toMatchObject({ id: artifact.id, key: "voltaic", data: { progress: 2 }, description: "new", metadata_: { b: "2" } });
      expect(updated.updated > artifact.updated).toBe(true);
      expect(updated.created).toBe(artifact.created);
      expect(await t.db.artifacts.get(artifact.id)).toEqual(updated);
      const collection = await t.db.artifacts.getLatest("voltaic");
      expect(collection).toMatchObject({ latest_id: artifact.id, data: { progress: 2 }, description: "new", metadata_: { b: "2" } });
      expect(collection?.updated).toBe(updated.updated);
    });

    it("changes nothing but the update time when no field is given", async () => {
      const artifact = await create({ key: "voltaic", data: 1, description: "keep" });
      const updated = await t.db.artifacts.update(artifact.id, {});
      expect(updated).toMatchObject({ data: 1, description: "keep" });
      expect((await t.db.artifacts.getLatest("voltaic"))?.data).toBe(1);
    });

    it("clears a field given as null", async () => {
      const artifact = await create({ data: 1, description: "gone", metadata_: { a: "b" } });
      const updated = await t.db.artifacts.update(artifact.id, { description: null, metadata_: null });
      expect(updated).toMatchObject({ data: 1, description: null, metadata_: null });
    });

    it("updates an artifact without a key", async () => {
      const progress = await create({ type: "progress", data: 0.0 });
      expect((await t.db.artifacts.update(progress.id, { data: 50.25 })).data).toBe(50.25);
      expect((await t.db.artifacts.get(progress.id))?.data).toBe(50.25);
    });

    it("leaves the collection alone when an older version is updated", async () => {
      const old = await create({ key: "voltaic", data: 1 });
      const latest = await create({ key: "voltaic", data: 2 });
      await t.db.artifacts.update(old.id, { data: 100 });
      expect(await t.db.artifacts.getLatest("voltaic")).toMatchObject({ latest_id: latest.id, data: 2 });
    });

    it("throws NotFoundError for an unknown artifact and InvalidError for bad input", async () => {
      await expect(t.db.artifacts.update(MISSING, { data: 2 })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.artifacts.update("nope", { data: 2 })).rejects.toBeInstanceOf(InvalidError);
      const artifact = await create({ data: 1 });
      await expect(t.db.artifacts.update(artifact.id, { metadata_: { a: 1 } as unknown as Record<string, string> })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("delete", () => {
    it("deletes an artifact and throws NotFoundError the second time", async () => {
      const artifact = await create({ data: 1 });
      await t.db.artifacts.delete(artifact.id);
      expect(await t.db.artifacts.get(artifact.id)).toBeNull();
      await expect(t.db.artifacts.delete(artifact.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.artifacts.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("deleting the only version removes the collection", async () => {
      const artifact = await create({ key: "voltaic", data: 1 });
      await t.db.artifacts.delete(artifact.id);
      expect(await t.db.artifacts.getLatest("voltaic")).toBeNull();
    });

    describe("with three versions", () => {
      let versions: Artifact[];
      beforeEach(async () => {
        versions = [];
        for (const [i, type] of ["table", "markdown", "link"].entries()) {
          versions.push(await create({ key: "voltaic", data: i, type, description: `v${i}`, metadata_: { v: String(i) } }));
        }
      });

      it("deleting the earliest leaves the collection alone", async () => {
        const before = await t.db.artifacts.getLatest("voltaic");
        await t.db.artifacts.delete(versions[0]!.id);
        expect(await t.db.artifacts.get(versions[0]!.id)).toBeNull();
        expect(await t.db.artifacts.getLatest("voltaic")).toEqual(before);
      });

      it("deleting a middle version leaves the collection alone", async () => {
        const before = await t.db.artifacts.getLatest("voltaic");
        await t.db.artifacts.delete(versions[1]!.id);
        expect(await t.db.artifacts.getLatest("voltaic")).toEqual(before);
      });

      it("deleting the latest points the collection at the previous newest version, with its fields", async () => {
        const before = await t.db.artifacts.getLatest("voltaic");
        await t.db.artifacts.delete(versions[2]!.id);
        const after = await t.db.artifacts.getLatest("voltaic");
        expect(after).toMatchObject({ id: before?.id, latest_id: versions[1]!.id, data: 1, type: "markdown", description: "v1", metadata_: { v: "1" } });
        await t.db.artifacts.delete(versions[1]!.id);
        expect((await t.db.artifacts.getLatest("voltaic"))?.latest_id).toBe(versions[0]!.id);
        await t.db.artifacts.delete(versions[0]!.id);
        expect(await t.db.artifacts.getLatest("voltaic")).toBeNull();
      });
    });
  });

  describe("read, count and latest", () => {
    let flow: Flow;
    let otherFlow: Flow;
    let run: FlowRun;
    let otherRun: FlowRun;
    let task: TaskRun;
    let a1: Artifact;
    let a2: Artifact;
    let a3: Artifact;
    let a4: Artifact;
    let a5: Artifact;

    beforeEach(async () => {
      flow = (await t.db.flows.create({ name: "my-flow", tags: ["green"] })).row;
      otherFlow = (await t.db.flows.create({ name: "other-flow" })).row;
      run = (await t.db.flowRuns.create({ flow_id: flow.id, name: "run-a", tags: ["nightly"] })).row;
      otherRun = (await t.db.flowRuns.create({ flow_id: otherFlow.id, name: "run-b" })).row;
      task = (await t.db.taskRuns.create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0", name: "extract" })).row;
      a1 = await create({ key: "voltaic1", type: "table", data: 1, flow_run_id: run.id, task_run_id: task.id });
      a2 = await create({ key: "voltaic2", type: "markdown", data: 2, flow_run_id: run.id });
      a3 = await create({ key: "voltaic2", type: "result", data: 3, flow_run_id: otherRun.id });
      a4 = await create({ type: "result", data: 4, flow_run_id: MISSING });
      a5 = await create({ key: "other-key", data: 5 });
    });

    const ids = async (options: ArtifactReadOptions = {}) => (await t.db.artifacts.read(options)).map((a) => a.id);
    const latestIds = async (options: ArtifactCollectionReadOptions = {}) => (await t.db.artifacts.readLatest(options)).map((c) => c.latest_id);
    const sortedIds = (...artifacts: Artifact[]) => artifacts.map((a) => a.id).sort();

    it("reads every artifact by id descending by default", async () => {
      expect(await ids()).toEqual(sortedIds(a1, a2, a3, a4, a5).reverse());
      expect(await t.db.artifacts.count()).toBe(5);
    });

    it("filters on ids, keys, runs and types", async () => {
      expect((await ids({ artifacts: { id: { any_: [a1.id, a4.id.toUpperCase()] } } })).sort()).toEqual(sortedIds(a1, a4));
      expect((await ids({ artifacts: { key: { any_: ["voltaic2"] } } })).sort()).toEqual(sortedIds(a2, a3));
      expect((await ids({ artifacts: { key: { like_: "OLTAIC" } } })).sort()).toEqual(sortedIds(a1, a2, a3));
      expect((await ids({ artifacts: { key: { like_: "volt%2" } } })).sort()).toEqual(sortedIds(a2, a3));
      expect((await ids({ artifacts: { key: { exists_: false } } })).sort()).toEqual(sortedIds(a4));
      expect((await ids({ artifacts: { key: { exists_: true } } })).sort()).toEqual(sortedIds(a1, a2, a3, a5));
      expect((await ids({ artifacts: { flow_run_id: { any_: [run.id] } } })).sort()).toEqual(sortedIds(a1, a2));
      expect(await ids({ artifacts: { task_run_id: { any_: [task.id] } } })).toEqual([a1.id]);
      expect((await ids({ artifacts: { type: { any_: ["result"] } } })).sort()).toEqual(sortedIds(a3, a4));
      // As in Prefect, excluding types also leaves out artifacts without one.
      expect((await ids({ artifacts: { type: { not_any_: ["result"] } } })).sort()).toEqual(sortedIds(a1, a2));
      expect((await ids({ artifacts: { type: { not_any_: [] } } })).sort()).toEqual(sortedIds(a1, a2, a3, a4, a5));
      expect(await ids({ artifacts: { id: { any_: [] } } })).toEqual([]);
    });

    it("combines criteria with and_ by default, or with or_", async () => {
      const filter = { key: { any_: ["voltaic2"] }, type: { any_: ["table"] } };
      expect(await ids({ artifacts: filter })).toEqual([]);
      expect((await ids({ artifacts: { ...filter, operator: "or_" } })).sort()).toEqual(sortedIds(a1, a2, a3));
    });

    it("filters on the flow run, task run and flow an artifact belongs to", async () => {
      expect((await ids({ flow_runs: { name: { any_: ["run-a"] } } })).sort()).toEqual(sortedIds(a1, a2));
      expect((await ids({ flow_runs: { tags: { all_: ["nightly"] } } })).sort()).toEqual(sortedIds(a1, a2));
      // An or_ inside the run criteria stays within the artifact's own run.
      expect((await ids({ flow_runs: { operator: "or_", name: { any_: ["nope"] }, tags: { all_: ["nightly"] } } })).sort()).toEqual(sortedIds(a1, a2));
      expect(await ids({ task_runs: { name: { any_: ["extract"] } } })).toEqual([a1.id]);
      expect((await ids({ flows: { name: { any_: ["my-flow"] } } })).sort()).toEqual(sortedIds(a1, a2));
      expect(await ids({ flows: { name: { any_: ["other-flow"] } } })).toEqual([a3.id]);
      expect(await ids({ flows: { name: { any_: ["my-flow"] } }, flow_runs: { name: { any_: ["run-b"] } } })).toEqual([]);
      // A criterion given at all requires the run to exist.
      expect((await ids({ flow_runs: {} })).sort()).toEqual(sortedIds(a1, a2, a3));
      expect(await ids({ task_runs: {} })).toEqual([a1.id]);
      expect(await t.db.artifacts.count({ flows: { name: { any_: ["my-flow"] } }, artifacts: { type: { any_: ["table"] } } })).toBe(1);
    });

    it("sorts, limits and offsets", async () => {
      expect(await ids({ sort: "CREATED_DESC" })).toEqual([a5, a4, a3, a2, a1].map((a) => a.id));
      await t.db.artifacts.update(a2.id, { data: 22 });
      expect((await ids({ sort: "UPDATED_DESC" }))[0]).toBe(a2.id);
      const keyDesc = await t.db.artifacts.read({ sort: "KEY_DESC" });
      expect(keyDesc.map((a) => a.key)).toEqual([null, "voltaic2", "voltaic2", "voltaic1", "other-key"]);
      const keyAsc = await t.db.artifacts.read({ sort: "KEY_ASC" });
      expect(keyAsc.map((a) => a.key)).toEqual(["other-key", "voltaic1", "voltaic2", "voltaic2", null]);
      expect(await ids({ sort: "CREATED_DESC", limit: 2 })).toEqual([a5.id, a4.id]);
      expect(await ids({ sort: "CREATED_DESC", limit: 2, offset: 2 })).toEqual([a3.id, a2.id]);
      expect(await ids({ sort: "CREATED_DESC", offset: 4 })).toEqual([a1.id]);
      expect(await ids({ limit: 0 })).toEqual([]);
    });

    it("refuses a bad filter, sort or page", async () => {
      await expect(t.db.artifacts.read({ artifacts: { key: { nope: 1 } } as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.artifacts.read({ artifacts: { id: { any_: ["x"] } } })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.artifacts.read({ sort: "NAME_ASC" as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.artifacts.read({ limit: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.artifacts.count({ flow_runs: { id: { any_: ["x"] } } })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.artifacts.readLatest({ artifacts: { id: { any_: [a1.id] } } as never })).rejects.toBeInstanceOf(InvalidError);
    });

    it("reads the latest version of each key", async () => {
      expect((await latestIds()).sort()).toEqual(sortedIds(a1, a3, a5));
      expect(await t.db.artifacts.countLatest()).toBe(3);
      const collections = await t.db.artifacts.readLatest({ sort: "KEY_ASC" });
      expect(collections.map((c) => [c.key, c.latest_id, c.data])).toEqual([
        ["other-key", a5.id, 5],
        ["voltaic1", a1.id, 1],
        ["voltaic2", a3.id, 3],
      ]);
      expect((await t.db.artifacts.readLatest({ sort: "KEY_DESC" })).map((c) => c.key)).toEqual(["voltaic2", "voltaic1", "other-key"]);
      const byId = await t.db.artifacts.readLatest();
      expect(byId.map((c) => c.id)).toEqual(byId.map((c) => c.id).sort().reverse());
      expect((await t.db.artifacts.readLatest({ sort: "CREATED_DESC" })).map((c) => c.key)).toEqual(["other-key", "voltaic2", "voltaic1"]);
      expect((await t.db.artifacts.readLatest({ sort: "UPDATED_DESC" })).map((c) => c.key)).toEqual(["other-key", "voltaic2", "voltaic1"]);
      expect(await latestIds({ sort: "KEY_ASC", limit: 1, offset: 1 })).toEqual([a1.id]);
    });

    it("filters the latest versions", async () => {
      expect(await latestIds({ artifacts: { latest_id: { any_: [a3.id, a2.id] } } })).toEqual([a3.id]);
      expect(await latestIds({ artifacts: { key: { any_: ["voltaic1"] } } })).toEqual([a1.id]);
      expect((await latestIds({ artifacts: { key: { like_: "voltaic" } } })).sort()).toEqual(sortedIds(a1, a3));
      expect((await latestIds({ artifacts: { key: { exists_: true } } })).sort()).toEqual(sortedIds(a1, a3, a5));
      expect(await latestIds({ artifacts: { flow_run_id: { any_: [run.id] } } })).toEqual([a1.id]);
      expect(await latestIds({ artifacts: { task_run_id: { any_: [task.id] } } })).toEqual([a1.id]);
      expect(await latestIds({ artifacts: { type: { any_: ["result"] } } })).toEqual([a3.id]);
      expect((await latestIds({ artifacts: { type: { not_any_: ["result"] } } })).sort()).toEqual(sortedIds(a1));
      expect(await latestIds({ flows: { name: { any_: ["other-flow"] } } })).toEqual([a3.id]);
      expect(await latestIds({ flow_runs: { name: { any_: ["run-a"] } } })).toEqual([a1.id]);
      expect(await latestIds({ task_runs: { name: { any_: ["extract"] } } })).toEqual([a1.id]);
      expect(await t.db.artifacts.countLatest({ flows: { tags: { all_: ["green"] } } })).toBe(1);
      expect(await t.db.artifacts.countLatest({ artifacts: { key: { any_: ["voltaic1", "voltaic2"] }, operator: "or_", type: { any_: ["x"] } } })).toBe(2);
    });
  });
});

// No repository writes deployments yet: these tests insert them with plain SQL on a second connection,
// so SQLite runs on a file here (another connection cannot see an in-memory database).
const deploymentBackends = [...new Set(selectedBackends().map((b): TestBackend => (b === "sqlite-memory" ? "sqlite-file" : b)))];

describe.each(deploymentBackends)("artifacts by deployment [%s]", (backend) => {
  let test: TestDatabase;
  let raw: Driver;
  let a1: Artifact;
  let a2: Artifact;
  let a3: Artifact;

  beforeEach(async () => {
    test = await openTestDatabase(backend);
    const config = test.config;
    raw = await backendFor(config).connect({ ...config, timeoutSeconds: 5 });
    const { db } = test;
    const nightly = (await db.flows.create({ name: "nightly-etl" })).row;
    const adhoc = (await db.flows.create({ name: "adhoc" })).row;
    const deployment = async (name: string, flowId: string, values: Record<string, unknown>) => {
      const id = randomUUID();
      await raw.execute(insertSql(tables.deployment, { id, name, flow_id: flowId, ...values }));
      return id;
    };
    const prod = await deployment("prod", nightly.id, { tags: ["prod"], paused: false, work_queue_name: "default" });
    const staging = await deployment("staging", adhoc.id, { tags: [], paused: true, work_queue_name: "slow" });
    const prodRun = (await db.flowRuns.create({ flow_id: nightly.id, deployment_id: prod })).row;
    const stagingRun = (await db.flowRuns.create({ flow_id: adhoc.id, deployment_id: staging })).row;
    const manualRun = (await db.flowRuns.create({ flow_id: adhoc.id })).row;
    a1 = await db.artifacts.create({ key: "report", data: 1, flow_run_id: prodRun.id });
    a2 = await db.artifacts.create({ key: "report", data: 2, flow_run_id: stagingRun.id });
    a3 = await db.artifacts.create({ key: "manual", data: 3, flow_run_id: manualRun.id });
  });

  afterEach(async () => {
    await raw?.close();
    await test?.cleanup();
  });

  const ids = async (deployments: Record<string, unknown>) =>
    (await test.db.artifacts.read({ deployments, sort: "CREATED_DESC" })).map((a) => a.id);

  it("reads artifacts whose flow run's deployment matches", async () => {
    expect(await ids({ name: { any_: ["prod"] } })).toEqual([a1.id]);
    expect(await ids({ name: { like_: "TAG" } })).toEqual([a2.id]);
    expect(await ids({ tags: { all_: ["prod"] } })).toEqual([a1.id]);
    expect(await ids({ tags: { is_null_: true } })).toEqual([a2.id]);
    expect(await ids({ paused: { eq_: true } })).toEqual([a2.id]);
    expect(await ids({ work_queue_name: { any_: ["default", "slow"] } })).toEqual([a2.id, a1.id]);
    expect(await ids({ flow_or_deployment_name: { like_: "nightly" } })).toEqual([a1.id]);
    expect(await ids({ flow_or_deployment_name: { like_: "stag" } })).toEqual([a2.id]);
    expect(await ids({ operator: "or_", name: { any_: ["prod"] }, paused: { eq_: true } })).toEqual([a2.id, a1.id]);
    // Given at all, the criterion requires a deployment; the deprecated concurrency_limit is ignored.
    expect(await ids({})).toEqual([a2.id, a1.id]);
    expect(await ids({ concurrency_limit: { ge_: 100 } })).toEqual([a2.id, a1.id]);
    expect(await test.db.artifacts.count({ deployments: { name: { any_: ["prod"] } }, flows: { name: { any_: ["adhoc"] } } })).toBe(0);
    expect(await test.db.artifacts.count({ deployments: { name: { any_: ["staging"] } }, flows: { name: { any_: ["adhoc"] } } })).toBe(1);
  });

  it("reads and counts latest artifacts by deployment", async () => {
    expect((await test.db.artifacts.readLatest({ deployments: { name: { any_: ["staging"] } } })).map((c) => c.latest_id)).toEqual([a2.id]);
    expect(await test.db.artifacts.countLatest({ deployments: { name: { any_: ["prod"] } } })).toBe(0);
    expect(await test.db.artifacts.countLatest({ deployments: {} })).toBe(1);
    expect(await test.db.artifacts.countLatest()).toBe(2);
    expect(a3.key).toBe("manual");
  });

  it("refuses a malformed deployment filter", async () => {
    await expect(test.db.artifacts.read({ deployments: { name: { starts_with_: "p" } } as never })).rejects.toBeInstanceOf(InvalidError);
    await expect(test.db.artifacts.count({ deployments: { id: { any_: ["x"] } } })).rejects.toBeInstanceOf(InvalidError);
  });
});
