import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import {
  type Automation,
  type AutomationCreate,
  type AutomationReadOptions,
  InvalidError,
  NotFoundError,
  type Timestamp,
} from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";

const MISSING = "00000000-0000-4000-8000-000000000000";
const T0 = "2026-01-01T00:00:00.000000Z" as Timestamp;
const T1 = "2026-01-01T00:01:00.000000Z" as Timestamp;
const T2 = "2026-01-01T00:02:00.000000Z" as Timestamp;
const T3 = "2026-01-01T00:03:00.000000Z" as Timestamp;

const eventTrigger = (extra: Record<string, unknown> = {}) => ({
  type: "event",
  id: randomUUID(),
  match: { "prefect.resource.id": "prefect.flow-run.*" },
  expect: ["prefect.flow-run.Failed"],
  posture: "Reactive",
  threshold: 1,
  within: 0,
  ...extra,
});
const doNothing = { type: "do-nothing" };
const runDeployment = (deploymentId: string, source = "selected") => ({ type: "run-deployment", source, deployment_id: deploymentId, parameters: null });

describeEachBackend("automations", (t) => {
  const create = (input: Partial<AutomationCreate> = {}) =>
    t.db.automations.create({ name: "my-automation", trigger: eventTrigger(), actions: [doNothing], ...input });

  describe("create, get, update, patch and delete", () => {
    it("creates an automation with Prefect's defaults and reads it back", async () => {
      const trigger = eventTrigger({ for_each: ["prefect.resource.id"], zeta: 1, alpha: 2 });
      const automation = await create({ trigger });
      expect(automation).toMatchObject({
        name: "my-automation",
        description: "",
        enabled: true,
        tags: [],
        trigger,
        actions: [doNothing],
        actions_on_trigger: [],
        actions_on_resolve: [],
      });
      expect(automation.created).toBe(automation.updated);
      expect(await t.db.automations.get(automation.id)).toEqual(automation);
    });

    it("keeps every field it is given", async () => {
      const automation = await create({
        id: "ABCDEF00-0000-4000-8000-000000000001",
        description: "watch failures",
        enabled: false,
        tags: ["prod", "team-a"],
        actions_on_trigger: [{ type: "send-notification", block_document_id: randomUUID(), body: "b", subject: "s" }],
        actions_on_resolve: [doNothing],
      });
      expect(automation.id).toBe("abcdef00-0000-4000-8000-000000000001");
      expect(await t.db.automations.get(automation.id)).toEqual(automation);
      expect(automation).toMatchObject({ description: "watch failures", enabled: false, tags: ["prod", "team-a"] });
    });

    it("refuses definitions that are not JSON objects and lists", async () => {
      await expect(create({ name: undefined as unknown as string })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ trigger: [] as unknown as Record<string, unknown> })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ actions: doNothing as unknown as Record<string, unknown>[] })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ actions: ["do-nothing"] as unknown as Record<string, unknown>[] })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ trigger: { when: new Date() } as unknown as Record<string, unknown> })).rejects.toBeInstanceOf(InvalidError);
      await expect(create({ tags: "prod" as unknown as string[] })).rejects.toBeInstanceOf(InvalidError);
      expect(await t.db.automations.count()).toBe(0);
    });

    it("returns null for an unknown id and refuses a malformed one", async () => {
      expect(await t.db.automations.get(MISSING)).toBeNull();
      await expect(t.db.automations.get("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("update replaces the definition, keeping optional fields that are left out", async () => {
      const automation = await create({ description: "keep me", tags: ["a"], actions_on_resolve: [doNothing] });
      const trigger = eventTrigger({ threshold: 5 });
      const updated = await t.db.automations.update(automation.id, { name: "renamed", trigger, actions: [doNothing, doNothing] });
      expect(updated).toMatchObject({
        id: automation.id,
        name: "renamed",
        trigger,
        actions: [doNothing, doNothing],
        description: "keep me",
        tags: ["a"],
        enabled: true,
        actions_on_resolve: [doNothing],
      });
      expect(updated.created).toBe(automation.created);
      expect(updated.updated > automation.updated).toBe(true);
      const again = await t.db.automations.update(automation.id, {
        name: "renamed",
        trigger,
        actions: [],
        description: "",
        tags: [],
        enabled: false,
        actions_on_trigger: [doNothing],
        actions_on_resolve: [],
      });
      expect(again).toMatchObject({ description: "", tags: [], enabled: false, actions: [], actions_on_trigger: [doNothing], actions_on_resolve: [] });
      expect(await t.db.automations.get(automation.id)).toEqual(again);
    });

    it("update throws NotFoundError for an unknown automation and InvalidError for bad input", async () => {
      await expect(t.db.automations.update(MISSING, { name: "x", trigger: eventTrigger(), actions: [] })).rejects.toBeInstanceOf(NotFoundError);
      const automation = await create();
      await expect(t.db.automations.update(automation.id, { name: "x", actions: [] } as never)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.update("nope", { name: "x", trigger: eventTrigger(), actions: [] })).rejects.toBeInstanceOf(InvalidError);
    });

    it("patch sets enabled, true when left out", async () => {
      const automation = await create();
      const disabled = await t.db.automations.patch(automation.id, { enabled: false });
      expect(disabled.enabled).toBe(false);
      expect(disabled.updated > automation.updated).toBe(true);
      expect((await t.db.automations.get(automation.id))?.enabled).toBe(false);
      expect((await t.db.automations.patch(automation.id, {})).enabled).toBe(true);
      await expect(t.db.automations.patch(MISSING, { enabled: false })).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.automations.patch(automation.id, { enabled: "no" } as never)).rejects.toBeInstanceOf(InvalidError);
    });

    it("delete removes the automation with its related resources, buckets and child firings", async () => {
      const automation = await create({ owner_resource: "prefect.deployment.abc" });
      const other = await create({ name: "other", owner_resource: "prefect.deployment.abc" });
      const triggerId = randomUUID();
      for (const a of [automation, other]) {
        await t.db.automations.ensureBucket({ automation_id: a.id, trigger_id: triggerId, bucketing_key: [], start: T0, end: T1 });
        await t.db.automations.upsertChildFiring({
          automation_id: a.id,
          parent_trigger_id: triggerId,
          child_trigger_id: randomUUID(),
          child_firing_id: randomUUID(),
          child_fired_at: T0,
          child_firing: { id: "f" },
        });
      }
      await t.db.automations.delete(automation.id);
      expect(await t.db.automations.get(automation.id)).toBeNull();
      expect(await t.db.automations.readRelatedResources(automation.id)).toEqual([]);
      expect(await t.db.automations.readBuckets(automation.id, triggerId)).toEqual([]);
      expect(await t.db.automations.readChildFirings(automation.id, triggerId)).toEqual([]);
      expect(await t.db.automations.readRelatedResources(other.id)).toHaveLength(1);
      expect(await t.db.automations.readBuckets(other.id, triggerId)).toHaveLength(1);
      expect(await t.db.automations.readChildFirings(other.id, triggerId)).toHaveLength(1);
      await expect(t.db.automations.delete(automation.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.automations.delete("nope")).rejects.toBeInstanceOf(InvalidError);
    });

    it("snapshot gives the latest change and the number of automations", async () => {
      expect(await t.db.automations.snapshot()).toEqual({ latest_updated: null, count: 0 });
      const a = await create();
      const b = await create({ name: "b" });
      expect(await t.db.automations.snapshot()).toEqual({ latest_updated: b.updated, count: 2 });
      const patched = await t.db.automations.patch(a.id, { enabled: false });
      expect(await t.db.automations.snapshot()).toEqual({ latest_updated: patched.updated, count: 2 });
    });
  });

  describe("read and count", () => {
    let alpha: Automation;
    let beta: Automation;
    let gamma: Automation;

    beforeEach(async () => {
      alpha = await create({ name: "alpha", tags: ["prod", "etl"] });
      gamma = await create({ name: "gamma" });
      beta = await create({ name: "beta", tags: ["prod"] });
    });

    const names = async (options: AutomationReadOptions = {}) => (await t.db.automations.read(options)).map((a) => a.name);

    it("reads by name ascending by default, and sorts as asked", async () => {
      expect(await names()).toEqual(["alpha", "beta", "gamma"]);
      expect(await names({ sort: "NAME_DESC" })).toEqual(["gamma", "beta", "alpha"]);
      expect(await names({ sort: "CREATED_DESC" })).toEqual(["beta", "gamma", "alpha"]);
      await t.db.automations.patch(alpha.id, { enabled: false });
      expect(await names({ sort: "UPDATED_DESC" })).toEqual(["alpha", "beta", "gamma"]);
    });

    it("limits and offsets", async () => {
      expect(await names({ limit: 2 })).toEqual(["alpha", "beta"]);
      expect(await names({ limit: 2, offset: 2 })).toEqual(["gamma"]);
      expect(await names({ offset: 1 })).toEqual(["beta", "gamma"]);
    });

    it("filters on names, tags and creation time", async () => {
      expect(await names({ automations: { name: { any_: ["gamma", "beta", "nope"] } } })).toEqual(["beta", "gamma"]);
      expect(await names({ automations: { tags: { all_: ["prod", "etl"] } } })).toEqual(["alpha"]);
      expect(await names({ automations: { tags: { any_: ["etl", "prod"] } } })).toEqual(["alpha", "beta"]);
      expect(await names({ automations: { tags: { is_null_: true } } })).toEqual(["gamma"]);
      expect(await names({ automations: { tags: { is_null_: false } } })).toEqual(["alpha", "beta"]);
      expect(await names({ automations: { tags: { operator: "or_", all_: ["etl"], is_null_: true } } })).toEqual(["alpha", "gamma"]);
      expect(await names({ automations: { created: { before_: gamma.created } } })).toEqual(["alpha", "gamma"]);
      expect(await names({ automations: { created: { before_: "2000-01-01T00:00:00+02:00" } } })).toEqual([]);
      expect(await names({ automations: { operator: "or_", name: { any_: ["gamma"] }, tags: { all_: ["etl"] } } })).toEqual(["alpha", "gamma"]);
      expect(await names({ automations: { name: { any_: ["gamma"] }, tags: { all_: ["etl"] } } })).toEqual([]);
    });

    it("counts all automations, or those matching a filter", async () => {
      expect(await t.db.automations.count()).toBe(3);
      expect(await t.db.automations.count({ tags: { all_: ["prod"] } })).toBe(2);
      expect(await t.db.automations.count({ name: { any_: [beta.name] } })).toBe(1);
    });

    it("refuses a bad filter, sort or page", async () => {
      await expect(t.db.automations.read({ automations: { name: { like_: "a" } } as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.read({ automations: { created: { before_: "yesterday" } } })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.read({ sort: "ID_DESC" as never })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.read({ offset: -1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.count({ tags: { all_: "prod" } as never })).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("related resources", () => {
    const deployment1 = "11111111-0000-4000-8000-000000000001";
    const deployment2 = "22222222-0000-4000-8000-000000000002";

    const resources = async (automationId: string) =>
      (await t.db.automations.readRelatedResources(automationId)).map((r) => [r.resource_id, r.automation_owned_by_resource]);

    it("relates an automation to the deployments its actions select", async () => {
      const automation = await create({
        actions: [runDeployment(deployment1.toUpperCase()), runDeployment(deployment1), { type: "run-deployment", source: "inferred" }, doNothing],
        actions_on_trigger: [runDeployment(deployment2)],
      });
      expect(await resources(automation.id)).toEqual([[`prefect.deployment.${deployment1}`, false]]);
    });

    it("relates a created automation to its owner resource as owned", async () => {
      const automation = await create({ owner_resource: `prefect.deployment.${deployment1}`, actions: [runDeployment(deployment1)] });
      expect(await resources(automation.id)).toEqual([[`prefect.deployment.${deployment1}`, true]]);
    });

    it("update re-syncs the selected deployments, keeping owned and other relations", async () => {
      const automation = await create({ owner_resource: `prefect.deployment.${deployment2}`, actions: [runDeployment(deployment1)] });
      await t.db.automations.relateToResource(automation.id, "prefect.work-pool.abc", false);
      expect(await resources(automation.id)).toEqual([
        [`prefect.deployment.${deployment1}`, false],
        [`prefect.deployment.${deployment2}`, true],
        ["prefect.work-pool.abc", false],
      ]);
      await t.db.automations.update(automation.id, { name: "n", trigger: eventTrigger(), actions: [runDeployment(deployment2)] });
      expect(await resources(automation.id)).toEqual([
        [`prefect.deployment.${deployment2}`, true],
        ["prefect.work-pool.abc", false],
      ]);
      await t.db.automations.update(automation.id, { name: "n", trigger: eventTrigger(), actions: [doNothing] });
      expect(await resources(automation.id)).toEqual([
        [`prefect.deployment.${deployment2}`, true],
        ["prefect.work-pool.abc", false],
      ]);
    });

    it("relating again never takes ownership away, and can grant it", async () => {
      const automation = await create();
      const first = await t.db.automations.relateToResource(automation.id, "prefect.flow.x", true);
      const again = await t.db.automations.relateToResource(automation.id, "prefect.flow.x", false);
      expect(again).toMatchObject({ id: first.id, automation_owned_by_resource: true });
      expect(again.updated > first.updated).toBe(true);
      await t.db.automations.relateToResource(automation.id, "prefect.flow.y", false);
      const granted = await t.db.automations.relateToResource(automation.id, "prefect.flow.y", true);
      expect(granted.automation_owned_by_resource).toBe(true);
      expect(await resources(automation.id)).toEqual([
        ["prefect.flow.x", true],
        ["prefect.flow.y", true],
      ]);
    });

    it("relates concurrently without duplicates", async () => {
      const automation = await create();
      await Promise.all(Array.from({ length: 8 }, (_, i) => t.db.automations.relateToResource(automation.id, "prefect.flow.z", i === 5)));
      expect(await resources(automation.id)).toEqual([["prefect.flow.z", true]]);
    });

    it("refuses to relate an unknown automation", async () => {
      await expect(t.db.automations.relateToResource(MISSING, "prefect.flow.x", true)).rejects.toBeInstanceOf(NotFoundError);
      await expect(t.db.automations.relateToResource("nope", "prefect.flow.x", true)).rejects.toBeInstanceOf(InvalidError);
    });

    it("unrelates one resource", async () => {
      const automation = await create();
      await t.db.automations.relateToResource(automation.id, "prefect.flow.x", true);
      await t.db.automations.relateToResource(automation.id, "prefect.flow.y", false);
      expect(await t.db.automations.unrelateFromResource(automation.id, "prefect.flow.x")).toBe(true);
      expect(await t.db.automations.unrelateFromResource(automation.id, "prefect.flow.x")).toBe(false);
      expect(await resources(automation.id)).toEqual([["prefect.flow.y", false]]);
    });

    it("reads the automations related to a resource, owned or not", async () => {
      const owned = await create({ name: "owned", owner_resource: "prefect.deployment.d" });
      const related = await create({ name: "related" });
      await t.db.automations.relateToResource(related.id, "prefect.deployment.d", false);
      await create({ name: "unrelated", owner_resource: "prefect.deployment.other" });
      const names = async (options: Parameters<typeof t.db.automations.readRelatedTo>[1] = {}) =>
        (await t.db.automations.readRelatedTo("prefect.deployment.d", options)).map((a) => a.name);
      expect(await names()).toEqual(["owned", "related"]);
      expect(await names({ owned_by_resource: true })).toEqual(["owned"]);
      expect(await names({ owned_by_resource: false })).toEqual(["related"]);
      expect(await names({ automations: { name: { any_: ["related"] } } })).toEqual(["related"]);
      expect((await t.db.automations.readRelatedTo("prefect.deployment.d"))[0]).toEqual(owned);
      expect(await t.db.automations.readRelatedTo("prefect.deployment.none")).toEqual([]);
    });

    it("deletes the automations a resource owns, and only those", async () => {
      const owned1 = await create({ name: "owned1", owner_resource: "prefect.deployment.d" });
      const owned2 = await create({ name: "owned2", owner_resource: "prefect.deployment.d" });
      const related = await create({ name: "related" });
      await t.db.automations.relateToResource(related.id, "prefect.deployment.d", false);
      const elsewhere = await create({ name: "elsewhere", owner_resource: "prefect.deployment.e" });
      const deleted = await t.db.automations.deleteOwnedBy("prefect.deployment.d", { automations: { created: { before_: owned1.created } } });
      expect(deleted).toEqual([owned1.id]);
      expect(await t.db.automations.deleteOwnedBy("prefect.deployment.d")).toEqual([owned2.id]);
      expect(await t.db.automations.get(owned2.id)).toBeNull();
      expect(await t.db.automations.get(related.id)).not.toBeNull();
      expect(await t.db.automations.get(elsewhere.id)).not.toBeNull();
      expect(await t.db.automations.deleteOwnedBy("prefect.deployment.d")).toEqual([]);
    });
  });

  describe("buckets", () => {
    let automation: Automation;
    const triggerId = "33333333-0000-4000-8000-000000000003";
    const event = (n: number) => ({ id: randomUUID(), event: "prefect.flow-run.Failed", occurred: T0, n });

    beforeEach(async () => {
      automation = await create();
    });

    const key = (bucketing_key: string[] = ["a"]) => ({ automation_id: automation.id, trigger_id: triggerId, bucketing_key });

    it("ensureBucket starts a bucket once and leaves it alone after, but for the last event", async () => {
      const started = await t.db.automations.ensureBucket({ ...key(), start: T0, end: T1, last_event: event(1), initial_count: 2 });
      expect(started).toMatchObject({ ...key(), start: T0, end: T1, count: 2, last_event: { n: 1 }, last_operation: "ensure_bucket[insert]", triggered_at: null });
      const kept = await t.db.automations.ensureBucket({ ...key(), start: T2, end: T3, initial_count: 9 });
      expect(kept).toMatchObject({ id: started.id, start: T0, end: T1, count: 2, last_event: { n: 1 } });
      const newer = event(2);
      const replaced = await t.db.automations.ensureBucket({ ...key(), start: T2, end: T3, last_event: newer });
      expect(replaced).toMatchObject({ id: started.id, start: T0, count: 2, last_event: newer });
      expect(await t.db.automations.readBucket(key())).toEqual(replaced);
    });

    it("startNewBucket replaces the window, count, trigger time and last event", async () => {
      const first = await t.db.automations.startNewBucket({ ...key(), start: T0, end: T1, count: 1, last_event: event(1) });
      expect(first).toMatchObject({ count: 1, triggered_at: null, last_operation: "start_new_bucket[insert]" });
      const second = await t.db.automations.startNewBucket({ ...key(), start: T1, end: T2, count: 0, triggered_at: T1 });
      expect(second).toMatchObject({ id: first.id, start: T1, end: T2, count: 0, triggered_at: T1, last_event: null, last_operation: "start_new_bucket[update]" });
      expect(second.updated > first.updated).toBe(true);
    });

    it("incrementBucket adds to the count, inserting a missing bucket", async () => {
      const inserted = await t.db.automations.incrementBucket({ ...key(), start: T0, end: T1, count: 1, last_event: event(1) });
      expect(inserted).toMatchObject({ count: 1, last_operation: "increment_bucket[insert]", last_event: { n: 1 } });
      const incremented = await t.db.automations.incrementBucket({ ...key(), start: T2, end: T3, count: 3 });
      expect(incremented).toMatchObject({ id: inserted.id, count: 4, start: T0, end: T1, last_event: { n: 1 }, last_operation: "increment_bucket[update]" });
      const withEvent = await t.db.automations.incrementBucket({ ...key(), start: T0, end: T1, count: 1, last_event: event(3) });
      expect(withEvent).toMatchObject({ count: 5, last_event: { n: 3 } });
    });

    it("counts every one of many concurrent increments", async () => {
      await Promise.all(Array.from({ length: 20 }, () => t.db.automations.incrementBucket({ ...key(), start: T0, end: T1, count: 1 })));
      expect((await t.db.automations.readBucket(key()))?.count).toBe(20);
    });

    it("keeps buckets of different keys, triggers and automations apart", async () => {
      const other = await create({ name: "other" });
      const otherTrigger = randomUUID();
      await t.db.automations.ensureBucket({ ...key([]), start: T0, end: T1, initial_count: 1 });
      await t.db.automations.ensureBucket({ ...key(["a"]), start: T0, end: T1, initial_count: 2 });
      await t.db.automations.ensureBucket({ ...key(["a", "b"]), start: T0, end: T1, initial_count: 3 });
      await t.db.automations.ensureBucket({ ...key(["b", "a"]), start: T0, end: T1, initial_count: 4 });
      await t.db.automations.ensureBucket({ ...key(["a"]), trigger_id: otherTrigger, start: T0, end: T1, initial_count: 5 });
      await t.db.automations.ensureBucket({ ...key(["a"]), automation_id: other.id, start: T0, end: T1, initial_count: 6 });
      const counts = [[], ["a"], ["a", "b"], ["b", "a"]].map(async (k) => (await t.db.automations.readBucket(key(k)))?.count);
      expect(await Promise.all(counts)).toEqual([1, 2, 3, 4]);
      expect((await t.db.automations.readBucket({ ...key(["a"]), trigger_id: otherTrigger }))?.count).toBe(5);
      expect((await t.db.automations.readBucket({ ...key(["a"]), automation_id: other.id }))?.count).toBe(6);
      expect(await t.db.automations.readBucket(key(["c"]))).toBeNull();
    });

    it("reads a trigger's buckets by start time, a page at a time", async () => {
      await t.db.automations.ensureBucket({ ...key(["late"]), start: T2, end: T3 });
      await t.db.automations.ensureBucket({ ...key(["early"]), start: T0, end: T1 });
      await t.db.automations.ensureBucket({ ...key(["middle"]), start: T1, end: T2 });
      await t.db.automations.ensureBucket({ ...key(["other"]), trigger_id: randomUUID(), start: T0, end: T1 });
      const keys = async (page?: { limit?: number; offset?: number }) =>
        (await t.db.automations.readBuckets(automation.id, triggerId, page)).map((b) => b.bucketing_key[0]);
      expect(await keys()).toEqual(["early", "middle", "late"]);
      expect(await keys({ limit: 2 })).toEqual(["early", "middle"]);
      expect(await keys({ limit: 2, offset: 2 })).toEqual(["late"]);
      expect(await keys({ offset: 1 })).toEqual(["middle", "late"]);
    });

    it("removes one bucket, full buckets, an automation's buckets, and closed buckets", async () => {
      const other = await create({ name: "other" });
      await t.db.automations.startNewBucket({ ...key(["one"]), start: T0, end: T1, count: 1 });
      await t.db.automations.startNewBucket({ ...key(["three"]), start: T0, end: T2, count: 3 });
      await t.db.automations.startNewBucket({ ...key(["five"]), start: T0, end: T3, count: 5 });
      await t.db.automations.startNewBucket({ ...key(["five"]), trigger_id: randomUUID(), start: T0, end: T3, count: 5 });
      await t.db.automations.startNewBucket({ ...key(["x"]), automation_id: other.id, start: T0, end: T1, count: 9 });

      expect(await t.db.automations.removeBucket(key(["one"]))).toBe(true);
      expect(await t.db.automations.removeBucket(key(["one"]))).toBe(false);
      expect(await t.db.automations.removeBucketsExceedingThreshold(automation.id, triggerId, 3)).toBe(2);
      expect(await t.db.automations.readBuckets(automation.id, triggerId)).toEqual([]);

      await t.db.automations.startNewBucket({ ...key(["again"]), start: T0, end: T2, count: 0 });
      expect(await t.db.automations.sweepClosedBuckets(T1)).toBe(1);
      expect(await t.db.automations.readBucket({ ...key(["x"]), automation_id: other.id })).toBeNull();
      expect(await t.db.automations.removeBuckets(automation.id)).toBe(2);
      expect(await t.db.automations.sweepClosedBuckets(T3)).toBe(0);
    });

    it("refuses buckets of an unknown automation and malformed keys", async () => {
      await expect(t.db.automations.ensureBucket({ ...key(), automation_id: MISSING, start: T0, end: T1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.ensureBucket({ ...key(), trigger_id: "nope", start: T0, end: T1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.ensureBucket({ ...key([1] as unknown as string[]), start: T0, end: T1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.incrementBucket({ ...key(), start: "soon", end: T1, count: 1 })).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.incrementBucket({ ...key(), start: T0, end: T1, count: 1.5 })).rejects.toBeInstanceOf(InvalidError);
    });

    it("lockAutomation makes read-modify-write cycles of one automation take turns", async () => {
      await t.db.automations.startNewBucket({ ...key(), start: T0, end: T1, count: 0 });
      const bump = () =>
        t.db.transaction(async (tx) => {
          expect(await tx.automations.lockAutomation(automation.id)).toBe(true);
          const bucket = await tx.automations.readBucket(key());
          await tx.automations.startNewBucket({ ...key(), start: T0, end: T1, count: bucket!.count + 1 });
        });
      await Promise.all(Array.from({ length: 10 }, bump));
      expect((await t.db.automations.readBucket(key()))?.count).toBe(10);
      expect(await t.db.automations.lockAutomation(MISSING)).toBe(false);
    });
  });

  describe("composite trigger child firings", () => {
    let automation: Automation;
    const parent = "44444444-0000-4000-8000-000000000004";
    const childA = "55555555-0000-4000-8000-00000000000a";
    const childB = "55555555-0000-4000-8000-00000000000b";
    const childC = "55555555-0000-4000-8000-00000000000c";

    beforeEach(async () => {
      automation = await create();
    });

    const fire = (child: string, firedAt: Timestamp, firingId: string = randomUUID()) =>
      t.db.automations.upsertChildFiring({
        automation_id: automation.id,
        parent_trigger_id: parent,
        child_trigger_id: child,
        child_firing_id: firingId,
        child_fired_at: firedAt,
        child_firing: { id: firingId, trigger_states: ["Triggered"], triggered: firedAt },
      });

    it("keeps the latest firing of each child", async () => {
      const first = await fire(childA, T0);
      expect(first).toMatchObject({ automation_id: automation.id, parent_trigger_id: parent, child_trigger_id: childA, child_fired_at: T0 });
      const second = await fire(childA, T1);
      expect(second).toMatchObject({ id: first.id, child_fired_at: T1, child_firing: { triggered: T1 } });
      expect(second.child_firing_id).not.toBe(first.child_firing_id);
      expect(second.updated > first.updated).toBe(true);
      expect(await t.db.automations.readChildFirings(automation.id, parent)).toEqual([second]);
    });

    it("reads a parent's child firings, optionally of some children only", async () => {
      await fire(childB, T1);
      await fire(childA, T0);
      await fire(childC, T2);
      const other = await create({ name: "other" });
      await t.db.automations.upsertChildFiring({
        automation_id: other.id,
        parent_trigger_id: parent,
        child_trigger_id: childA,
        child_firing_id: randomUUID(),
        child_firing: {},
      });
      const children = async (ids?: string[]) => (await t.db.automations.readChildFirings(automation.id, parent, ids)).map((f) => f.child_trigger_id);
      expect(await children()).toEqual([childA, childB, childC]);
      expect(await children([childC, childA])).toEqual([childA, childC]);
      expect(await children([])).toEqual([]);
      expect((await t.db.automations.readChildFirings(other.id, parent)).map((f) => f.child_fired_at)).toEqual([null]);
    });

    it("clears given firings and says which it cleared", async () => {
      const a = await fire(childA, T0);
      const b = await fire(childB, T1);
      const cleared = await t.db.automations.clearChildFirings(automation.id, parent, [a.child_firing_id, b.child_firing_id, MISSING]);
      expect(cleared).toEqual([a.child_firing_id, b.child_firing_id].sort());
      expect(await t.db.automations.clearChildFirings(automation.id, parent, [a.child_firing_id])).toEqual([]);
      expect(await t.db.automations.clearChildFirings(automation.id, parent, [])).toEqual([]);
      expect(await t.db.automations.readChildFirings(automation.id, parent)).toEqual([]);
    });

    it("lets only one of two racing callers clear a firing", async () => {
      const a = await fire(childA, T0);
      const results = await Promise.all([
        t.db.automations.clearChildFirings(automation.id, parent, [a.child_firing_id]),
        t.db.automations.clearChildFirings(automation.id, parent, [a.child_firing_id]),
      ]);
      expect(results.flat()).toEqual([a.child_firing_id]);
    });

    it("clears firings older than a time", async () => {
      await fire(childA, T0);
      await fire(childB, T1);
      await fire(childC, T2);
      expect(await t.db.automations.clearOldChildFirings(automation.id, parent, T1)).toBe(1);
      expect((await t.db.automations.readChildFirings(automation.id, parent)).map((f) => f.child_trigger_id)).toEqual([childB, childC]);
    });

    it("refuses malformed ids", async () => {
      await expect(fire("nope", T0)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.readChildFirings(automation.id, parent, ["nope"])).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.clearChildFirings(automation.id, parent, ["nope"])).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("event followers", () => {
    const leader = "66666666-0000-4000-8000-000000000006";
    const follower = (occurred: string, received: Timestamp, scope = "triggers", leaderId = leader) => {
      const id = randomUUID();
      return t.db.automations.addFollower({
        scope,
        leader_event_id: leaderId,
        follower_event_id: id,
        received,
        follower: { id, event: "e", occurred, follows: leaderId, received },
      });
    };

    it("records followers and reads those of a leader in the order they occurred", async () => {
      const late = await follower("2026-01-01T00:00:03Z", T0);
      const early = await follower("2026-01-01T01:00:01+01:00", T2);
      const middle = await follower("2026-01-01T00:00:02.5Z", T1);
      await follower("2026-01-01T00:00:00Z", T0, "other-scope");
      await follower("2026-01-01T00:00:00Z", T0, "triggers", randomUUID());
      const read = await t.db.automations.readFollowers("triggers", leader);
      expect(read.map((f) => f.id)).toEqual([early.id, middle.id, late.id]);
      expect(read[0]).toEqual(early);
    });

    it("defaults the scope to the empty string and replaces a follower recorded again", async () => {
      const id = randomUUID();
      const first = await t.db.automations.addFollower({ leader_event_id: leader, follower_event_id: id, received: T0, follower: { id, v: 1 } });
      expect(first.scope).toBe("");
      const again = await t.db.automations.addFollower({ leader_event_id: leader, follower_event_id: id, received: T1, follower: { id, v: 2 } });
      expect(again).toMatchObject({ id: first.id, received: T1, follower: { v: 2 } });
      expect(await t.db.automations.readFollowers("", leader)).toEqual([again]);
    });

    it("forgets a follower", async () => {
      const f = await follower("2026-01-01T00:00:00Z", T0);
      expect(await t.db.automations.removeFollower("other-scope", f.follower_event_id)).toBe(false);
      expect(await t.db.automations.removeFollower("triggers", f.follower_event_id)).toBe(true);
      expect(await t.db.automations.removeFollower("triggers", f.follower_event_id)).toBe(false);
      expect(await t.db.automations.readFollowers("triggers", leader)).toEqual([]);
    });

    it("takes the lost followers of a scope: returns and forgets those received before a time", async () => {
      const lost2 = await follower("2026-01-01T00:00:05Z", T0);
      const lost1 = await follower("2026-01-01T00:00:04Z", T1);
      const recent = await follower("2026-01-01T00:00:01Z", T2);
      const elsewhere = await follower("2026-01-01T00:00:01Z", T0, "other-scope");
      const taken = await t.db.automations.takeLostFollowers("triggers", T2);
      expect(taken.map((f) => f.id)).toEqual([lost1.id, lost2.id]);
      expect(await t.db.automations.takeLostFollowers("triggers", T2)).toEqual([]);
      expect((await t.db.automations.readFollowers("triggers", leader)).map((f) => f.id)).toEqual([recent.id]);
      expect((await t.db.automations.readFollowers("other-scope", leader)).map((f) => f.id)).toEqual([elsewhere.id]);
    });

    it("refuses malformed input", async () => {
      await expect(follower("x", "later" as Timestamp)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.readFollowers("triggers", "nope")).rejects.toBeInstanceOf(InvalidError);
      await expect(
        t.db.automations.addFollower({ leader_event_id: leader, follower_event_id: randomUUID(), received: T0, follower: [] as unknown as Record<string, unknown> }),
      ).rejects.toBeInstanceOf(InvalidError);
    });
  });

  describe("action queue", () => {
    const entry = (index: number) => ({ automation_id: randomUUID(), action_index: index, triggered_action: { id: randomUUID(), action: { type: "do-nothing" } } });

    it("hands each queued action to one taker until it is finished or its hold ends", async () => {
      const queued = await t.db.automations.enqueueActions([entry(0), entry(1), entry(2)]);
      expect(queued.map((a) => [a.action_index, a.attempts])).toEqual([
        [0, 0],
        [1, 0],
        [2, 0],
      ]);
      const takers = await Promise.all([1, 2, 3].map(() => t.db.transaction((tx) => tx.automations.claimActions(1, 60))));
      const taken = takers.flat();
      expect(taken.map((a) => a.id).sort()).toEqual(queued.map((a) => a.id).sort());
      expect(taken.every((a) => a.attempts === 1)).toBe(true);
      expect(await t.db.automations.claimActions(10, 60)).toEqual([]);

      expect(await t.db.automations.finishAction(queued[0]!.id)).toBe(true);
      expect(await t.db.automations.finishAction(queued[0]!.id)).toBe(false);
      expect(await t.db.automations.releaseAction(queued[1]!.id, T0)).toBe(true);
      const again = await t.db.automations.claimActions(10, 60);
      expect(again.map((a) => [a.id, a.attempts])).toEqual([[queued[1]!.id, 2]]);
      expect((await t.db.automations.readQueuedActions()).map((a) => a.id)).toEqual([queued[1]!.id, queued[2]!.id]);
    });

    it("refuses malformed input", async () => {
      await expect(t.db.automations.enqueueActions([{ ...entry(0), action_index: -1 }])).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.claimActions(0, 60)).rejects.toBeInstanceOf(InvalidError);
      await expect(t.db.automations.finishAction("nope")).rejects.toBeInstanceOf(InvalidError);
    });
  });
});
