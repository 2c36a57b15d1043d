/**
 * Global (v2) concurrency and rate limits, and the tag-based (v1) limits Prefect's v1 API keeps as v2
 * limits named `tag:<tag>`.
 *
 * Every slot operation runs in one transaction that first locks the addressed rows in id order
 * (`SELECT ... FOR UPDATE` on PostgreSQL, where a contended lock waits for the other writer and then
 * reads its committed row; on SQLite the IMMEDIATE transaction already excludes every other writer),
 * decides on the locked rows, and writes them: a refusal on any limit throws before anything is
 * written, and the transaction rolls back. Concurrent callers thus never overshoot a limit, and
 * locking in id order keeps multi-limit callers from deadlocking.
 *
 * Slot decay follows Prefect's formulas (`max(0, active_slots - floor(slot_decay_per_second * seconds
 * since updated))`, and its decay of denied slots), computed here on the locked rows with one `now`
 * per call; reads compute the same in SQL. Unlike Prefect, a write does not throw away the fraction
 * of a slot a rate limit has earned since its last whole slot: `updated` moves forward only by the
 * time the decayed slots took, so callers retrying faster than a slot decays do not stall the limit.
 *
 * Legacy v1 rows (`concurrency_limit`) are never inserted, as in Prefect since its 2025 migration moved
 * them to v2: they are only read, updated and deleted where Prefect's v1 adapter falls back to them.
 */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import type { Queryable } from "../driver/types.js";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../errors.js";
import { page } from "../filters.js";
import { checkId } from "../ids.js";
import type { Created, Page } from "../schemas/common.js";
import {
  type ConcurrencyLimitTarget,
  type ConcurrencyLimitV2,
  ConcurrencyLimitV2Create,
  ConcurrencyLimitV2Update,
  HeldLease,
  type RetryHint,
  type SlotAcquisition,
  SlotDecrementOptions,
  SlotIncrementOptions,
  SlotWaitSettings,
  type TagConcurrencyLimit,
  TagConcurrencyLimitCreate,
  type TagSlotAcquisition,
  type TagSlotRelease,
} from "../schemas/concurrency-limits.js";
import { secondsBetween } from "../dialect.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { addSeconds, now, secondsBetween as secondsFrom, type Timestamp } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface ConcurrencyLimitRepository {
  /** Creates a global limit. Throws AlreadyExistsError when the name is taken. */
  create(input: ConcurrencyLimitV2Create): Promise<ConcurrencyLimitV2>;
  /** The limit with this id (active slots after decay), or null. */
  get(id: string): Promise<ConcurrencyLimitV2 | null>;
  /** The limit with this name (active slots after decay), or null. */
  getByName(name: string): Promise<ConcurrencyLimitV2 | null>;
  /** Every limit, by name (Prefect's order). */
  read(options?: Page): Promise<ConcurrencyLimitV2[]>;
  /** The limits with these names, by name; unknown names are ignored (Prefect's bulk read). */
  readByNames(names: readonly string[]): Promise<ConcurrencyLimitV2[]>;
  /** Throws NotFoundError for an unknown id, AlreadyExistsError when renaming onto a taken name. */
  update(id: string, patch: ConcurrencyLimitV2Update): Promise<ConcurrencyLimitV2>;
  /** As `update`, addressing the limit by name. */
  updateByName(name: string, patch: ConcurrencyLimitV2Update): Promise<ConcurrencyLimitV2>;
  /** Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
  /** Throws NotFoundError for an unknown name. */
  deleteByName(name: string): Promise<void>;
  /**
   * Takes `slots` on every active limit of the target, or on none: refused when one lacks room, which
   * then counts the slots as denied and returns the retry hint. InvalidError when `slots` exceeds an
   * active limit, or in `rate_limit` mode on a limit without decay.
   */
  incrementActiveSlots(target: ConcurrencyLimitTarget, slots: number, options?: SlotIncrementOptions): Promise<SlotAcquisition>;
  /**
   * Frees `slots` on every active limit of the target (never below 0) and, given `occupancy_seconds`,
   * folds it into the average occupancy. Returns the limits found, as read when the call began.
   */
  decrementActiveSlots(target: ConcurrencyLimitTarget, slots: number, options?: SlotDecrementOptions): Promise<ConcurrencyLimitV2[]>;

  /** v1: creates the `tag:<tag>` limit, or sets the limit of the existing one (Prefect's v1 upsert). */
  createTagLimit(input: TagConcurrencyLimitCreate): Promise<Created<TagConcurrencyLimit>>;
  /** v1: the `tag:` limit with this id, else a legacy v1 row with it, else null. */
  getTagLimit(id: string): Promise<TagConcurrencyLimit | null>;
  /** v1: the limit on `tag` (the `tag:` v2 limit first, then a legacy row), or null. */
  getTagLimitByTag(tag: string): Promise<TagConcurrencyLimit | null>;
  /** v1: every tag limit, `tag:` v2 limits by tag, then legacy rows whose tag has no v2 limit. */
  readTagLimits(options?: Page): Promise<TagConcurrencyLimit[]>;
  /** v1: the limits on these tags (v2 first, legacy otherwise), by tag: what orchestration enforces. */
  readTagLimitsForTags(tags: readonly string[]): Promise<TagConcurrencyLimit[]>;
  /**
   * v1: sets the occupied slots of the limit on `tag` to the task runs of `slotOverride` (none when
   * absent); returns the limit, or null when there is none. Leases are the caller's.
   */
  resetTagLimit(tag: string, slotOverride?: readonly string[] | null): Promise<TagConcurrencyLimit | null>;
  /** v1: deletes the `tag:` limit (or legacy row) with this id. Throws NotFoundError when there is none. */
  deleteTagLimit(id: string): Promise<void>;
  /** v1: deletes the limit on `tag`. Throws NotFoundError when there is none. */
  deleteTagLimitByTag(tag: string): Promise<void>;
  /**
   * v1 adapter's increment for a task run: one slot on the limit of each tag, all or nothing (zero
   * limits and full limits refuse without taking anything). The caller records the lease.
   */
  incrementTagSlots(tags: readonly string[], taskRunId: string): Promise<TagSlotAcquisition>;
  /**
   * v1 adapter's decrement for a task run: frees the slots of the leases it held (found by the caller
   * in its lease storage) and removes it from legacy rows.
   */
  decrementTagSlots(tags: readonly string[], taskRunId: string, leases: readonly HeldLease[]): Promise<TagSlotRelease>;
}

