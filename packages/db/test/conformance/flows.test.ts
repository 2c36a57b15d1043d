import { beforeEach, describe, expect, it } from "vitest";
import type { z } from "zod";
import { type Flow, FlowFilter, FlowRunFilter, type FlowSort, InvalidError, NotFoundError, type RunCriteria, TaskRunFilter } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const flowFilter = (f: z.input<typeof FlowFilter>) => FlowFilter.parse(f);
const runFilter = (f: z.input<typeof FlowRunFilter>) => FlowRunFilter.parse(f);
const taskFilter = (f: z.input<typeof TaskRunFilter>) => TaskRunFilter.parse(f);

describeEachBackend("flows", (t) => {
  it("creates a flow and returns the existing one for the same name, untouched", async () => {
    const first = await t.db.flows.create({ name: "etl", tags: ["a"] });
    expect(first.created).toBe(true);
    expect(first.row).toMatchObject({ name: "etl", tags: ["a"], labels: null });
    const again = await t.db.flows.create({ name: "etl", tags: ["b"] });
    expect(again.created).toBe(false);
    expect(again.row.id).toBe(first.row.id);
    expect(again.row.tags).toEqual(["a"]);
  });

  it("refuses a flow without a name", async () => {
    await expect(t.db.flows.create({ name: "" })).rejects.toBeInstanceOf(InvalidError);
  });

  it("reads, updates and deletes by id", async () => {
    const { row } = await t.db.flows.create({ name: "f" });
    expect(await t.db.flows.get(row.id)).toEqual(row);
    const updated = await t.db.flows.update(row.id, { tags: ["x", "y"] });
    expect(updated.tags).toEqual(["x", "y"]);
    expect(updated.updated > row.updated).toBe(true);
    await t.db.flows.delete(row.id);
    expect(await t.db.flows.get(row.id)).toBeNull();
    await expect(t.db.flows.delete(row.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(t.db.flows.update(row.id, { tags: [] })).rejects.toBeInstanceOf(NotFoundError);
  });

  it("answers concurrent reads by id each with its own flow, and null for a missing one", async () => {
    const flows = await Promise.all(["a", "b", "c"].map(async (name) => (await t.db.flows.create({ name })).row));
    const ids = [flows[2]!.id, flows[0]!.id, "00000000-0000-4000-8000-000000000000", flows[1]!.id.toUpperCase(), flows[2]!.id];
    expect(await Promise.all(ids.map((id) => t.db.flows.get(id)))).toEqual([flows[2], flows[0], null, flows[1], flows[2]]);
  });

  it("reads a flow by name", async () => {
    const { row } = await t.db.flows.create({ name: "by-name", labels: { team: "data", tier: 1 } });
    expect(await t.db.flows.getByName("by-name")).toEqual(row);
    expect(await t.db.flows.getByName("missing")).toBeNull();
  });

  it("refuses a malformed id on get, update and delete", async () => {
    await expect(t.db.flows.get("not-a-uuid")).rejects.toBeInstanceOf(InvalidError);
    await expect(t.db.flows.update("not-a-uuid", { tags: [] })).rejects.toBeInstanceOf(InvalidError);
    await expect(t.db.flows.delete("not-a-uuid")).rejects.toBeInstanceOf(InvalidError);
  });

  it("finds a flow by its id in upper case", async () => {
    const { row } = await t.db.flows.create({ name: "upper" });
    expect((await t.db.flows.get(row.id.toUpperCase()))?.id).toBe(row.id);
  });

  it("deletes the flow's runs with it", async () => {
    const { row: flow } = await t.db.flows.create({ name: "doomed" });
    const { row: run } = await t.db.flowRuns.create({ flow_id: flow.id });
    await t.db.flows.delete(flow.id);
    expect(await t.db.flowRuns.get(run.id)).toBeNull();
  });

  describe("read and count", () => {
    let alpha: Flow;
    let beta: Flow;
    let gamma: Flow;

    beforeEach(async () => {
      alpha = (await t.db.flows.create({ name: "alpha-ETL", tags: ["prod", "etl"] })).row;
      beta = (await t.db.flows.create({ name: "beta-report", tags: ["prod"] })).row;
      gamma = (await t.db.flows.create({ name: "gamma-etl-cleanup" })).row;
      const { row: alphaRun } = await t.db.flowRuns.create({ flow_id: alpha.id, name: "nightly", state: { type: "COMPLETED" } });
      await t.db.flowRuns.create({ flow_id: beta.id, name: "weekly", state: { type: "FAILED" } });
      await t.db.taskRuns.create({ flow_run_id: alphaRun.id, task_key: "extract", dynamic_key: "0", name: "extract-0" });
    });

    const names = async (criteria: RunCriteria & { sort?: FlowSort; limit?: number; offset?: number } = {}) =>
      (await t.db.flows.read(criteria)).map((f) => f.name);

    it("reads every flow by name ascending by default", async () => {
      expect(await names()).toEqual(["alpha-ETL", "beta-report", "gamma-etl-cleanup"]);
    });

    it("filters by id any_", async () => {
      expect(await names({ flows: flowFilter({ id: { any_: [alpha.id, gamma.id] } }) })).toEqual(["alpha-ETL", "gamma-etl-cleanup"]);
    });

    it("filters by id not_any_", async () => {
      expect(await names({ flows: flowFilter({ id: { not_any_: [alpha.id] } }) })).toEqual(["beta-report", "gamma-etl-cleanup"]);
    });

    it("matches nothing for an empty id any_ list", async () => {
      expect(await names({ flows: flowFilter({ id: { any_: [] } }) })).toEqual([]);
    });

    it("filters by name any_", async () => {
      expect(await names({ flows: flowFilter({ name: { any_: ["beta-report", "nope"] } }) })).toEqual(["beta-report"]);
    });

    it("filters by name like_ as a case-insensitive substring", async () => {
      expect(await names({ flows: flowFilter({ name: { like_: "EtL" } }) })).toEqual(["alpha-ETL", "gamma-etl-cleanup"]);
    });

    it("filters by tags all_", async () => {
      expect(await names({ flows: flowFilter({ tags: { all_: ["prod", "etl"] } }) })).toEqual(["alpha-ETL"]);
      expect(await names({ flows: flowFilter({ tags: { all_: ["prod"] } }) })).toEqual(["alpha-ETL", "beta-report"]);
    });

    it("filters by tags is_null_ (no tags)", async () => {
      expect(await names({ flows: flowFilter({ tags: { is_null_: true } }) })).toEqual(["gamma-etl-cleanup"]);
      expect(await names({ flows: flowFilter({ tags: { is_null_: false } }) })).toEqual(["alpha-ETL", "beta-report"]);
    });

    it("combines criteria with or_", async () => {
      const filter = flowFilter({ operator: "or_", id: { any_: [gamma.id] }, name: { any_: ["beta-report"] } });
      expect(await names({ flows: filter })).toEqual(["beta-report", "gamma-etl-cleanup"]);
    });

    it("keeps flows that have runs matching flow_runs", async () => {
      expect(await names({ flow_runs: runFilter({ state: { type: { any_: ["FAILED"] } } }) })).toEqual(["beta-report"]);
    });

    it("keeps flows whose runs have task runs matching task_runs", async () => {
      expect(await names({ task_runs: taskFilter({ name: { any_: ["extract-0"] } }) })).toEqual(["alpha-ETL"]);
      expect(await names({ task_runs: taskFilter({ name: { any_: ["missing"] } }) })).toEqual([]);
    });

    it("combines flow, flow run and task run criteria", async () => {
      const criteria = {
        flows: flowFilter({ tags: { all_: ["prod"] } }),
        flow_runs: runFilter({ name: { any_: ["nightly", "weekly"] } }),
        task_runs: taskFilter({ name: { like_: "extract" } }),
      };
      expect(await names(criteria)).toEqual(["alpha-ETL"]);
    });

    it("sorts by NAME_ASC and NAME_DESC", async () => {
      expect(await names({ sort: "NAME_ASC" })).toEqual(["alpha-ETL", "beta-report", "gamma-etl-cleanup"]);
      expect(await names({ sort: "NAME_DESC" })).toEqual(["gamma-etl-cleanup", "beta-report", "alpha-ETL"]);
    });

    it("sorts by CREATED_DESC", async () => {
      expect(await names({ sort: "CREATED_DESC" })).toEqual(["gamma-etl-cleanup", "beta-report", "alpha-ETL"]);
    });

    it("sorts by UPDATED_DESC", async () => {
      await t.db.flows.update(alpha.id, { tags: ["touched"] });
      expect(await names({ sort: "UPDATED_DESC" })).toEqual(["alpha-ETL", "gamma-etl-cleanup", "beta-report"]);
    });

    it("pages with limit and offset", async () => {
      expect(await names({ limit: 2 })).toEqual(["alpha-ETL", "beta-report"]);
      expect(await names({ limit: 2, offset: 1 })).toEqual(["beta-report", "gamma-etl-cleanup"]);
      expect(await names({ offset: 2 })).toEqual(["gamma-etl-cleanup"]);
      expect(await names({ limit: 0 })).toEqual([]);
    });

    it("counts with the same criteria", async () => {
      expect(await t.db.flows.count()).toBe(3);
      expect(await t.db.flows.count({ flows: flowFilter({ name: { like_: "etl" } }) })).toBe(2);
      expect(await t.db.flows.count({ flow_runs: runFilter({ state: { type: { any_: ["COMPLETED", "FAILED"] } } }) })).toBe(2);
      expect(await t.db.flows.count({ task_runs: taskFilter({ name: { any_: ["extract-0"] } }) })).toBe(1);
    });
  });
});
