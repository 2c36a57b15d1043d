import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { z } from "zod";
import { addSeconds, InvalidError, type LogCreate, LogFilter, type LogReadOptions } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const T0 = "2026-03-01T12:00:00.000000Z";
const at = (seconds: number) => addSeconds(T0, seconds);

const log = (overrides: Partial<LogCreate> = {}): LogCreate => ({ name: "prefect.flow_runs", level: 20, message: "hello", timestamp: T0, ...overrides });
/** Logs one second apart, in the order given (so reads sorted by timestamp have one answer). */
const series = (...items: Partial<LogCreate>[]): LogCreate[] => items.map((overrides, i) => log({ timestamp: at(i), ...overrides }));

describeEachBackend("logs", (t) => {
  /** Reads with a filter as the API receives it (parsed, so timestamps are canonical). */
  const read = (filter: z.input<typeof LogFilter>, options: Omit<LogReadOptions, "filter"> = {}) =>
    t.db.logs.read({ ...options, filter: LogFilter.parse(filter) });
  const messages = async (filter: z.input<typeof LogFilter>, options: Omit<LogReadOptions, "filter"> = {}) =>
    (await read(filter, options)).map((l) => l.message);

  it("writes a batch and returns the rows with their ids", async () => {
    const flowRunId = randomUUID();
    const written = await t.db.logs.createMany([log({ message: "a", flow_run_id: flowRunId }), log({ message: "b", level: 40, timestamp: at(1) })]);
    expect(written).toHaveLength(2);
    expect(new Set(written.map((l) => l.id)).size).toBe(2);
    expect(written[0]).toMatchObject({ name: "prefect.flow_runs", level: 20, message: "a", timestamp: T0, flow_run_id: flowRunId, task_run_id: null });
    expect(await t.db.logs.read()).toEqual(written);
  });

  it("strips NUL characters from name and message", async () => {
    const [written] = await t.db.logs.createMany([log({ name: "my\u0000logger", message: "he\u0000llo\u0000" })]);
    expect(written).toMatchObject({ name: "mylogger", message: "hello" });
    const [stored] = await t.db.logs.read();
    expect(stored).toMatchObject({ name: "mylogger", message: "hello" });
  });

  it("accepts an empty batch", async () => {
    expect(await t.db.logs.createMany([])).toEqual([]);
    expect(await t.db.logs.count()).toBe(0);
  });

  it("writes a batch larger than one INSERT chunk completely", async () => {
    const batch = Array.from({ length: 2500 }, (_, i) => log({ message: `m${i}`, timestamp: addSeconds(T0, i / 1000) }));
    const written = await t.db.logs.createMany(batch);
    expect(written).toHaveLength(2500);
    expect(await t.db.logs.count()).toBe(2500);
    const stored = await t.db.logs.read();
    expect(stored.map((l) => l.message)).toEqual(batch.map((l) => l.message));
    expect(new Set(stored.map((l) => l.id)).size).toBe(2500);
  });

  it.each([
    ["a level that is not a number", { level: "20" }],
    ["a missing message", { message: undefined }],
    ["a malformed timestamp", { timestamp: "yesterday" }],
    ["a malformed flow run id", { flow_run_id: "not-a-uuid" }],
  ])("refuses a batch with %s and writes none of it", async (_, bad) => {
    const batch = [log(), { ...log(), ...bad }] as LogCreate[];
    await expect(t.db.logs.createMany(batch)).rejects.toBeInstanceOf(InvalidError);
    expect(await t.db.logs.count()).toBe(0);
  });

  it("filters by level ge_ and le_", async () => {
    await t.db.logs.createMany(series(...[10, 20, 30, 40, 50].map((level) => ({ level, message: `L${level}` }))));
    expect(await messages({ level: { ge_: 30 } })).toEqual(["L30", "L40", "L50"]);
    expect(await messages({ level: { le_: 20 } })).toEqual(["L10", "L20"]);
    expect(await messages({ level: { ge_: 20, le_: 40 } })).toEqual(["L20", "L30", "L40"]);
  });

  it("filters by timestamp before_ and after_, both inclusive", async () => {
    await t.db.logs.createMany(series(...[0, 1, 2, 3].map((s) => ({ message: `t${s}` }))));
    expect(await messages({ timestamp: { after_: at(1) } })).toEqual(["t1", "t2", "t3"]);
    expect(await messages({ timestamp: { before_: at(2) } })).toEqual(["t0", "t1", "t2"]);
    expect(await messages({ timestamp: { after_: at(1), before_: at(2) } })).toEqual(["t1", "t2"]);
  });

  it("compares timestamp bounds given with another offset by instant", async () => {
    await t.db.logs.createMany(series(...[0, 1, 2].map((s) => ({ message: `t${s}` }))));
    expect(await messages({ timestamp: { after_: "2026-03-01T13:00:01+01:00" } })).toEqual(["t1", "t2"]);
  });

  it("keeps microseconds of the timestamp", async () => {
    const [written] = await t.db.logs.createMany([log({ timestamp: "2026-03-01T12:00:00.123456Z" })]);
    expect(written!.timestamp).toBe("2026-03-01T12:00:00.123456Z");
    expect((await t.db.logs.read())[0]!.timestamp).toBe("2026-03-01T12:00:00.123456Z");
    expect(await messages({ timestamp: { after_: "2026-03-01T12:00:00.123457Z" } })).toEqual([]);
    expect(await messages({ timestamp: { after_: "2026-03-01T12:00:00.123456Z" } })).toEqual(["hello"]);
  });

  it("filters by flow_run_id any_", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await t.db.logs.createMany(series({ message: "a", flow_run_id: a }, { message: "b", flow_run_id: b }, { message: "none" }));
    expect(await messages({ flow_run_id: { any_: [a] } })).toEqual(["a"]);
    expect(await messages({ flow_run_id: { any_: [a, b] } })).toEqual(["a", "b"]);
    expect(await messages({ flow_run_id: { any_: [] } })).toEqual([]);
  });

  it("filters by task_run_id any_", async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await t.db.logs.createMany(series({ message: "a", task_run_id: a }, { message: "b", task_run_id: b }));
    expect(await messages({ task_run_id: { any_: [b] } })).toEqual(["b"]);
  });

  it("filters by task_run_id is_null_", async () => {
    await t.db.logs.createMany(series({ message: "task", task_run_id: randomUUID() }, { message: "flow" }));
    expect(await messages({ task_run_id: { is_null_: true } })).toEqual(["flow"]);
    expect(await messages({ task_run_id: { is_null_: false } })).toEqual(["task"]);
  });

  it("matches a text query against message and logger name, case-insensitively", async () => {
    await t.db.logs.createMany(series({ message: "Connection refused", name: "db" }, { message: "all good", name: "connector" }, { message: "other", name: "x" }));
    expect(await messages({ text: { query: "CONN" } })).toEqual(["Connection refused", "all good"]);
  });

  it("matches any of several terms, as Prefect's text search does", async () => {
    await t.db.logs.createMany(series({ message: "disk full error" }, { message: "disk ok" }, { message: "error elsewhere" }, { message: "fine" }));
    expect(await messages({ text: { query: "disk error" } })).toEqual(["disk full error", "disk ok", "error elsewhere"]);
  });

  it("requires +terms and excludes !terms", async () => {
    await t.db.logs.createMany(series({ message: "disk full error" }, { message: "disk ok" }, { message: "error elsewhere" }));
    expect(await messages({ text: { query: "+disk +error" } })).toEqual(["disk full error"]);
    expect(await messages({ text: { query: "disk !ok" } })).toEqual(["disk full error"]);
    expect(await messages({ text: { query: '"full error" elsewhere' } })).toEqual(["disk full error", "error elsewhere"]);
  });

  it("matches a quoted phrase as a whole", async () => {
    await t.db.logs.createMany(series({ message: "connection timeout reached" }, { message: "timeout of connection" }));
    expect(await messages({ text: { query: '"connection timeout"' } })).toEqual(["connection timeout reached"]);
  });

  it("excludes -negated terms", async () => {
    await t.db.logs.createMany(series({ message: "error in task" }, { message: "error in debug hook" }, { message: "fine" }));
    expect(await messages({ text: { query: "error -debug" } })).toEqual(["error in task"]);
    expect(await messages({ text: { query: "- error" } })).toEqual(["error in task", "error in debug hook"]);
    expect(await messages({ text: { query: '-"debug hook"' } })).toEqual(["error in task", "fine"]);
  });

  it("combines criteria with operator or_", async () => {
    const runId = randomUUID();
    await t.db.logs.createMany(series({ message: "high", level: 50 }, { message: "of run", flow_run_id: runId }, { message: "neither" }));
    expect(await messages({ operator: "or_", level: { ge_: 50 }, flow_run_id: { any_: [runId] } })).toEqual(["high", "of run"]);
    expect(await messages({ level: { ge_: 50 }, flow_run_id: { any_: [runId] } })).toEqual([]);
  });

  it("sorts by timestamp ascending (the default) and descending", async () => {
    await t.db.logs.createMany([log({ message: "2", timestamp: at(2) }), log({ message: "0", timestamp: at(0) }), log({ message: "1", timestamp: at(1) })]);
    expect((await t.db.logs.read()).map((l) => l.message)).toEqual(["0", "1", "2"]);
    expect((await t.db.logs.read({ sort: "TIMESTAMP_ASC" })).map((l) => l.message)).toEqual(["0", "1", "2"]);
    expect((await t.db.logs.read({ sort: "TIMESTAMP_DESC" })).map((l) => l.message)).toEqual(["2", "1", "0"]);
  });

  it("pages with limit and offset", async () => {
    await t.db.logs.createMany(series(...[0, 1, 2, 3, 4].map((s) => ({ message: `${s}` }))));
    expect((await t.db.logs.read({ limit: 2 })).map((l) => l.message)).toEqual(["0", "1"]);
    expect((await t.db.logs.read({ limit: 2, offset: 2 })).map((l) => l.message)).toEqual(["2", "3"]);
    expect((await t.db.logs.read({ offset: 3 })).map((l) => l.message)).toEqual(["3", "4"]);
    expect(await messages({ level: { ge_: 0 } }, { limit: 1, offset: 4, sort: "TIMESTAMP_DESC" })).toEqual(["0"]);
  });

  it("counts all logs or those matching a filter", async () => {
    await t.db.logs.createMany(series({ level: 10 }, { level: 20 }, { level: 40 }));
    expect(await t.db.logs.count()).toBe(3);
    expect(await t.db.logs.count(LogFilter.parse({ level: { ge_: 20 } }))).toBe(2);
    expect(await t.db.logs.count(LogFilter.parse({ level: { ge_: 100 } }))).toBe(0);
  });

  it("deletes the logs matching a filter and returns how many", async () => {
    const runId = randomUUID();
    await t.db.logs.createMany(series({ message: "keep" }, { message: "drop", flow_run_id: runId }, { message: "drop too", flow_run_id: runId }));
    expect(await t.db.logs.delete(LogFilter.parse({ flow_run_id: { any_: [runId] } }))).toBe(2);
    expect((await t.db.logs.read()).map((l) => l.message)).toEqual(["keep"]);
    expect(await t.db.logs.delete(LogFilter.parse({ flow_run_id: { any_: [runId] } }))).toBe(0);
  });
});
