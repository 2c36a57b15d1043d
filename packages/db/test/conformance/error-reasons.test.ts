/**
 * InvalidError says why an input was refused (`reason`), so that callers answer each case without
 * reading the message. The messages stay as they were.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backendFor } from "../../src/backends/index.js";
import type { Driver } from "../../src/driver/types.js";
import { type Flow, InvalidError, NotFoundError, now } from "../../src/index.js";
import { Migrator } from "../../src/migrations/migrator.js";
import { sql } from "../../src/sql.js";
import { selectedBackends } from "../../src/testing/backends.js";
import { describeEachBackend, freshConfig } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";

async function refusal(promise: Promise<unknown>): Promise<InvalidError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidError);
  return error as InvalidError;
}

describeEachBackend("error reasons", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
  });

  it("calls a foreign key to a missing row a missing reference, with the message unchanged", async () => {
    const error = await refusal(t.db.flowRuns.create({ flow_id: MISSING }));
    expect(error.reason).toBe("missing_reference");
    expect(error.message).toMatch(/refers to a row that does not exist/);
  });

  it("calls a missing reference found inside a transaction a missing reference too", async () => {
    await t.db.transaction(async (tx) => {
      const error = await refusal(
        tx.transaction((inner) => inner.taskRuns.create({ flow_run_id: MISSING, task_key: "k", dynamic_key: "0", state: { type: "PENDING" } })),
      );
      expect(error.reason).toBe("missing_reference");
    });
  });

  it("calls a transaction that goes on after a failed statement aborted on PostgreSQL, which commits nothing of it", async () => {
    const outcome = t.db.transaction(async (tx) => {
      await tx.flows.create({ name: "kept-or-not" });
      await tx.flowRuns.create({ flow_id: MISSING }).catch(() => undefined);
      return "done";
    });
    if (t.backend === "postgres") {
      expect((await refusal(outcome)).reason).toBe("transaction_aborted");
      expect(await t.db.flows.getByName("kept-or-not")).toBeNull();
    } else {
      await expect(outcome).resolves.toBe("done");
      expect(await t.db.flows.getByName("kept-or-not")).not.toBeNull();
    }
  });

  it("calls a missing row a repository looks up first a missing reference", async () => {
    const error = await refusal(t.db.deployments.create({ name: "nightly", flow_id: MISSING }));
    expect(error.reason).toBe("missing_reference");
    expect(error.issues[0]?.path).toEqual(["flow_id"]);
    const queue = await refusal(t.db.deployments.create({ name: "nightly", flow_id: flow.id, work_queue_id: MISSING }));
    expect(queue.reason).toBe("missing_reference");
  });

  it("calls input that breaks the data model's rules invalid input", async () => {
    expect((await refusal(t.db.flowRuns.create({ flow_id: "not-a-uuid" }))).reason).toBe("invalid_input");
    expect((await refusal(t.db.flowRuns.get("not-a-uuid"))).reason).toBe("invalid_input");
  });

  it("turns a missing reference into NotFoundError where the missing row is the one addressed", async () => {
    await expect(t.db.flowRuns.setState(MISSING, { type: "RUNNING" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(t.db.workers.recordHeartbeat(MISSING, { name: "w" })).rejects.toBeInstanceOf(NotFoundError);
  });
});

for (const backend of selectedBackends()) {
  describe(`error reasons of the driver [${backend}]`, () => {
    let driver: Driver;
    let remove: () => Promise<void>;
    beforeEach(async () => {
      const fresh = await freshConfig(backend);
      remove = fresh.remove;
      const chosen = backendFor(fresh.config);
      driver = await chosen.connect(fresh.config);
      await new Migrator(driver, chosen.migrationHooks, chosen.migrations).upgrade();
    });
    afterEach(async () => {
      await driver.close();
      await remove();
    });

    it("calls a NOT NULL violation a constraint violation", async () => {
      const ts = now();
      const insert = driver.execute(sql`INSERT INTO flow (id, created, updated, name, tags) VALUES (${MISSING}, ${ts}, ${ts}, ${null}, '[]')`);
      expect((await refusal(insert)).reason).toBe("constraint_violation");
    });

    it("calls a foreign key to a missing row a missing reference", async () => {
      const ts = now();
      const insert = driver.execute(sql`INSERT INTO flow_run (id, created, updated, name, flow_id) VALUES (${MISSING}, ${ts}, ${ts}, 'r', ${MISSING})`);
      expect((await refusal(insert)).reason).toBe("missing_reference");
    });

    if (backend === "postgres") {
      it("calls a value PostgreSQL cannot store an invalid value", async () => {
        expect((await refusal(driver.query(sql`SELECT CAST(${"not-a-uuid"} AS uuid) AS id`))).reason).toBe("invalid_value");
      });
    }
  });
}
