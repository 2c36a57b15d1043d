import { expect, it } from "vitest";
import { addSeconds } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

describeEachBackend("run history", (t) => {
  const start = "2026-01-01T00:00:00.000000Z";

  async function flowWithRuns() {
    const { row: flow } = await t.db.flows.create({ name: "history" });
    const run = (offsetSeconds: number, state: "COMPLETED" | "SCHEDULED" | "FAILED", extra: Record<string, unknown> = {}) =>
      t.db.flowRuns.create({ flow_id: flow.id, expected_start_time: addSeconds(start, offsetSeconds), state: { type: state }, ...extra });
    return { flow, run };
  }

  it("counts runs per interval of expected start time and per state", async () => {
    const { run } = await flowWithRuns();
    await run(10, "COMPLETED", { total_run_time: 5 });
    await run(20, "COMPLETED", { total_run_time: 7 });
    await run(30, "FAILED");
    await run(70, "COMPLETED", { total_run_time: 1 });
    await run(200, "COMPLETED");
    const history = await t.db.flowRuns.history({}, { start, end: addSeconds(start, 180), intervalSeconds: 60 });
    expect(history.map((h) => h.interval_start)).toEqual([start, addSeconds(start, 60), addSeconds(start, 120)]);
    expect(history[0]!.states).toEqual([
      { state_type: "COMPLETED", state_name: "Completed", count_runs: 2, sum_estimated_run_time: 12, sum_estimated_lateness: 0 },
      { state_type: "FAILED", state_name: "Failed", count_runs: 1, sum_estimated_run_time: 0, sum_estimated_lateness: 0 },
    ]);
    expect(history[1]!.states).toEqual([{ state_type: "COMPLETED", state_name: "Completed", count_runs: 1, sum_estimated_run_time: 1, sum_estimated_lateness: 0 }]);
    expect(history[2]!.states).toEqual([]);
  });

  it("estimates lateness of runs that started late or have not started yet", async () => {
    const { run } = await flowWithRuns();
    await run(0, "COMPLETED", { start_time: addSeconds(start, 30) });
    await run(5, "SCHEDULED");
    const at = addSeconds(start, 105);
    const [interval] = await t.db.flowRuns.history({}, { start, end: addSeconds(start, 60), intervalSeconds: 60, at });
    expect(interval!.states).toEqual([
      { state_type: "COMPLETED", state_name: "Completed", count_runs: 1, sum_estimated_run_time: 0, sum_estimated_lateness: 30 },
      { state_type: "SCHEDULED", state_name: "Scheduled", count_runs: 1, sum_estimated_run_time: 0, sum_estimated_lateness: 100 },
    ]);
  });

  it("applies run criteria and refuses intervals under a second", async () => {
    const { run } = await flowWithRuns();
    await run(1, "COMPLETED", { tags: ["keep"] });
    await run(2, "COMPLETED");
    const [interval] = await t.db.flowRuns.history({ flow_runs: { tags: { all_: ["keep"] } } }, { start, end: addSeconds(start, 10), intervalSeconds: 10 });
    expect(interval!.states[0]!.count_runs).toBe(1);
    await expect(t.db.flowRuns.history({}, { start, end: addSeconds(start, 10), intervalSeconds: 0.5 })).rejects.toThrow(/at least 1 second|less than 1 second/);
    expect(await t.db.taskRuns.history({}, { start, end: addSeconds(start, 10), intervalSeconds: 5 })).toHaveLength(2);
  });
});
