import { randomUUID } from "node:crypto";
import { type Database, openDatabase, type PositionedEvent, type Repositories, toTimestamp } from "@prefect/db";
import { freshConfig, selectedBackends } from "@prefect/db/testing";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import type { AppContext } from "../src/context.js";
import { EventBus } from "../src/features/events/bus.js";
import { startServer } from "../src/server.js";
import { EventBatcher } from "../src/loops/event-batcher.js";
import { startLoops as startServices } from "../src/loops/index.js";
import { EventReader, readerPollMs } from "../src/loops/event-reader.js";
import { createAutomation } from "../src/features/automations/service.js";
import { EventOrdering } from "../src/features/triggers/service.js";
import { evaluateNextEvents } from "../src/loops/triggers.js";
import { TASK_RUN_RECORDER_GROUP, taskRunRecorder } from "../src/loops/task-run-recorder.js";
import { loadServerSettings, type ServerSettings } from "../src/settings.js";
import { makeEvent, openEventsIn, taskRunEvents, waitFor } from "./support/events.js";

const silent = Fastify({ logger: false }).log;

const settingsWith = (env: Record<string, string>): ServerSettings => ({ ...loadServerSettings(env), host: "127.0.0.1", port: 0 });

/** What `readAfter` was asked and gave: calls counted as they are made, rows once read. */
interface Reads {
  calls: number;
  rows: PositionedEvent[];
}

/** `target` with its repository `key` replaced by `replacement`. */
const replacing = <T extends object>(target: T, key: keyof T, replacement: unknown): T =>
  new Proxy(target, { get: (t, k) => (k === key ? replacement : Reflect.get(t, k)) });

/** `db` whose event reads, and those of its transactions, are recorded in `reads`. */
function recordingReads(db: Database, reads: Reads): Database {
  const recording = (events: Repositories["events"]) =>
    replacing(events, "readAfter", async (...args: Parameters<Repositories["events"]["readAfter"]>) => {
      reads.calls++;
      const rows = await events.readAfter(...args);
      reads.rows.push(...rows);
      return rows;
    });
  const transaction: Database["transaction"] = (fn) => db.transaction((tx) => fn(replacing(tx, "events", recording(tx.events))));
  return replacing(replacing(db, "events", recording(db.events)), "transaction", transaction);
}