const T = tables.concurrency_limit_v2;
const V1 = tables.concurrency_limit;
const TAG_PREFIX = "tag:";
/** Prefect's floor on the average occupancy of a slot (MINIMUM_OCCUPANCY_SECONDS_PER_SLOT). */
const MIN_OCCUPANCY_SECONDS = 0.1;
/** Prefect's OCCUPANCY_SAMPLES_MULTIPLIER: the average spans `limit * 2` samples. */
const OCCUPANCY_SAMPLES = 2;

/** Thrown inside a slot transaction to roll it back when a limit lacks room. */
class Refused extends Error {
  constructor(readonly limits: ConcurrencyLimitV2[]) {
    super("concurrency slots refused");
  }
}

type Column = (name: string) => Sql;
/** A row of the legacy v1 `concurrency_limit` table. */
type LegacyRow = Omit<TagConcurrencyLimit, "active_slots" | "active" | "source"> & { active_slots: string[] | null };
type Waits = z.output<typeof SlotWaitSettings>;

/** Python's `repr()` of a string, as Prefect's messages quote names. */
function pythonRepr(value: string): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  return quote + value.replaceAll("\\", "\\\\").replaceAll(quote, `\\${quote}`) + quote;
}

const atLeastZero = (x: Sql) => sql`(CASE WHEN ${x} < 0 THEN 0 ELSE ${x} END)`;
/** Prefect's default wait bounds, for the v1 adapter (which has no say in them). */
const defaultWaits: Waits = SlotWaitSettings.parse({});

