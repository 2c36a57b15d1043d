/**
 * Concurrent proposals for one run take turns (Prefect's test_locks_row_for_update): two workers
 * proposing PENDING for the same SCHEDULED run at once get one ACCEPT and one ABORT.
 */
import { type Database, openDatabase } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { expect, it } from "vitest";
import { CoreFlowPolicy, type FlowOrchestrationContext, OrchestrationRule, type OrchestrationState, setFlowRunState } from "../src/index.js";
import { commitState, makeFlowRun } from "./support.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Records the state each proposal saw, then holds the transaction (and the run's lock) a while. */
function observing(seen: (string | null)[]) {
  return class SlowObserver extends OrchestrationRule<FlowOrchestrationContext> {
    static override fromStates = new Set([null, "SCHEDULED", "PENDING", "RUNNING"] as const);
    static override toStates = new Set(["PENDING"] as const);
    protected override async beforeTransition(initial: OrchestrationState | null) {
      seen.push(initial?.type ?? null);
      await sleep(300);
    }
  };
}

describeEachBackend("concurrent set_state", (t) => {
  it("serialises two workers proposing PENDING for one SCHEDULED run: exactly one wins", async () => {
    // A second connection to the same database where the backend allows one (not SQLite in memory).
    const other: Database = t.backend === "sqlite-memory" ? t.db : await openDatabase(t.db.config, { migrate: false });
    try {
      const run = await makeFlowRun(t.db);
      await commitState(t.db, "flow", run.id, "SCHEDULED");
      const seen: (string | null)[] = [];
      const policy = [observing(seen), ...CoreFlowPolicy];
      const results = await Promise.all([
        setFlowRunState(t.db, run.id, { type: "PENDING" }, { policy }),
        setFlowRunState(other, run.id, { type: "PENDING" }, { policy }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(["ABORT", "ACCEPT"]);
      const aborted = results.find((r) => r.status === "ABORT")!;
      expect(aborted.details).toEqual({ type: "abort_details", reason: "This run is in a PENDING state and cannot transition to a PENDING state." });
      expect(aborted.written).toBe(false);
      expect(seen).toEqual(["SCHEDULED", "PENDING"]);
      const states = await t.db.flowRuns.readStates(run.id);
      expect(states.map((s) => s.type)).toEqual(["SCHEDULED", "PENDING"]);
    } finally {
      if (other !== t.db) await other.close();
    }
  });

  it("serialises many concurrent proposals without losing bookkeeping", async () => {
    const run = await makeFlowRun(t.db);
    await commitState(t.db, "flow", run.id, "RUNNING");
    const results = await Promise.all(Array.from({ length: 8 }, () => setFlowRunState(t.db, run.id, { type: "RUNNING" }, { force: true })));
    expect(results.every((r) => r.status === "ACCEPT" && r.written)).toBe(true);
    const stored = await t.db.flowRuns.get(run.id);
    expect(stored?.run_count).toBe(9);
    expect(await t.db.flowRuns.readStates(run.id)).toHaveLength(9);
  });
});
