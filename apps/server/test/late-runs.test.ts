/**
 * MarkLateRuns (Prefect's services/late_runs.py): SCHEDULED runs past their start time by more than
 * the after-seconds become Late, once, with their events; through a pass and through a real server.
 */
import { openDatabase, toMicros } from "@prefect/db";
import { expect, it } from "vitest";
import type { ReceivedEvent } from "@prefect/orchestration";
import { markLateRuns } from "../src/loops/late-runs.js";
import { waitFor } from "./support/events.js";
import { describeApi, type TestServer } from "./support/server.js";

const secondsFromNow = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();

async function flow(server: TestServer, name = "etl"): Promise<string> {
  return (await server.request("POST", "/flows/", { name })).body.id;
}

/** A flow run created through the API in the given state (SCHEDULED for `at` by default). */
async function run(server: TestServer, flowId: string, at: string, state: Record<string, unknown> = {}): Promise<string> {
  const response = await server.request("POST", "/flow_runs/", { flow_id: flowId, state: { type: "SCHEDULED", state_details: { scheduled_time: at }, ...state } });
  if (response.status !== 201) throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.id;
}

async function read(server: TestServer, id: string) {
  return (await server.request("GET", `/flow_runs/${id}`)).body;
}

async function states(server: TestServer, id: string): Promise<{ type: string; name: string }[]> {
  return (await server.request("GET", `/flow_run_states/?flow_run_id=${id}`)).body;
}

function recordEvents(server: TestServer): ReceivedEvent[] {
  const seen: ReceivedEvent[] = [];
  server.context.events.subscribe((events) => seen.push(...events));
  return seen;
}

const lateEventsOf = (events: ReceivedEvent[], id: string) => events.filter((e) => e.event === "prefect.flow-run.Late" && e.resource["prefect.resource.id"] === `prefect.flow-run.${id}`);

describeApi("late runs: a pass", (t) => {
  it("marks SCHEDULED runs past their time Late, keeping their scheduled time, and leaves the others", async () => {
    const f = await flow(t.server);
    const longAgo = secondsFromNow(-600);
    const late = await run(t.server, f, longAgo);
    const justLate = await run(t.server, f, secondsFromNow(-60));
    const recent = await run(t.server, f, secondsFromNow(-2));
    const future = await run(t.server, f, secondsFromNow(600));
    const retrying = await run(t.server, f, longAgo, { name: "AwaitingRetry" });
    const pending = await run(t.server, f, longAgo);
    expect((await t.server.request("POST", `/flow_runs/${pending}/set_state`, { state: { type: "PENDING" } })).body.status).toBe("ACCEPT");
    const running = await run(t.server, f, longAgo);
    expect((await t.server.request("POST", `/flow_runs/${running}/set_state`, { state: { type: "RUNNING" } })).body.status).toBe("ACCEPT");
    expect((await read(t.server, late)).next_scheduled_start_time).not.toBeNull();
    const events = recordEvents(t.server);

    expect(await markLateRuns(t.server.context, { afterSeconds: 15 })).toBe(2);
    for (const [id, at] of [
      [late, longAgo],
      [justLate, undefined],
    ] as const) {
      const after = await read(t.server, id);
      expect(after).toMatchObject({ state_type: "SCHEDULED", state_name: "Late", state: { type: "SCHEDULED", name: "Late" } });
      expect(toMicros(after.state.state_details.scheduled_time)).toBe(toMicros(after.next_scheduled_start_time));
      if (at) expect(toMicros(after.state.state_details.scheduled_time)).toBe(toMicros(at));
      expect((await states(t.server, id)).map((s) => s.name)).toEqual(["Scheduled", "Late"]);
      const [event] = lateEventsOf(events, id);
      expect(event).toMatchObject({ event: "prefect.flow-run.Late", payload: { intended: { from: "SCHEDULED", to: "SCHEDULED" }, validated_state: { type: "SCHEDULED", name: "Late" } } });
    }
    for (const [id, name] of [
      [recent, "Scheduled"],
      [future, "Scheduled"],
      [retrying, "AwaitingRetry"],
      [pending, "Pending"],
      [running, "Running"],
    ] as const) {
      expect((await read(t.server, id)).state_name, name).toBe(name);
      expect(lateEventsOf(events, id)).toEqual([]);
    }

    // Nothing more to do: a Late run is not marked again, and the others are still too recent.
    expect(await markLateRuns(t.server.context, { afterSeconds: 15 })).toBe(0);
    expect((await states(t.server, late)).map((s) => s.name)).toEqual(["Scheduled", "Late"]);
    // With a shorter threshold the recent one is late too.
    expect(await markLateRuns(t.server.context, { afterSeconds: 0.5 })).toBe(1);
    expect((await read(t.server, recent)).state_name).toBe("Late");
    expect(events.filter((e) => e.event === "prefect.flow-run.Late")).toHaveLength(3);
  });

  it("marks each run Late once when passes run at once, in one process or from another connection", async () => {
    const f = await flow(t.server);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await run(t.server, f, secondsFromNow(-120 - i)));
    const events = recordEvents(t.server);
    const others = t.backend === "sqlite-memory" ? [] : [await openDatabase(t.server.db.config, { migrate: false })];
    try {
      const contexts = [t.server.context, t.server.context, ...others.map((db) => ({ ...t.server.context, db }))];
      const marked = await Promise.all(contexts.map((context) => markLateRuns(context, { afterSeconds: 15 })));
      expect(marked.reduce((a, b) => a + b, 0)).toBe(ids.length);
    } finally {
      for (const other of others) await other.close();
    }
    for (const id of ids) {
      expect((await states(t.server, id)).map((s) => s.name)).toEqual(["Scheduled", "Late"]);
      expect(lateEventsOf(events, id)).toHaveLength(1);
    }
  });
});

describeApi(
  "late runs: in a real server",
  (t) => {
    it("marks a run Late on its own once it is past the threshold", async () => {
      const f = await flow(t.server);
      const events = recordEvents(t.server);
      const late = await run(t.server, f, secondsFromNow(-60));
      const future = await run(t.server, f, secondsFromNow(3600));
      await waitFor(async () => (await read(t.server, late)).state_name === "Late", "the run to be marked Late");
      await waitFor(() => lateEventsOf(events, late).length === 1, "its event");
      // Stored by the event persister too.
      await waitFor(async () => {
        const response = await t.server.request("POST", "/events/filter", { filter: { event: { name: ["prefect.flow-run.Late"] }, any_resource: { id: [`prefect.flow-run.${late}`] } } });
        return response.body.events.length === 1;
      }, "the stored event");
      expect((await read(t.server, future)).state_name).toBe("Scheduled");
    });
  },
  {
    PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED: "true",
    PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS: "0.2",
    PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS: "5",
  },
);
