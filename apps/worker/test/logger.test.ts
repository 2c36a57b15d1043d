import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, formatLogLine, logFormatFrom } from "../src/logger.js";

describe("the worker's log", () => {
  it("prints a pino line as Prefect's console line, extra fields after the message", () => {
    const time = new Date(2026, 10, 22, 7, 5, 3, 42).getTime();
    const line = JSON.stringify({ level: 40, time, pid: 1, name: "prefect.workers.process", msg: "slow", flow_run_id: "abc", n: 2 });
    expect(formatLogLine(line)).toBe("07:05:03.042 | WARNING | prefect.workers.process - slow (flow_run_id=abc, n=2)");
    expect(formatLogLine("not json")).toBe("not json");
  });

  it("writes text lines, or JSON lines when asked", async () => {
    const text = new PassThrough();
    let written = "";
    text.on("data", (chunk: Buffer) => {
      written += chunk.toString();
    });
    createLogger("info", text, "text").info({ pool: "p" }, "Starting worker");
    await new Promise((resolve) => setImmediate(resolve));
    expect(written).toMatch(/^\d\d:\d\d:\d\d\.\d{3} \| INFO {4}\| prefect\.workers\.process - Starting worker \(pool=p\)\n$/);

    const json = new PassThrough();
    let raw = "";
    json.on("data", (chunk: Buffer) => {
      raw += chunk.toString();
    });
    createLogger("info", json, "json").info("hello");
    await new Promise((resolve) => setImmediate(resolve));
    expect(JSON.parse(raw)).toMatchObject({ msg: "hello", name: "prefect.workers.process", level: 30 });
  });

  it("reads the format from PREFECT_WORKER_LOG_FORMAT, text by default", () => {
    expect(logFormatFrom({})).toBe("text");
    expect(logFormatFrom({ PREFECT_WORKER_LOG_FORMAT: "JSON" })).toBe("json");
    expect(() => logFormatFrom({ PREFECT_WORKER_LOG_FORMAT: "xml" })).toThrow("PREFECT_WORKER_LOG_FORMAT must be text or json");
  });
});
