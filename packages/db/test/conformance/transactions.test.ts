import { beforeEach, expect, it } from "vitest";
import { AlreadyExistsError, type Flow, InvalidError, isDatabaseError, type Repositories, ScopeError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

class Boom extends Error {}

const MISSING = "00000000-0000-4000-8000-00000000dead";

describeEachBackend("transactions", (t) => {
  let flow: Flow;
  beforeEach(async () => {
    flow = (await t.db.flows.create({ name: "etl" })).row;
  });

  it("commits every repository call together and returns the callback's value", async () => {
    const runId = await t.db.transaction(async (tx) => {
      const { row: run } = await tx.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } });
      await tx.flowRuns.setState(run.id, { type: "RUNNING" });
      await tx.taskRuns.create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0", state: { type: "COMPLETED" } });
      await tx.flows.update(flow.id, { tags: ["touched"] });
      return run.id;
    });
    expect((await t.db.flowRuns.get(runId))?.state_type).toBe("RUNNING");
    expect(await t.db.flowRuns.readStates(runId)).toHaveLength(2);
    expect(await t.db.taskRuns.count()).toBe(1);
    expect((await t.db.flows.get(flow.id))?.tags).toEqual(["touched"]);
  });

  it("rolls back everything when the callback throws, and rethrows the error", async () => {
    const error = new Boom("stop");
    let runId = "";
    await expect(
      t.db.transaction(async (tx) => {
        const { row: run } = await tx.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } });
        runId = run.id;
        await tx.flowRuns.setState(run.id, { type: "RUNNING" });
        await tx.taskRuns.create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0" });
        await tx.flows.create({ name: "created-inside" });
        throw error;
      }),
    ).rejects.toBe(error);
    expect(runId).not.toBe("");
    expect(await t.db.flowRuns.get(runId)).toBeNull();
    expect(await t.db.flowRuns.count()).toBe(0);
    expect(await t.db.taskRuns.count()).toBe(0);
    expect(await t.db.flows.getByName("created-inside")).toBeNull();
  });

  it("rolls back when a database error ends the callback", async () => {
    await expect(
      t.db.transaction(async (tx) => {
        await tx.flowRuns.create({ flow_id: flow.id, id: "00000000-0000-4000-8000-000000000001" });
        await tx.flowRuns.create({ flow_id: flow.id, id: "00000000-0000-4000-8000-000000000001" });
      }),
    ).rejects.toBeInstanceOf(AlreadyExistsError);
    expect(await t.db.flowRuns.count()).toBe(0);
  });

  it("refuses calls on the database itself inside the callback, which would wait for their own transaction", async () => {
    const refused: unknown[] = [];
    const refuse = async (call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (error) {
        refused.push(error);
      }
    };
    await t.db.transaction(async (tx) => {
      const { row: run } = await tx.flowRuns.create({ flow_id: flow.id, name: "via-tx" });
      await refuse(() => t.db.flowRuns.get(run.id));
      await refuse(() => t.db.flows.create({ name: "via-db" }));
      await refuse(() => t.db.transaction((inner) => inner.flows.create({ name: "nested-via-db" })));
      // The transaction goes on, and commits what went through it.
      await tx.flows.create({ name: "after" });
    });
    expect(refused).toHaveLength(3);
    for (const error of refused) expect(error).toBeInstanceOf(ScopeError);
    expect((await t.db.flows.read()).map((f) => f.name)).toEqual(["after", "etl"]);
    expect((await t.db.flowRuns.read()).map((r) => r.name)).toEqual(["via-tx"]);
  });

  it("rolls back only a nested transaction whose error is caught", async () => {
    await t.db.transaction(async (tx) => {
      await tx.flows.create({ name: "outer" });
      await tx
        .transaction(async (inner) => {
          await inner.flows.create({ name: "inner" });
          throw new Boom();
        })
        .catch((error: unknown) => {
          if (!(error instanceof Boom)) throw error;
        });
      await tx.flows.create({ name: "after" });
    });
    expect((await t.db.flows.read()).map((f) => f.name)).toEqual(["after", "etl", "outer"]);
  });

  it("gives a nested transaction the repositories of its parent", async () => {
    await t.db.transaction(async (tx) => {
      await tx.transaction(async (inner) => expect(inner).toBe(tx));
      expect(tx.flowRuns).toBe(tx.flowRuns);
      expect(tx.flowRuns).not.toBe(t.db.flowRuns);
    });
  });

  it("serves its repositories through a wrapper that forwards property reads", async () => {
    const wrapped = new Proxy(t.db, { get: (target, property, receiver) => Reflect.get(target, property, receiver) });
    await wrapped.flows.create({ name: "wrapped" });
    await wrapped.transaction(async (tx) => {
      const inner = new Proxy(tx, { get: (target, property, receiver) => Reflect.get(target, property, receiver) });
      await inner.flows.create({ name: "wrapped-tx" });
    });
    expect((await t.db.flows.read()).map((f) => f.name)).toEqual(["etl", "wrapped", "wrapped-tx"]);
  });

  it("recovers from a database error inside a nested transaction", async () => {
    await t.db.transaction(async (tx) => {
      await tx.flowRuns.create({ flow_id: flow.id, name: "outer", id: "00000000-0000-4000-8000-000000000001" });
      const nested = tx.transaction(async (inner) => {
        await inner.flowRuns.create({ flow_id: flow.id, name: "inner" });
        await inner.flowRuns.create({ flow_id: flow.id, id: "00000000-0000-4000-8000-000000000001" });
      });
      await expect(nested).rejects.toBeInstanceOf(AlreadyExistsError);
      await tx.flowRuns.create({ flow_id: flow.id, name: "after" });
    });
    expect((await t.db.flowRuns.read({ sort: "NAME_ASC" })).map((r) => r.name)).toEqual(["after", "outer"]);
  });

  it("rolls back a committed nested transaction when the outer one fails", async () => {
    await expect(
      t.db.transaction(async (tx) => {
        await tx.transaction((inner) => inner.flows.create({ name: "inner" }));
        throw new Boom();
      }),
    ).rejects.toBeInstanceOf(Boom);
    expect(await t.db.flows.getByName("inner")).toBeNull();
  });

  it("refuses a run of an unknown flow at once inside a transaction, even with a first state", async () => {
    await expect(
      t.db.transaction(async (tx) => {
        await expect(tx.flowRuns.create({ flow_id: MISSING, state: { type: "PENDING" } })).rejects.toBeInstanceOf(InvalidError);
        throw new Boom();
      }),
    ).rejects.toBeInstanceOf(Boom);
  });

  it("checks references at once after a run with a state was created in the same transaction", async () => {
    await expect(
      t.db.transaction(async (tx) => {
        await tx.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } });
        await expect(tx.flowRuns.create({ flow_id: MISSING })).rejects.toBeInstanceOf(InvalidError);
        throw new Boom();
      }),
    ).rejects.toBeInstanceOf(Boom);
  });

  it("never reports a commit for writes it did not commit after an error was caught inside", async () => {
    // SQLite carries on after a failed statement; PostgreSQL aborts the transaction. Either way the
    // outcome reported must be the one stored.
    const outcome = await t.db
      .transaction(async (tx) => {
        await tx.flowRuns.create({ flow_id: flow.id });
        await tx.flowRuns.setState(MISSING, { type: "RUNNING" }).catch(() => undefined);
      })
      .then(
        () => "committed",
        (error: unknown) => (isDatabaseError(error) ? "rolled back" : error),
      );
    expect(outcome).toBe((await t.db.flowRuns.count()) === 1 ? "committed" : "rolled back");
  });

  it("commits many concurrent transactions, each whole", async () => {
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.db.transaction(async (tx) => {
          const { row: run } = await tx.flowRuns.create({ flow_id: flow.id, name: `run-${i}`, state: { type: "PENDING" } });
          await tx.flowRuns.setState(run.id, { type: "RUNNING" });
          await tx.taskRuns.create({ flow_run_id: run.id, task_key: "t", dynamic_key: "0", state: { type: "COMPLETED" } });
          await tx.flowRuns.setState(run.id, { type: "COMPLETED" });
          return run.id;
        }),
      ),
    );
    expect(new Set(ids).size).toBe(20);
    expect(await t.db.flowRuns.count()).toBe(20);
    expect(await t.db.taskRuns.count()).toBe(20);
    for (const id of ids) {
      expect((await t.db.flowRuns.readStates(id)).map((s) => s.type)).toEqual(["PENDING", "RUNNING", "COMPLETED"]);
      expect((await t.db.flowRuns.get(id))?.state?.type).toBe("COMPLETED");
    }
  });

  it("keeps concurrent transactions apart when some of them fail", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        t.db.transaction(async (tx) => {
          const { row: run } = await tx.flowRuns.create({ flow_id: flow.id, name: `run-${i}`, state: { type: "PENDING" } });
          await tx.flowRuns.setState(run.id, { type: "RUNNING" });
          if (i % 2 === 1) throw new Boom(`odd ${i}`);
          return run.id;
        }),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(10);
    const names = (await t.db.flowRuns.read({ sort: "NAME_ASC" })).map((r) => r.name);
    expect(names).toEqual(Array.from({ length: 10 }, (_, i) => `run-${i * 2}`).sort());
  });

  it("refuses to use the transaction after it committed", async () => {
    let leaked: Repositories | undefined;
    await t.db.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.flows.create({ name: "late" })).rejects.toThrow();
    await expect(leaked!.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } })).rejects.toThrow();
    expect(await t.db.flows.getByName("late")).toBeNull();
    expect(await t.db.flowRuns.count()).toBe(0);
  });

  it("refuses to use the transaction after it rolled back", async () => {
    let leaked: Repositories | undefined;
    await expect(
      t.db.transaction(async (tx) => {
        leaked = tx;
        throw new Boom();
      }),
    ).rejects.toBeInstanceOf(Boom);
    await expect(leaked!.flows.read()).rejects.toThrow();
  });

  it("leaves the database usable after a rollback", async () => {
    await expect(t.db.transaction(async () => Promise.reject(new Boom()))).rejects.toBeInstanceOf(Boom);
    await t.db.flows.create({ name: "afterwards" });
    await t.db.transaction((tx) => tx.flows.create({ name: "in-a-new-transaction" }));
    expect(await t.db.flows.count()).toBe(3);
  });
});