/** A limit's slots at some instant, and the `updated` to store with them. */
interface Decayed {
  readonly active: number;
  readonly denied: number;
  /** The decay baseline: `at`, or for a rate limit with slots left, when its last whole slot decayed. */
  readonly baseline: Timestamp;
}

/**
 * Prefect's active_slots_after_decay and denied_slots_after_decay of a stored row at `at`: rate
 * limits decay both at their rate; concurrency limits keep their active slots and decay denied ones
 * at one per average occupancy, clamped to [0.1 s, the wait bound of the limit's kind].
 */
function decayedAt(row: ConcurrencyLimitV2, at: Timestamp, waits: Waits): Decayed {
  // Never negative: a writer on another machine may have stamped a later `now`.
  const elapsed = Math.max(0, secondsFrom(at, row.updated));
  const rate = row.slot_decay_per_second;
  if (rate > 0) {
    const decayed = Math.floor(rate * elapsed);
    const active = Math.max(0, row.active_slots - decayed);
    const denied = Math.max(0, row.denied_slots - decayed);
    return { active, denied, baseline: active > 0 ? addSeconds(row.updated, decayed / rate) : at };
  }
  const maxWait = row.name.startsWith(TAG_PREFIX) ? waits.tag_slot_wait_seconds : waits.maximum_slot_wait_seconds;
  const occupancy = Math.max(MIN_OCCUPANCY_SECONDS, Math.min(row.avg_slot_occupancy_seconds, maxWait));
  return { active: row.active_slots, denied: Math.max(0, row.denied_slots - Math.floor(elapsed / occupancy)), baseline: at };
}

/** The `updated` to store with `active` slots left: the baseline while a rate limit still has slots to decay. */
const updatedFor = (state: Decayed, active: number, at: Timestamp) => (active > 0 ? state.baseline : at);

