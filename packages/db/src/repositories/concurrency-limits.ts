import { secondsBetween } from "../dialect.js";
/**
 * Global (v2) concurrency and rate limits, and the tag-based (v1) limits Prefect's v1 API keeps as v2
 * limits named `tag:<tag>`.
 *
 * Slot accounting is one conditional UPDATE per call (`... WHERE active_slots_after_decay + n <= limit`)
 * inside a transaction that first locks the addressed rows in id order (PostgreSQL; on SQLite the
 * IMMEDIATE transaction already excludes other writers). The UPDATE's row count must equal the number
 * of active limits, else the transaction rolls back: all or nothing. At READ COMMITTED a contended
 * UPDATE (or lock) waits for the other writer and re-reads the committed row, so concurrent callers
 * never overshoot a limit; locking in id order keeps multi-limit callers from deadlocking.
 *
 * Slot decay is computed in SQL from the stored `updated` timestamp (Prefect's formula:
 * `max(0, active_slots - floor(slot_decay_per_second * seconds since updated))`), with one `now` per
 * call bound as a parameter.
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
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
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

const float = (value: number) => sql`CAST(${value} AS double precision)`;
const int = (value: number) => sql`CAST(${value} AS integer)`;
const atLeastZero = (x: Sql) => sql`(CASE WHEN ${x} < 0 THEN 0 ELSE ${x} END)`;
/** Prefect's default wait bounds, for the v1 adapter (which has no say in them). */
const defaultWaits: Waits = SlotWaitSettings.parse({});