for (const backend of selectedBackends()) {
  describe(`event services [${backend}]`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    const database = async (adjust: (config: Database["config"]) => Database["config"] = (c) => c) => {
      const { config, remove } = await freshConfig(backend);
      const db = await openDatabase(adjust(config));
      cleanups.push(async () => {
        await db.close();
        await remove();
      });
      return { db, config };
    };

    it("starts each service unless its setting switches it off", async () => {
      const { db } = await database();
      const cases: [Record<string, string>, string[]][] = [
        [{}, ["TaskRunRecorder", "EventPersister"]],
        [{ PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: "false" }, ["TaskRunRecorder"]],
        [{ PREFECT_API_SERVICES_TASK_RUN_RECORDER_ENABLED: "false" }, ["EventPersister"]],
      ];
      for (const [env, names] of cases) {
        const feed = new EventReader(db, silent, readerPollMs(db));
        const services = await startServices({ db, settings: settingsWith(env), events: new EventBus(), feed }, silent);
        // The event services among the others the server runs.
        expect(services.map((s) => s.name).filter((name) => ["EventPersister", "TaskRunRecorder"].includes(name))).toEqual(names);
        for (const service of services) await service.stop();
      }
    });

    it("writes every queued event on a graceful shutdown, from HTTP and from websockets", async () => {
      const { db } = await database();
      // Batches that would never fill and an interval that would never pass: only the shutdown flushes.
      const settings = settingsWith({ PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE: "100000", PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: "3600" });
      const server = await startServer(settings, { db, logger: false });
      let stopped = false;
      cleanups.push(async () => {
        if (!stopped) await server.stop();
      });
      const overHttp = Array.from({ length: 30 }, (_, i) => makeEvent({ event: `shutdown.http.${i}` }));
      const response = await fetch(`${server.url}/api/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(overHttp) });
      expect(response.status).toBe(204);

      const flow = (await db.flows.create({ name: "shutdown" })).row;
      const flowRun = (await db.flowRuns.create({ flow_id: flow.id })).row;
      const taskRunId = randomUUID();
      const taskEvents = taskRunEvents({
        taskRunId,
        flowRunId: flowRun.id,
        flowId: flow.id,
        flowName: flow.name,
        flowRunName: flowRun.name,
        taskName: "t",
        taskKey: "t",
        dynamicKey: "0",
        steps: [
          { type: "PENDING", occurred: toTimestamp(overHttp[0]!.occurred) },
          { type: "RUNNING", occurred: toTimestamp(overHttp[1]!.occurred) },
          { type: "COMPLETED", occurred: toTimestamp(overHttp[2]!.occurred) },
        ],
      });
      // Enough data that much of it is still on its way when the server starts stopping.
      const filler = "x".repeat(4096);
      const overSocket = Array.from({ length: 1500 }, (_, i) => makeEvent({ event: `shutdown.ws.${i}`, payload: { filler } }));
      const socket = await openEventsIn(server.url);
      for (const event of taskEvents) socket.send(event);
      // The client keeps sending while the server stops, until it sees the server's close frame; every
      // frame written before that must be stored (no checkpoint waited for).
      const written: string[] = [];
      const stopping = server.stop();
      for (const event of overSocket) {
        if (socket.ws.readyState !== socket.ws.OPEN) break;
        await new Promise<void>((resolve) =>
          socket.ws.send(JSON.stringify(event), (error) => {
            if (!error) written.push(event.id);
            resolve();
          }),
        );
      }
      await stopping;
      stopped = true;
      await socket.closed;

      expect(written.length).toBeGreaterThan(0);
      expect(await db.events.count()).toBe(overHttp.length + taskEvents.length + written.length);
      expect(await db.events.count({ id: { id: written } })).toBe(written.length);
      expect(await db.taskRuns.get(taskRunId)).toMatchObject({ state_type: "COMPLETED" });
    });

    it("records the good events of a batch and skips an event that keeps failing", async () => {
      const { db } = await database();
      const flow = (await db.flows.create({ name: "isolation" })).row;
      const flowRun = (await db.flowRuns.create({ flow_id: flow.id })).row;
      const feed = new EventReader(db, silent, readerPollMs(db));
      await feed.start();
      cleanups.push(() => feed.stop());
      const context: AppContext = {
        db,
        events: new EventBus(),
        feed,
        settings: settingsWith({ PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_LOOP_SECONDS: "0.05" }),
      };
      const recorder = taskRunRecorder(context, silent);
      await recorder.start();
      cleanups.push(() => recorder.stop());
      const good = randomUUID();
      const orphan = randomUUID();
      const step = [{ type: "PENDING" as const, occurred: toTimestamp(makeEvent().occurred) }];
      const common = { flowId: flow.id, flowName: flow.name, flowRunName: "x", taskName: "t", dynamicKey: "0", steps: step };
      const events = [
        ...taskRunEvents({ ...common, taskRunId: orphan, flowRunId: randomUUID(), taskKey: "orphan" }),
        ...taskRunEvents({ ...common, taskRunId: good, flowRunId: flowRun.id, taskKey: "good" }),
      ];
      await db.events.createMany(events.map((e) => ({ ...e, received: e.occurred })));
      await waitFor(async () => (await db.taskRuns.get(good)) ?? undefined, "the good task run");
      // The orphan's flow run never appears: it is retried on the next rounds, then skipped.
      await waitFor(async () => (await db.transaction((tx) => tx.events.claimGroupBatch(TASK_RUN_RECORDER_GROUP, 1))).length === 0, "the failing event skipped");
      expect(await db.taskRuns.get(orphan)).toBeNull();
      expect(await db.taskRuns.count()).toBe(1);
    });

    it("reads the table when woken for an append it has not read, not for one it has read past", async () => {
      const { db } = await database();
      const reads: Reads = { calls: 0, rows: [] };
      // No poll within the test: only wake-ups read.
      const feed = new EventReader(recordingReads(db, reads), silent, 3_600_000);
      await feed.start();
      cleanups.push(() => feed.stop());
      const delivered: string[] = [];
      const unsubscribe = feed.subscribe((batch) => delivered.push(...batch.map((e) => e.id)));
      cleanups.push(async () => unsubscribe());
      const [stored] = await db.events.createMany([{ ...makeEvent(), received: makeEvent().occurred }]);
      // As the persister does after its write (on PostgreSQL the append's notification comes too).
      feed.wake();
      await waitFor(() => delivered.includes(stored!.id), "the stored event delivered");
      const head = await db.events.head();
      const idle = () =>
        waitFor(async () => {
          const before = reads.calls;
          await new Promise((resolve) => setTimeout(resolve, 50));
          return reads.calls === before;
        }, "the reader idle");
      await idle();
      const before = reads.calls;
      feed.wake(head);
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(reads.calls).toBe(before);
      // A position no read reaches (the events gone, say) costs one read, not a read after read.
      feed.wake(head + 1);
      await waitFor(() => reads.calls > before, "a read for an append beyond what was read");
      await idle();
      expect(reads.calls).toBe(before + 1);
    });

    it("wakes the recorder for the events it takes, not for those it passes over, and its cursor passes both", async () => {
      const { db } = await database();
      const flow = (await db.flows.create({ name: "passed-over" })).row;
      const flowRun = (await db.flowRuns.create({ flow_id: flow.id })).row;
      const feed = new EventReader(db, silent, readerPollMs(db));
      await feed.start();
      cleanups.push(() => feed.stop());
      // Counts the recorder's rounds (each is a transaction); its poll would not come within the test.
      let rounds = 0;
      // And the events it reads: those it takes, not those it passes over.
      const reads: Reads = { calls: 0, rows: [] };
      const recorded = recordingReads(db, reads);
      const transaction: Database["transaction"] = (fn) => {
        rounds++;
        return recorded.transaction(fn);
      };
      const counted = replacing(recorded, "transaction", transaction);
      const settings = settingsWith({ PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_LOOP_SECONDS: "3600" });
      const recorder = taskRunRecorder({ db: counted, events: new EventBus(), feed, settings }, silent);
      await recorder.start();
      cleanups.push(() => recorder.stop());
      const delivered: string[] = [];
      // Subscribed after the recorder: it hears each delivery after the recorder did.
      const unsubscribe = feed.subscribe((events) => delivered.push(...events.map((e) => e.id)));
      cleanups.push(async () => unsubscribe());
      const before = rounds;
      const others = [makeEvent({ event: "prefect.flow-run.Running" }), makeEvent({ event: "test.thing.happened" })];
      await db.events.createMany(others.map((e) => ({ ...e, received: e.occurred })));
      await waitFor(() => others.every((e) => delivered.includes(e.id)), "the passed-over events delivered");
      expect(rounds).toBe(before);

      const taskRunId = randomUUID();
      const step = [{ type: "PENDING" as const, occurred: toTimestamp(makeEvent().occurred) }];
      const taken = taskRunEvents({ flowId: flow.id, flowName: flow.name, flowRunName: "x", taskName: "t", dynamicKey: "0", steps: step, taskRunId, flowRunId: flowRun.id, taskKey: "k" });
      await db.events.createMany(taken.map((e) => ({ ...e, received: e.occurred })));
      await waitFor(async () => (await db.taskRuns.get(taskRunId)) ?? undefined, "the task run recorded");
      expect(rounds).toBeGreaterThan(before);
      expect(reads.rows.length).toBeGreaterThan(0);
      expect(reads.rows.every((e) => e.event.startsWith("prefect.task-run."))).toBe(true);
      // Nothing is left behind the group's cursor: a claim that does not advance it finds nothing.
      const left = await db.transaction(async (tx) => tx.events.claimGroupBatch(TASK_RUN_RECORDER_GROUP, 10));
      expect(left).toEqual([]);
    });

    it("delivers what this process stores right after its cursor without reading it back, and reads anything else", async () => {
      const { db } = await database();
      const reads: Reads = { calls: 0, rows: [] };
      const feed = new EventReader(recordingReads(db, reads), silent, 3_600_000);
      await feed.start();
      cleanups.push(() => feed.stop());
      const delivered: number[] = [];
      const unsubscribe = feed.subscribe((batch) => delivered.push(...batch.map((e) => e.position)));
      cleanups.push(async () => unsubscribe());
      const received = (n: number) => Array.from({ length: n }, () => ({ ...makeEvent(), received: makeEvent().occurred }));

      const ours = await db.events.createMany(received(3));
      const before = reads.calls;
      feed.stored(ours);
      expect(delivered).toEqual(ours.map((e) => e.position));
      // PostgreSQL's notification of the append comes too: it costs no read.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(reads.calls).toBe(before);

      // Another process appends, then this one: its events do not follow the cursor, so the table is read.
      const theirs = await db.events.createMany(received(2));
      const next = await db.events.createMany(received(2));
      feed.stored(next);
      const expected = [...ours, ...theirs, ...next].map((e) => e.position);
      await waitFor(() => delivered.length === expected.length, "the other process's events read");
      expect(delivered).toEqual(expected);
      expect(reads.calls).toBeGreaterThan(before);
    });

    it("passes over the events no automation could take without reading them", async () => {
      const { db } = await database();
      const reads: Reads = { calls: 0, rows: [] };
      const context: AppContext = { db: recordingReads(db, reads), settings: settingsWith({}), events: new EventBus(), feed: new EventReader(db, silent, 3_600_000) };
      const ordering = new EventOrdering();
      // Joins the group at the head.
      await evaluateNextEvents(context, ordering);
      await db.events.createMany(Array.from({ length: 30 }, () => ({ ...makeEvent(), received: makeEvent().occurred })));
      expect(await evaluateNextEvents(context, ordering)).toBe(30);
      expect(reads.rows.length).toBe(0);
      expect(await evaluateNextEvents(context, ordering)).toBe(0);

      // With an automation whose trigger takes events, the next events are read and evaluated.
      await createAutomation(context, {
        name: "reads",
        trigger: { type: "event", posture: "Reactive", expect: ["test.thing.happened"], threshold: 1, within: 0 },
        actions: [{ type: "do-nothing" }],
      });
      await db.events.createMany(Array.from({ length: 3 }, () => ({ ...makeEvent(), received: makeEvent().occurred })));
      expect(await evaluateNextEvents(context, ordering)).toBe(3);
      expect(reads.rows.length).toBe(3);
    });

    it("holds back clients' events while the persister's backlog is at its high water, until half of it is written", async () => {
      const bus = new EventBus();
      const gates: (() => void)[] = [];
      let written = 0;
      const persister = new EventBatcher({
        name: "EventPersister",
        bus,
        log: silent,
        batchSize: 2,
        flushIntervalMs: 3_600_000,
        maxBatch: 2,
        highWater: 6,
        write: async (batch) => {
          await new Promise<void>((resolve) => gates.push(resolve));
          written += batch.length;
        },
      });
      await persister.start();
      cleanups.push(() => persister.stop());
      const publish = (n: number) => bus.publish(Array.from({ length: n }, () => ({ ...makeEvent(), received: makeEvent().occurred })));
      publish(5);
      expect(bus.ready()).toBeUndefined();
      publish(1);
      let ready = false;
      void bus.ready()!.then(() => {
        ready = true;
      });
      const writeOne = async () => {
        await waitFor(() => gates.length > 0, "a write waiting");
        gates.shift()!();
        await waitFor(() => written % 2 === 0 && gates.length > 0, "the next write");
      };
      await writeOne(); // 4 pending: more than half the high water
      expect(ready).toBe(false);
      await writeOne(); // 2 pending
      await waitFor(() => ready, "the publishers let in");
      gates.shift()!();
      await waitFor(() => persister.pending === 0, "the rest written");
    });

    if (backend === "sqlite-file") {
      it("stops reading a client's events while the database cannot take them, and takes them all once it can", async () => {
        const { db, config } = await database((c) => ({ ...c, timeoutSeconds: 0.2 }));
        const server = await startServer(settingsWith({}), { db, logger: false });
        cleanups.push(() => server.stop());
        const locker = await openDatabase(config);
        cleanups.push(() => locker.close());
        let release!: () => void;
        const released = new Promise<void>((resolve) => {
          release = resolve;
        });
        let locked!: () => void;
        const holding = new Promise<void>((resolve) => {
          locked = resolve;
        });
        const lock = locker.transaction(async () => {
          locked();
          await released;
        });
        await holding;
        cleanups.push(async () => {
          release();
          await lock;
        });
        let published = 0;
        server.context.events.subscribe((events) => {
          published += events.length;
        });
        const socket = await openEventsIn(server.url);
        cleanups.push(() => socket.close());
        const sent = 20_000;
        for (let i = 0; i < sent; i++) socket.send(makeEvent({ event: "held.back" }));
        let ponged = false;
        const pong = socket.ping(60_000).then(() => {
          ponged = true;
        });
        // The server stops taking the client's events at its high water, well short of what was sent.
        await waitFor(async () => {
          const before = published;
          await new Promise((resolve) => setTimeout(resolve, 300));
          return published > 0 && published === before;
        }, "the server to stop taking events");
        expect(published).toBeLessThan(sent / 2);
        expect(ponged).toBe(false);
        release();
        await lock;
        await pong;
        await waitFor(async () => (await db.events.count()) === sent, "every event stored", 60_000);
      });

      it("retries a batch the database was busy for until it is written", async () => {
        const { db, config } = await database((c) => ({ ...c, timeoutSeconds: 0.2 }));
        const locker = await openDatabase(config);
        cleanups.push(() => locker.close());
        let release!: () => void;
        const released = new Promise<void>((resolve) => {
          release = resolve;
        });
        let locked!: () => void;
        const holding = new Promise<void>((resolve) => {
          locked = resolve;
        });
        // Another connection holds the write lock (an IMMEDIATE transaction) until released.
        const lock = locker.transaction(async () => {
          locked();
          await released;
        });
        await holding;

        const bus = new EventBus();
        let attempts = 0;
        const persister = new EventBatcher({
          name: "EventPersister",
          bus,
          log: silent,
          batchSize: 1,
          flushIntervalMs: 50,
          maxBatch: 1000,
          write: async (batch) => {
            attempts++;
            await db.events.createMany(batch);
          },
        });
        await persister.start();
        cleanups.push(() => persister.stop());
        // Runs first: the lock must go before the persister stops and the connections close.
        cleanups.push(async () => {
          release();
          await lock;
        });
        const events = [makeEvent({ event: "busy.1" }), makeEvent({ event: "busy.2" })];
        bus.publish(events.map((e) => ({ ...e, received: e.occurred })));
        await waitFor(() => attempts >= 2, "a retry of the busy batch");
        expect(persister.pending).toBe(2);
        release();
        await waitFor(async () => (await db.events.count()) === 2, "the batch written after the lock is released");
        expect(persister.pending).toBe(0);
      });
    }
  });
}
