import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

describeEachBackend("flow run inputs", (t) => {
  const inputs = () => t.db.flowRunInputs;
  const newRun = async () => {
    const { row: flow } = await t.db.flows.create({ name: "f" });
    return (await t.db.flowRuns.create({ flow_id: flow.id })).row.id;
  };

  it("creates an input and reads it by run and key", async () => {
    const run = await newRun();
    const input = await inputs().create({ flow_run_id: run, key: "approval-1", value: '{"approved": true}', sender: "ui" });
    expect(input).toMatchObject({ flow_run_id: run, key: "approval-1", value: '{"approved": true}', sender: "ui" });
    expect(await inputs().get(run, "approval-1")).toEqual(input);
    expect(await inputs().get(run.toUpperCase(), "approval-1")).toEqual(input);
    expect(await inputs().get(run, "other")).toBeNull();
    expect(await inputs().get(randomUUID(), "approval-1")).toBeNull();
  });

  it("stores no sender when none is given, and any text as the value", async () => {
    const run = await newRun();
    const input = await inputs().create({ flow_run_id: run.toUpperCase(), key: "k", value: "line 1\nline 2 — ü\u0001" });
    expect(input).toMatchObject({ flow_run_id: run, sender: null, value: "line 1\nline 2 — ü\u0001" });
    expect((await inputs().get(run, "k"))?.value).toBe("line 1\nline 2 — ü\u0001");
  });

  it("refuses a second input with the same key on one run, not on another run", async () => {
    const run = await newRun();
    const other = await newRun();
    await inputs().create({ flow_run_id: run, key: "k", value: "1" });
    const error = await inputs()
      .create({ flow_run_id: run, key: "k", value: "2" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlreadyExistsError);
    expect((error as Error).message).toBe("A flow run input with this key already exists.");
    await expect(inputs().create({ flow_run_id: other, key: "k", value: "3" })).resolves.toMatchObject({ value: "3" });
    expect((await inputs().get(run, "k"))?.value).toBe("1");
  });

  it("gives one winner to concurrent creates of one key", async () => {
    const run = await newRun();
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => inputs().create({ flow_run_id: run, key: "race", value: String(i) })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(AlreadyExistsError);
  });

  it("throws NotFoundError for a run that does not exist", async () => {
    await expect(inputs().create({ flow_run_id: randomUUID(), key: "k", value: "v" })).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each([
    ["upper case", "Key"],
    ["a slash", "a/b"],
    ["a space", "a b"],
    ["an underscore", "a_b"],
    ["a question mark", "a?b"],
    ["a dot", "a.b"],
  ])("refuses a key with %s (keys are URL-safe)", async (_, key) => {
    const run = await newRun();
    await expect(inputs().create({ flow_run_id: run, key, value: "v" })).rejects.toBeInstanceOf(InvalidError);
  });

  it.each([
    ["a malformed run id", { flow_run_id: "bad", key: "k", value: "v" }],
    ["a value that is not text", { key: "k", value: { a: 1 } }],
    ["no value", { key: "k" }],
    ["an unknown field", { key: "k", value: "v", extra: 1 }],
  ])("refuses %s", async (_, input) => {
    const run = await newRun();
    await expect(inputs().create({ flow_run_id: run, ...input } as never)).rejects.toBeInstanceOf(InvalidError);
  });

  it("filters by key prefix, oldest first, up to the limit (1 by default), without excluded keys", async () => {
    const run = await newRun();
    const other = await newRun();
    for (const key of ["resp-b", "resp-a", "resp-c", "other-1"]) await inputs().create({ flow_run_id: run, key, value: key });
    await inputs().create({ flow_run_id: other, key: "resp-z", value: "elsewhere" });
    const keys = async (filter: Parameters<ReturnType<typeof inputs>["filter"]>[1]) => (await inputs().filter(run, filter)).map((i) => i.key);
    expect(await keys({ prefix: "resp-" })).toEqual(["resp-b"]);
    expect(await keys({ prefix: "resp-", limit: 10 })).toEqual(["resp-b", "resp-a", "resp-c"]);
    expect(await keys({ prefix: "resp-", limit: 10, exclude_keys: ["resp-a", "missing"] })).toEqual(["resp-b", "resp-c"]);
    expect(await keys({ prefix: "", limit: 10 })).toEqual(["resp-b", "resp-a", "resp-c", "other-1"]);
    expect(await keys({ prefix: "RESP-", limit: 10 })).toEqual([]);
    expect(await keys({ prefix: "resp_", limit: 10 })).toEqual([]);
    expect(await keys({ prefix: "resp-", limit: 0 })).toEqual([]);
    expect(await keys({ prefix: "nothing", limit: 10 })).toEqual([]);
  });

  it("refuses a bad filter", async () => {
    const run = await newRun();
    await expect(inputs().filter(run, { prefix: "a", limit: -1 })).rejects.toBeInstanceOf(InvalidError);
    await expect(inputs().filter(run, { limit: 1 } as never)).rejects.toBeInstanceOf(InvalidError);
    await expect(inputs().filter("bad", { prefix: "a" })).rejects.toBeInstanceOf(InvalidError);
  });

  it("deletes an input, and throws NotFoundError when there is none", async () => {
    const run = await newRun();
    await inputs().create({ flow_run_id: run, key: "gone", value: "1" });
    await inputs().create({ flow_run_id: run, key: "kept", value: "2" });
    await inputs().delete(run, "gone");
    expect(await inputs().get(run, "gone")).toBeNull();
    expect(await inputs().get(run, "kept")).not.toBeNull();
    await expect(inputs().delete(run, "gone")).rejects.toBeInstanceOf(NotFoundError);
    await expect(inputs().delete(randomUUID(), "kept")).rejects.toBeInstanceOf(NotFoundError);
    await expect(inputs().delete("bad", "kept")).rejects.toBeInstanceOf(InvalidError);
  });

  it("goes with its flow run", async () => {
    const run = await newRun();
    await inputs().create({ flow_run_id: run, key: "k", value: "v" });
    await t.db.flowRuns.delete(run);
    expect(await inputs().get(run, "k")).toBeNull();
  });
});