export function concurrencyLimitRepository({ q }: RepositoryContext): ConcurrencyLimitRepository {
  const d = q.dialect;
  const decode = rowDecoder<ConcurrencyLimitV2>(d, T);
  const decodeV1 = rowDecoder<LegacyRow>(d, V1);

  /** Seconds since the row's `updated`, never negative (a concurrent writer may have stamped a later `now`). */
  const elapsed = (c: Column, at: Timestamp) => atLeastZero(secondsBetween(d, sql`${at}`, c("updated")));
  /** Prefect's active_slots_after_decay. */
  const activeAfterDecay = (c: Column, at: Timestamp) =>
    atLeastZero(sql`${c("active_slots")} - floor(${c("slot_decay_per_second")} * ${elapsed(c, at)})`);
  const aliased: Column = (name) => sql.raw(`c."${name}"`);
  const otherColumns = sql.raw(
    Object.keys(T.columns)
      .filter((column) => column !== "active_slots")
      .map((column) => `c."${column}"`)
      .join(", "),
  );
  /** Limits with their active slots after decay at `at`. */
  const selectAt = (at: Timestamp) => sql`SELECT ${otherColumns}, ${activeAfterDecay(aliased, at)} AS active_slots FROM concurrency_limit_v2 c`;

  const one = async (condition: Sql) => {
    const rows = await q.query(sql`${selectAt(now())} WHERE ${condition}`);
    return rows[0] ? decode(rows[0]) : null;
  };

  const targetCondition = (target: ConcurrencyLimitTarget): Sql => {
    if ("ids" in target) return d.inList(aliased("id"), target.ids.map((id) => checkId(id, "concurrency limit id")));
    return d.inList(aliased("name"), [...new Set(target.names)]);
  };

  /** The target's limits as stored, locked in id order (deadlock-free for multi-limit callers). */
  const lock = async (tx: Queryable, condition: Sql) => {
    const rows = await tx.query(sql`SELECT ${selectList(T, "c")} FROM concurrency_limit_v2 c WHERE ${condition} ORDER BY c."id"${d.forUpdate("c")}`);
    return rows.map(decode);
  };
  /** Limits as the API shows them at `at`: active slots after decay. */
  const viewAt = (rows: readonly ConcurrencyLimitV2[], at: Timestamp) => rows.map((row) => ({ ...row, active_slots: decayedAt(row, at, defaultWaits).active }));

  /** Writes a locked limit's new slot counts. */
  const writeSlots = (tx: Queryable, id: string, changes: Record<string, unknown>) =>
    tx.execute(sql`UPDATE concurrency_limit_v2 SET ${assignments(T, changes)} WHERE "id" = ${id}`);

  const byName = (a: ConcurrencyLimitV2, b: ConcurrencyLimitV2) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  const duplicate = (error: unknown, name: string | null | undefined) =>
    error instanceof AlreadyExistsError && name ? new AlreadyExistsError(`A concurrency limit named "${name}" already exists.`, "name", { cause: error }) : error;

  /**
   * Applies a patch to a locked limit. The decay earned so far is applied first (Prefect drops it when
   * `updated` moves), so changing a rate limit does not give back slots it had already freed.
   */
  async function updateWhere(condition: Sql, what: string, patch: ConcurrencyLimitV2Update): Promise<ConcurrencyLimitV2> {
    const data = parseInput(ConcurrencyLimitV2Update, patch, "concurrency limit update");
    let id: string;
    try {
      id = await q.transaction(async (tx) => {
        const [row] = await lock(tx, condition);
        if (!row) throw new NotFoundError(`Concurrency limit ${what} not found.`);
        const at = now();
        const state = decayedAt(row, at, defaultWaits);
        const changes: Record<string, unknown> = { active_slots: state.active, denied_slots: state.denied, updated: at };
        for (const [key, value] of Object.entries(data)) if (value !== null && value !== undefined) changes[key] = value;
        await writeSlots(tx, row.id, changes);
        return row.id;
      });
    } catch (error) {
      throw duplicate(error, data.name);
    }
    const updated = await one(sql`c."id" = ${id}`);
    if (!updated) throw new NotFoundError(`Concurrency limit ${what} not found.`);
    return updated;
  }

  async function deleteWhere(condition: Sql, what: string): Promise<void> {
    if ((await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE ${condition}`)) === 0) throw new NotFoundError(`Concurrency limit ${what} not found.`);
  }

  /** Prefect's bulk_decrement_active_slots on locked rows (inactive ones are left alone). */
  async function decrementLocked(tx: Queryable, rows: readonly ConcurrencyLimitV2[], slots: number, at: Timestamp, occupancy: number | null | undefined, waits: Waits) {
    for (const row of rows) {
      if (!row.active) continue;
      const state = decayedAt(row, at, waits);
      const active = Math.max(0, state.active - slots);
      const changes: Record<string, unknown> = { active_slots: active, denied_slots: state.denied, updated: updatedFor(state, active, at) };
      if (occupancy && slots > 0 && row.limit > 0) {
        // The average over the last `limit * 2` samples.
        const perSlot = Math.max(occupancy / slots, MIN_OCCUPANCY_SECONDS);
        const samples = row.limit * OCCUPANCY_SAMPLES;
        changes.avg_slot_occupancy_seconds = row.avg_slot_occupancy_seconds + perSlot / samples - row.avg_slot_occupancy_seconds / samples;
      }
      await writeSlots(tx, row.id, changes);
    }
  }

  /** Takes `slots` on every locked row given if each has room, else throws Refused (with `found` as of `at`). */
  async function incrementLocked(tx: Queryable, found: readonly ConcurrencyLimitV2[], toTake: readonly ConcurrencyLimitV2[], slots: number, at: Timestamp, waits: Waits) {
    const states = toTake.map((row) => ({ row, state: decayedAt(row, at, waits) }));
    if (states.some(({ row, state }) => state.active + slots > row.limit)) throw new Refused(viewAt(found, at));
    for (const { row, state } of states) {
      await writeSlots(tx, row.id, { active_slots: state.active + slots, denied_slots: state.denied, updated: state.baseline });
    }
  }

  /**
   * Prefect's bulk_update_denied_slots: counts `slots` more denied slots on the active limits. Unlike
   * Prefect it also keeps the decay of active slots earned so far, so refusals never erase it.
   */
  async function addDenied(ids: readonly string[], slots: number, waits: Waits) {
    if (ids.length === 0) return;
    await q.transaction(async (tx) => {
      const at = now();
      for (const row of await lock(tx, d.inList(aliased("id"), ids))) {
        if (!row.active) continue;
        const state = decayedAt(row, at, waits);
        await writeSlots(tx, row.id, { active_slots: state.active, denied_slots: state.denied + slots, updated: updatedFor(state, state.active, at) });
      }
    });
  }

  /** Prefect's Retry-After reasoning, before jitter, from the limits as read when the call began. */
  function retryHint(active: readonly ConcurrencyLimitV2[], slots: number, waits: Waits): RetryHint {
    const blockingSlots = (l: ConcurrencyLimitV2) => (l.slot_decay_per_second > 0 ? slots + l.denied_slots : (slots + l.denied_slots) / l.limit);
    let blocking = active[0]!;
    for (const l of active) if (blockingSlots(l) > blockingSlots(blocking)) blocking = l;
    const count = blockingSlots(blocking);
    if (blocking.slot_decay_per_second > 0) return { blocking_limit: blocking, average_interval_seconds: count / blocking.slot_decay_per_second };
    const maxWait = blocking.name.startsWith(TAG_PREFIX) ? waits.tag_slot_wait_seconds : waits.maximum_slot_wait_seconds;
    const perSlot = Math.min(blocking.avg_slot_occupancy_seconds, maxWait);
    return { blocking_limit: blocking, average_interval_seconds: Math.min(perSlot * count, maxWait) };
  }

  // --- v1 (tag) limits ---------------------------------------------------------------------------

  const fromV2 = (l: ConcurrencyLimitV2): TagConcurrencyLimit => ({
    id: l.id,
    created: l.created,
    updated: l.updated,
    tag: l.name.slice(TAG_PREFIX.length),
    concurrency_limit: l.limit,
    active_slots: [],
    active: l.active,
    source: "v2",
  });
  const fromV1 = (row: Record<string, unknown>): TagConcurrencyLimit => {
    const r = decodeV1(row);
    return { ...r, active_slots: r.active_slots ?? [], active: true, source: "v1" };
  };
  const v1Select = sql`SELECT ${selectList(V1, "l")} FROM concurrency_limit l`;
  const isTagLimit = d.startsWith(aliased("name"), TAG_PREFIX);
  /** Legacy rows whose tag has no `tag:` v2 limit (those take precedence, as in Prefect's adapter). */
  const v1WithoutV2 = sql`NOT EXISTS (SELECT 1 FROM concurrency_limit_v2 c2 WHERE c2."name" = ${TAG_PREFIX} || l."tag")`;

  const oneV1 = async (condition: Sql, tx: Queryable = q) => {
    const rows = await tx.query(sql`${v1Select} WHERE ${condition}`);
    return rows[0] ? fromV1(rows[0]) : null;
  };

  const checkTag = (tag: string) => {
    if (typeof tag !== "string") throw new InvalidError("tag must be a string", [{ path: ["tag"], message: "Input should be a valid string" }]);
    return tag;
  };

  const api: ConcurrencyLimitRepository = {
    async create(input) {
      const data = parseInput(ConcurrencyLimitV2Create, input, "concurrency limit");
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, ...data, avg_slot_occupancy_seconds: 2 };
      try {
        await q.execute(insertSql(T, row));
      } catch (error) {
        throw duplicate(error, data.name);
      }
      return row;
    },
    get: async (id) => one(sql`c."id" = ${checkId(id, "concurrency limit id")}`),
    getByName: async (name) => one(sql`c."name" = ${name}`),
    async read(options = {}) {
      const rows = await q.query(sql`${selectAt(now())} ORDER BY c."name", c."id"${page(d, options.limit, options.offset)}`);
      return rows.map(decode);
    },
    async readByNames(names) {
      if (names.length === 0) return [];
      const rows = await q.query(sql`${selectAt(now())} WHERE ${d.inList(aliased("name"), [...new Set(names)])} ORDER BY c."name", c."id"`);
      return rows.map(decode);
    },
    update: async (id, patch) => {
      id = checkId(id, "concurrency limit id");
      return updateWhere(sql`"id" = ${id}`, id, patch);
    },
    updateByName: async (name, patch) => updateWhere(sql`"name" = ${name}`, JSON.stringify(name), patch),
    delete: async (id) => {
      id = checkId(id, "concurrency limit id");
      return deleteWhere(sql`"id" = ${id}`, id);
    },
    deleteByName: async (name) => deleteWhere(sql`"name" = ${name}`, JSON.stringify(name)),

    async incrementActiveSlots(target, slots, options = {}) {
      const opts = parseInput(SlotIncrementOptions, options, "slot increment options");
      if (!Number.isInteger(slots) || slots <= 0) {
        throw new InvalidError("slots must be a positive integer", [{ path: ["slots"], message: "Input should be greater than 0" }]);
      }
      const condition = targetCondition(target);
      try {
        const limits = await q.transaction(async (tx) => {
          const at = now();
          const found = await lock(tx, condition);
          const active = found.filter((l) => l.active);
          if (active.some((l) => l.limit < slots)) throw new InvalidError("Slots requested is greater than the limit");
          const nonDecaying = active
            .filter((l) => l.slot_decay_per_second === 0)
            .map((l) => l.name)
            .sort();
          if (opts.mode === "rate_limit" && nonDecaying.length > 0) {
            throw new InvalidError(
              `Only concurrency limits with slot decay can be used for rate limiting. The following limits do not have a decay configured: ${pythonRepr(nonDecaying.join(","))}`,
            );
          }
          await incrementLocked(tx, found, active, slots, at, opts);
          return viewAt(found, at);
        });
        return { acquired: true, limits: limits.sort(byName) };
      } catch (error) {
        if (!(error instanceof Refused)) throw error;
        const limits = error.limits.sort(byName);
        const active = limits.filter((l) => l.active);
        await addDenied(active.map((l) => l.id), slots, opts);
        return { acquired: false, limits, retry: retryHint(active, slots, opts) };
      }
    },

    async decrementActiveSlots(target, slots, options = {}) {
      const opts = parseInput(SlotDecrementOptions, options, "slot decrement options");
      if (!Number.isInteger(slots) || slots < 0) {
        throw new InvalidError("slots must be a non-negative integer", [{ path: ["slots"], message: "Input should be greater than or equal to 0" }]);
      }
      const condition = targetCondition(target);
      const limits = await q.transaction(async (tx) => {
        const at = now();
        const found = await lock(tx, condition);
        await decrementLocked(tx, found, slots, at, opts.occupancy_seconds, opts);
        return viewAt(found, at);
      });
      return limits.sort(byName);
    },

    async createTagLimit(input) {
      const data = parseInput(TagConcurrencyLimitCreate, input, "concurrency limit");
      const ts = now();
      const id = randomUUID();
      const row = {
        id,
        created: ts,
        updated: ts,
        active: true,
        name: TAG_PREFIX + data.tag,
        limit: data.concurrency_limit,
        active_slots: 0,
        denied_slots: 0,
        slot_decay_per_second: 0,
        avg_slot_occupancy_seconds: 2,
      };
      const rows = await q.query(
        insertSql(T, row, sql` ON CONFLICT ("name") DO UPDATE SET "limit" = excluded."limit", "updated" = excluded."updated" RETURNING ${selectList(T, "concurrency_limit_v2")}`),
      );
      const limit = decode(rows[0]!);
      return { row: fromV2(limit), created: limit.id === id };
    },
    async getTagLimit(id) {
      id = checkId(id, "concurrency limit id");
      const v2 = await one(sql`c."id" = ${id} AND ${isTagLimit}`);
      return v2 ? fromV2(v2) : oneV1(sql`l."id" = ${id}`);
    },
    async getTagLimitByTag(tag) {
      const v2 = await one(sql`c."name" = ${TAG_PREFIX + checkTag(tag)}`);
      return v2 ? fromV2(v2) : oneV1(sql`l."tag" = ${tag}`);
    },
    async readTagLimits(options = {}) {
      const rows = await q.query<{ source: string } & Record<string, unknown>>(
        sql`SELECT * FROM (
              SELECT 0 AS source, c."id", c."created", c."updated", substr(c."name", ${TAG_PREFIX.length + 1}) AS "tag", c."limit" AS "concurrency_limit",
                     NULL AS "active_slots", c."active" AS "active"
                FROM concurrency_limit_v2 c WHERE ${isTagLimit}
              UNION ALL
              SELECT 1 AS source, l."id", l."created", l."updated", l."tag", l."concurrency_limit", l."active_slots", TRUE AS "active"
                FROM concurrency_limit l WHERE ${v1WithoutV2}
            ) u ORDER BY source, "tag", "id"${page(d, options.limit, options.offset)}`,
      );
      return rows.map((row) => {
        const limit = fromV1(row);
        return Number(row.source) === 0 ? { ...limit, active: d.decodeBool(row.active), source: "v2" as const } : limit;
      });
    },
    async readTagLimitsForTags(tags) {
      if (tags.length === 0) return [];
      const unique = [...new Set(tags.map(checkTag))];
      const v2 = await q.query(sql`${selectAt(now())} WHERE ${d.inList(aliased("name"), unique.map((t) => TAG_PREFIX + t))}`);
      const v1 = await q.query(sql`${v1Select} WHERE ${d.inList(sql.raw('l."tag"'), unique)} AND ${v1WithoutV2}`);
      const all = [...v2.map((row) => fromV2(decode(row))), ...v1.map(fromV1)];
      return all.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
    },
    async resetTagLimit(tag, slotOverride) {
      checkTag(tag);
      const holders = [...new Set((slotOverride ?? []).map((id) => checkId(id, "task run id")))];
      return q.transaction(async (tx) => {
        const at = now();
        const [v2] = await lock(tx, sql`c."name" = ${TAG_PREFIX + tag}`);
        if (v2) {
          await writeSlots(tx, v2.id, { active_slots: holders.length, updated: at });
          return fromV2({ ...v2, active_slots: holders.length, updated: at });
        }
        const legacy = await oneV1(sql`l."tag" = ${tag}${d.forUpdate("l")}`, tx);
        if (!legacy) return null;
        await tx.execute(sql`UPDATE concurrency_limit SET ${assignments(V1, { active_slots: holders, updated: at })} WHERE "id" = ${legacy.id}`);
        return { ...legacy, active_slots: holders, updated: at };
      });
    },
    async deleteTagLimit(id) {
      id = checkId(id, "concurrency limit id");
      const deleted =
        (await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE "id" = ${id} AND ${d.startsWith(sql.raw('"name"'), TAG_PREFIX)}`)) ||
        (await q.execute(sql`DELETE FROM concurrency_limit WHERE "id" = ${id}`));
      if (deleted === 0) throw new NotFoundError(`Concurrency limit ${id} not found.`);
    },
    async deleteTagLimitByTag(tag) {
      checkTag(tag);
      const deleted =
        (await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE "name" = ${TAG_PREFIX + tag}`)) ||
        (await q.execute(sql`DELETE FROM concurrency_limit WHERE "tag" = ${tag}`));
      if (deleted === 0) throw new NotFoundError(`Concurrency limit on tag ${JSON.stringify(tag)} not found.`);
    },

    async incrementTagSlots(tags, taskRunId) {
      const holder = checkId(taskRunId, "task run id");
      const names = [...new Set(tags.map(checkTag))];
      try {
        return await q.transaction(async (tx): Promise<TagSlotAcquisition> => {
          const at = now();
          const v2 = await lock(tx, d.inList(aliased("name"), names.map((t) => TAG_PREFIX + t)));
          const v2ByTag = new Map(v2.map((l) => [l.name.slice(TAG_PREFIX.length), l]));
          const v1Rows = await tx.query(sql`${v1Select} WHERE ${d.inList(sql.raw('l."tag"'), names)} ORDER BY l."tag"${d.forUpdate("l")}`);
          const v1ByTag = new Map(v1Rows.map(fromV1).map((l) => [l.tag, l]));

          for (const tag of names) {
            if (v2ByTag.get(tag)?.limit === 0 || v1ByTag.get(tag)?.concurrency_limit === 0) return { status: "zero_limit", tag };
          }
          const toTake: ConcurrencyLimitV2[] = [];
          const legacy: TagConcurrencyLimit[] = [];
          for (const tag of names) {
            const v2Limit = v2ByTag.get(tag);
            const v1Limit = v1ByTag.get(tag);
            if (v2Limit?.active) toTake.push(v2Limit);
            else if (v1Limit) {
              if (v1Limit.active_slots.length >= v1Limit.concurrency_limit) return { status: "limit_reached", tag, limits: [] };
              legacy.push(v1Limit);
            }
          }
          await incrementLocked(tx, toTake, toTake, 1, at, defaultWaits);
          const changed: TagConcurrencyLimit[] = [];
          for (const row of legacy) {
            const slots = row.active_slots.includes(holder) ? row.active_slots : [...row.active_slots, holder];
            await tx.execute(sql`UPDATE concurrency_limit SET ${assignments(V1, { active_slots: slots, updated: at })} WHERE "id" = ${row.id}`);
            changed.push({ ...row, active_slots: slots, updated: at });
          }
          return { status: "acquired", limits: viewAt(toTake, at), legacy: changed };
        });
      } catch (error) {
        if (!(error instanceof Refused)) throw error;
        const full = error.limits.find((l) => l.active_slots + 1 > l.limit) ?? error.limits[0]!;
        return { status: "limit_reached", tag: full.name.slice(TAG_PREFIX.length), limits: error.limits };
      }
    },

    async decrementTagSlots(tags, taskRunId, leases) {
      const holder = checkId(taskRunId, "task run id");
      const names = [...new Set(tags.map(checkTag))];
      const held = leases.map((lease, i) => parseInput(HeldLease, lease, `lease ${i}`));
      return q.transaction(async (tx) => {
        const at = now();
        // Every row this call may write, locked at once in id order (no deadlock with other callers).
        const leaseIds = [...new Set(held.flatMap((lease) => lease.resource_ids))];
        const tagCondition = d.inList(aliased("name"), names.map((t) => TAG_PREFIX + t));
        const all = await lock(tx, leaseIds.length > 0 ? sql`(${tagCondition} OR ${d.inList(aliased("id"), leaseIds)})` : tagCondition);
        const v2 = viewAt(
          all.filter((l) => l.name.startsWith(TAG_PREFIX) && names.includes(l.name.slice(TAG_PREFIX.length))),
          at,
        );
        for (const lease of held) {
          // Read again (already locked): an earlier lease may have changed the same limit.
          await decrementLocked(tx, await lock(tx, d.inList(aliased("id"), lease.resource_ids)), lease.slots, at, null, defaultWaits);
        }
        const v1Rows = await tx.query(sql`${v1Select} WHERE ${d.inList(sql.raw('l."tag"'), names)} AND ${v1WithoutV2} ORDER BY l."tag"${d.forUpdate("l")}`);
        const legacy: TagConcurrencyLimit[] = [];
        for (const row of v1Rows.map(fromV1)) {
          if (!row.active_slots.includes(holder)) continue;
          const slots = row.active_slots.filter((id) => id !== holder);
          await tx.execute(sql`UPDATE concurrency_limit SET ${assignments(V1, { active_slots: slots, updated: at })} WHERE "id" = ${row.id}`);
          legacy.push({ ...row, active_slots: slots, updated: at });
        }
        return { limits: v2.sort(byName), legacy };
      });
    },
  };
  return api;
}
