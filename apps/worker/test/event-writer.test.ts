/** The worker's event writer: what runs queue goes out in few appends, in the order it was queued. */
import type { Database } from "@prefect/db";
import { describeEachBackend } from "@prefect/db/testing";
import { expect, it } from "vitest";
import { EventWriter, workerEvent, workerResource } from "../src/events.js";
import { createLogger } from "../src/logger.js";

describeEachBackend("the worker's event writer", (t) => {
  /** The database with its appends counted. */
  const counting = () => {
    const counted = { appends: 0 };
    const events = new Proxy(t.db.events, {
      get: (target, key) =>
        key === "createMany"
          ? (batch: Parameters<Database["events"]["createMany"]>[0]) => {
              counted.appends++;
              return target.createMany(batch);
            }
          : Reflect.get(target, key),
    });
    const db = new Proxy(t.db, { get: (target, key) => (key === "events" ? events : Reflect.get(target, key)) });
    return { db, counted };
  };

  it("stores what several runs queue at once in one append, in the order queued, and what comes later after it", async () => {
    const { db, counted } = counting();
    const writer = new EventWriter(db, createLogger("silent"));
    const resource = workerResource("writer");
    const first = Array.from({ length: 5 }, (_, i) => workerEvent(`test.first.${i}`, resource, []));
    writer.enqueue(first.slice(0, 1));
    writer.enqueue(first.slice(1, 3));
    writer.enqueue([]);
    await writer.write(first.slice(3));
    writer.enqueue([workerEvent("test.second", resource, [])]);
    await writer.stop();
    expect(counted.appends).toBe(2);
    const stored = await t.db.events.readAfter(0, { limit: 100 });
    expect(stored.map((e) => e.event)).toEqual([...first.map((e) => e.event), "test.second"]);
  });
});
