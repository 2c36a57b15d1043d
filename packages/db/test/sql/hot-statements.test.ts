/**
 * The SQL of the hot statements, as each backend sends it, kept as files beside this test
 * (snapshots/<backend>/*.sql), so that a change to any of them shows in review. After checking a
 * change, update the files with `pnpm --filter @prefect/db exec vitest run test/sql -u`.
 *
 * The statements come from the same builders the backends run; no database is needed, so both
 * backends' files are checked whichever backends a test run selects.
 */
import { describe, expect, it } from "vitest";
import { BACKENDS } from "../../src/backends/index.js";
import type { ClaimStateRow, HeldLimits, RunSelection } from "../../src/claims.js";
import type { Dialect } from "../../src/dialect.js";
import type { Timestamp } from "../../src/index.js";
import { flowRuns, flowRunTables } from "../../src/repositories/flow-runs.js";
import { runReadSql } from "../../src/repositories/runs.js";
import type { Sql } from "../../src/sql.js";

const NOW = "2026-01-02T03:04:05.000006Z" as Timestamp;
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

/** A worker's poll: two queues of one pool, runs due by now, at most ten. */
const selection: RunSelection = { workPoolNames: ["pool"], workQueueNames: ["default", "urgent"], scheduledBefore: NOW, scheduledAfter: null, limit: 10 };
/** A claimer holding one limit row of each kind. */
const held: HeldLimits = { pools: [uuid(1)], queues: [uuid(2)], deployments: [uuid(3)] };
/** A claimer whose runs are under no limit. */
const holdsNone: HeldLimits = { pools: [], queues: [], deployments: [] };
const pending: ClaimStateRow = { type: "PENDING", name: "Pending", message: null, state_details: {}, data: null };

/** The statement texts, in the order they are sent, each ended by a semicolon. */
function file(dialect: Dialect, statements: readonly (string | Sql)[]): string {
  const texts = statements.map((s) => (typeof s === "string" ? s : dialect.render(s).text).trim());
  return `${texts.map((text) => `${text};`).join("\n\n")}\n`;
}

for (const backend of BACKENDS) {
  const snapshot = (name: string) => `./snapshots/${backend.name}/${name}.sql`;
  const { dialect } = backend;

  describe(`hot statements [${backend.name}]`, () => {
    it("creates a flow run with its first state", async () => {
      await expect(file(dialect, backend.writes.statements.insertRun(flowRunTables, true))).toMatchFileSnapshot(snapshot("create-flow-run"));
    });

    it("writes a flow run's state, moving its pointer and bookkeeping", async () => {
      const assigned = ["state_id", "state_type", "state_name", "state_timestamp", "updated", "run_count", "start_time"];
      await expect(file(dialect, backend.writes.statements.writeState(flowRunTables, assigned))).toMatchFileSnapshot(snapshot("write-flow-run-state"));
    });

    it("claims a pool's due runs", async () => {
      await expect(file(dialect, backend.claims.statements.claim(selection, held, pending, NOW))).toMatchFileSnapshot(snapshot("claim-due-runs"));
    });

    it("locks a pool's due runs", async () => {
      await expect(file(dialect, backend.claims.statements.lock(selection, held))).toMatchFileSnapshot(snapshot("lock-due-runs"));
    });

    it("claims and locks due runs without counting slots when no limit is in reach", async () => {
      await expect(file(dialect, backend.claims.statements.claim(selection, holdsNone, pending, NOW))).toMatchFileSnapshot(snapshot("claim-due-runs-no-limits"));
      await expect(file(dialect, backend.claims.statements.lock(selection, holdsNone))).toMatchFileSnapshot(snapshot("lock-due-runs-no-limits"));
    });

    it("reads flow runs through the UI's filter", async () => {
      const read = runReadSql(dialect, flowRuns, {
        flows: { name: { any_: ["etl"] } },
        flow_runs: {
          state: { type: { any_: ["SCHEDULED", "RUNNING"] } },
          tags: { all_: ["nightly"] },
          name: { like_: "daily" },
          expected_start_time: { after_: NOW },
        },
        deployment_ids: [uuid(4)],
        sort: "EXPECTED_START_TIME_DESC",
        limit: 10,
        offset: 20,
      });
      await expect(file(dialect, [read])).toMatchFileSnapshot(snapshot("filter-flow-runs"));
    });
  });
}