export function concurrencyLimitRepository({ q }: RepositoryContext): ConcurrencyLimitRepository {
  const d = q.dialect;
  const decode = rowDecoder<ConcurrencyLimitV2>(d, T);
  const decodeV1 = rowDecoder<LegacyRow>(d, V1);

  /** Seconds since the row's `updated`, never negative (a concurrent writer may have stamped a later `now`). */
  const elapsed = (c: Column, at: Timestamp) => atLeastZero(secondsBetween(d, sql`${at}`, c("updated")));
  /** Prefect's active_slots_after_decay. */
  const activeAfterDecay = (c: Column, at: Timestamp) =>
    atLeastZero(sql`${c("active_slots")} - floor(${c("slot_decay_per_second")} * ${elapsed(c, at)})`);
  /**
   * Prefect's denied_slots_after_decay: rate limits decay denied slots at their decay rate, others at one
   * slot per average occupancy, clamped to [0.1 s, the wait bound of the limit's kind].
   */
  const deniedAfterDecay = (c: Column, at: Timestamp, waits: Waits) => {
    const maxWait = sql`(CASE WHEN ${d.startsWith(c("name"), TAG_PREFIX)} THEN ${float(waits.tag_slot_wait_seconds)} ELSE ${float(waits.maximum_slot_wait_seconds)} END)`;
    const capped = sql`(CASE WHEN ${c("avg_slot_occupancy_seconds")} < ${maxWait} THEN ${c("avg_slot_occupancy_seconds")} ELSE ${maxWait} END)`;
    const clamped = sql`(CASE WHEN ${capped} < ${float(MIN_OCCUPANCY_SECONDS)} THEN ${float(MIN_OCCUPANCY_SECONDS)} ELSE ${capped} END)`;
    const rate = sql`(CASE WHEN ${c("slot_decay_per_second")} > 0 THEN ${c("slot_decay_per_second")} ELSE 1.0 / ${clamped} END)`;
    return atLeastZero(sql`${c("denied_slots")} - floor(${rate} * ${elapsed(c, at)})`);
  };

  const aliased: Column = (name) => sql.raw(`c."${name}"`);
  const bare: Column = (name) => sql.ident(name);
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

  /** The target's limits, locked in id order (deadlock-free for multi-limit callers), decayed at `at`. */
  const lock = async (tx: Queryable, condition: Sql, at: Timestamp) => {
    const rows = await tx.query(sql`${selectAt(at)} WHERE ${condition} ORDER BY c."id"${d.forUpdate("c")}`);
    return rows.map(decode);
  };

  const byName = (a: ConcurrencyLimitV2, b: ConcurrencyLimitV2) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  const duplicate = (error: unknown, name: string | null | undefined) =>
    error instanceof AlreadyExistsError && name ? new AlreadyExistsError(`A concurrency limit named "${name}" already exists.`, "name", { cause: error }) : error;

  async function updateWhere(condition: Sql, what: string, patch: ConcurrencyLimitV2Update): Promise<ConcurrencyLimitV2> {
    const data = parseInput(ConcurrencyLimitV2Update, patch, "concurrency limit update");
    const changes: Record<string, unknown> = { updated: now() };
    for (const [key, value] of Object.entries(data)) if (value !== null && value !== undefined) changes[key] = value;
    let rows: Record<string, unknown>[];
    try {
      rows = await q.query(sql`UPDATE concurrency_limit_v2 SET ${assignments(T, changes)} WHERE ${condition} RETURNING id`);
    } catch (error) {
      throw duplicate(error, data.name);
    }
    const id = rows[0]?.id as string | undefined;
    const updated = id ? await one(sql`c."id" = ${id}`) : null;
    if (!updated) throw new NotFoundError(`Concurrency limit ${what} not found.`);
    return updated;
  }

  async function deleteWhere(condition: Sql, what: string): Promise<void> {
    if ((await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE ${condition}`)) === 0) throw new NotFoundError(`Concurrency limit ${what} not found.`);
  }

  /** Prefect's bulk_decrement_active_slots on already locked rows. */
  async function decrementLocked(tx: Queryable, ids: readonly string[], slots: number, at: Timestamp, occupancy: number | null | undefined, waits: Waits) {
    if (ids.length === 0) return;
    const newActive = atLeastZero(sql`${activeAfterDecay(bare, at)} - ${int(slots)}`);
    const sets = [sql`active_slots = ${newActive}`, sql`denied_slots = ${deniedAfterDecay(bare, at, waits)}`, sql`updated = ${at}`];
    if (occupancy && slots > 0) {
      const perSlot = Math.max(occupancy / slots, MIN_OCCUPANCY_SECONDS);
      const samples = sql`("limit" * ${int(OCCUPANCY_SAMPLES)})`;
      sets.push(
        sql`avg_slot_occupancy_seconds = CASE WHEN "limit" > 0
              THEN avg_slot_occupancy_seconds + ${float(perSlot)} / ${samples} - avg_slot_occupancy_seconds / ${samples}
              ELSE avg_slot_occupancy_seconds END`,
      );
    }
    await tx.execute(sql`UPDATE concurrency_limit_v2 SET ${sql.join(sets)} WHERE ${d.inList(sql.raw('"id"'), ids)} AND active = ${true}`);
  }

  /** One conditional UPDATE taking `slots` on every limit of `ids` with room; throws Refused unless all had room. */
  async function incrementLocked(tx: Queryable, limits: ConcurrencyLimitV2[], ids: readonly string[], slots: number, at: Timestamp, waits: Waits) {
    if (ids.length === 0) return;
    const after = activeAfterDecay(bare, at);
    const changed = await tx.execute(
      sql`UPDATE concurrency_limit_v2 SET active_slots = ${after} + ${int(slots)}, denied_slots = ${deniedAfterDecay(bare, at, waits)}, updated = ${at}
          WHERE ${d.inList(sql.raw('"id"'), ids)} AND active = ${true} AND ${after} + ${int(slots)} <= "limit"`,
    );
    if (changed !== ids.length) throw new Refused(limits);
  }

  /**
   * Prefect's bulk_update_denied_slots: counts `slots` more denied slots on the active limits. Unlike
   * Prefect it also applies the decay of active slots it is about to restart from `now`, so refusals
   * never erase decay a rate limit had already earned.
   */
  async function addDenied(ids: readonly string[], slots: number, waits: Waits) {
    if (ids.length === 0) return;
    await q.transaction(async (tx) => {
      const at = now();
      const locked = await lock(tx, d.inList(aliased("id"), ids), at);
      const lockedIds = locked.filter((l) => l.active).map((l) => l.id);
      if (lockedIds.length === 0) return;
      await tx.execute(
        sql`UPDATE concurrency_limit_v2 SET active_slots = ${activeAfterDecay(bare, at)}, denied_slots = ${deniedAfterDecay(bare, at, waits)} + ${int(slots)}, updated = ${at}
            WHERE ${d.inList(sql.raw('"id"'), lockedIds)} AND active = ${true}`,
      );
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
          const found = await lock(tx, condition, at);
          const active = found.filter((l) => l.active);
          if (active.some((l) => l.limit < slots)) throw new InvalidError("Slots requested is greater than the limit");
          const nonDecaying = active.filter((l) => l.slot_decay_per_second === 0).map((l) => l.name);
          if (opts.mode === "rate_limit" && nonDecaying.length > 0) {
            throw new InvalidError(
              `Only concurrency limits with slot decay can be used for rate limiting. The following limits do not have a decay configured: ${nonDecaying.join(",")}`,
            );
          }
          await incrementLocked(tx, found, active.map((l) => l.id), slots, at, opts);
          return found;
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
        const found = await lock(tx, condition, at);
        await decrementLocked(tx, found.filter((l) => l.active).map((l) => l.id), slots, at, opts.occupancy_seconds, opts);
        return found;
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
        const [v2] = await lock(tx, sql`c."name" = ${TAG_PREFIX + tag}`, at);
        if (v2) {
          await tx.execute(sql`UPDATE concurrency_limit_v2 SET active_slots = ${holders.length}, updated = ${at} WHERE "id" = ${v2.id}`);
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
          const v2 = await lock(tx, d.inList(aliased("name"), names.map((t) => TAG_PREFIX + t)), at);
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
          await incrementLocked(tx, toTake, toTake.map((l) => l.id), 1, at, defaultWaits);
          const changed: TagConcurrencyLimit[] = [];
          for (const row of legacy) {
            const slots = row.active_slots.includes(holder) ? row.active_slots : [...row.active_slots, holder];
            await tx.execute(sql`UPDATE concurrency_limit SET ${assignments(V1, { active_slots: slots, updated: at })} WHERE "id" = ${row.id}`);
            changed.push({ ...row, active_slots: slots, updated: at });
          }
          return { status: "acquired", limits: toTake, legacy: changed };
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
        const v2 = await lock(tx, d.inList(aliased("name"), names.map((t) => TAG_PREFIX + t)), at);
        for (const lease of held) {
          const locked = await lock(tx, d.inList(aliased("id"), lease.resource_ids), at);
          await decrementLocked(tx, locked.filter((l) => l.active).map((l) => l.id), lease.slots, at, null, defaultWaits);
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
