import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Dialect } from "../dialect.js";
import { NotFoundError } from "../errors.js";
import { page, where } from "../filters.js";
import { checkId } from "../ids.js";
import {
  type Automation,
  AutomationCreate,
  AutomationPartialUpdate,
  type AutomationRelatedResource,
  type AutomationStateSnapshot,
  AutomationUpdate,
  type JsonDocument,
} from "../schemas/automations.js";
import { Limit, Offset } from "../schemas/common.js";
import { AutomationFilter, AutomationSort } from "../schemas/filters.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { type AutomationStateRepository, automationStateRepository } from "./automation-state.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { orderBy } from "./run-states.js";

export interface AutomationReadOptions {
  readonly automations?: AutomationFilter | null | undefined;
  readonly sort?: AutomationSort | undefined;
  readonly limit?: number | null | undefined;
  readonly offset?: number | null | undefined;
}

export interface RelatedAutomationOptions {
  /** Only automations the resource owns (true) or does not own (false); both when left out. */
  readonly owned_by_resource?: boolean | null | undefined;
  readonly automations?: AutomationFilter | null | undefined;
}

/**
 * Automations, the resources they relate to, and (from AutomationStateRepository) the state the
 * triggers service keeps for them.
 */
export interface AutomationRepository extends AutomationStateRepository {
  /**
   * Inserts an automation, relates it to the deployments its run-deployment actions select, and to
   * `owner_resource` (as owned by it) when given, atomically.
   */
  create(input: AutomationCreate): Promise<Automation>;
  get(id: string): Promise<Automation | null>;
  /** Automations matching the filter, by name unless sorted otherwise (Prefect's NAME_ASC). */
  read(options?: AutomationReadOptions): Promise<Automation[]>;
  count(filter?: AutomationFilter | null): Promise<number>;
  /** Prefect's PUT: replaces the definition (optional fields only when given) and re-syncs deployment relations. Throws NotFoundError. */
  update(id: string, input: AutomationUpdate): Promise<Automation>;
  /** Prefect's PATCH: sets `enabled`. Throws NotFoundError. */
  patch(id: string, input: AutomationPartialUpdate): Promise<Automation>;
  /** Deletes the automation with its related resources, buckets and child firings. Throws NotFoundError. */
  delete(id: string): Promise<void>;
  /** The latest `updated` of any automation and how many there are. */
  snapshot(): Promise<AutomationStateSnapshot>;
  /** Relates the automation to a resource id; ownership only ever grows (owned stays owned). Throws NotFoundError for an unknown automation. */
  relateToResource(automationId: string, resourceId: string, ownedByResource: boolean): Promise<AutomationRelatedResource>;
  /** The resources related to the automation, by resource id. */
  readRelatedResources(automationId: string): Promise<AutomationRelatedResource[]>;
  /** Removes one relation; false when there was none. */
  unrelateFromResource(automationId: string, resourceId: string): Promise<boolean>;
  /** Automations related to the resource id (optionally only owned / not owned ones, and matching a filter), oldest first. */
  readRelatedTo(resourceId: string, options?: RelatedAutomationOptions): Promise<Automation[]>;
  /** Deletes the automations the resource owns (matching the filter, when given); returns their ids. */
  deleteOwnedBy(resourceId: string, options?: { readonly automations?: AutomationFilter | null | undefined }): Promise<string[]>;
}

const T = tables.automation;
const R = tables.automation_related_resource;

const SORTS: Record<AutomationSort, Sql> = {
  CREATED_DESC: orderBy([[`a."created"`, "DESC"], [`a."id"`, "DESC"]]),
  UPDATED_DESC: orderBy([[`a."updated"`, "DESC"], [`a."id"`, "DESC"]]),
  NAME_ASC: orderBy([[`a."name"`, "ASC"], [`a."id"`, "ASC"]]),
  NAME_DESC: orderBy([[`a."name"`, "DESC"], [`a."id"`, "DESC"]]),
};

const PageInput = z.object({ limit: Limit.nullish(), offset: Offset.nullish() });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEPLOYMENT_PREFIX = "prefect.deployment.";

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);
const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

/** AutomationFilter on the `automation` row under `alias`. */
export function automationFilterSql(d: Dialect, input: AutomationFilter | null | undefined, alias: string): Sql {
  if (!has(input)) return sql.empty;
  const f = parseInput(AutomationFilter, input, "automation filter");
  const tags = f.tags;
  const tagParts = tags
    ? [
        has(tags.all_) ? d.jsonArrayContainsAll(col(alias, "tags"), tags.all_) : sql.empty,
        has(tags.any_) ? d.jsonArrayContainsAny(col(alias, "tags"), tags.any_) : sql.empty,
        has(tags.is_null_) ? (tags.is_null_ ? d.jsonArrayIsEmpty(col(alias, "tags")) : sql`NOT (${d.jsonArrayIsEmpty(col(alias, "tags"))})`) : sql.empty,
      ].filter((p) => !p.isEmpty)
    : [];
  const parts = [
    f.name && has(f.name.any_) ? d.inList(col(alias, "name"), f.name.any_) : sql.empty,
    f.created && has(f.created.before_) ? sql`${col(alias, "created")} <= ${f.created.before_}` : sql.empty,
    tagParts.length === 0 ? sql.empty : tags?.operator === "or_" ? sql.or(tagParts) : sql.and(tagParts),
  ].filter((p) => !p.isEmpty);
  if (parts.length === 0) return sql.empty;
  return f.operator === "or_" ? sql.or(parts) : sql.and(parts);
}

/** The deployments an automation's actions run by selection (Prefect's `RunDeployment` with source "selected"). */
function selectedDeployments(actions: readonly JsonDocument[]): string[] {
  const ids = new Set<string>();
  for (const action of actions) {
    if (action.type !== "run-deployment" || (action.source ?? "selected") !== "selected") continue;
    const id = action.deployment_id;
    if (typeof id === "string" && UUID.test(id)) ids.add(id.toLowerCase());
  }
  return [...ids];
}

export function automationRepository(context: RepositoryContext): AutomationRepository {
  const { q } = context;
  const d = q.dialect;
  const decode = rowDecoder<Automation>(d, T);
  const decodeRelated = rowDecoder<AutomationRelatedResource>(d, R);
  const select = sql`SELECT ${selectList(T, "a")} FROM automation a`;

  const relate = async (tx: RepositoryContext["q"], automationId: string, resourceId: string, owned: boolean) => {
    const ts = now();
    const rows = await tx.query(
      insertSql(
        R,
        { id: randomUUID(), created: ts, updated: ts, automation_id: automationId, resource_id: resourceId, automation_owned_by_resource: owned },
        sql` ON CONFLICT ("automation_id", "resource_id") DO UPDATE SET
          "automation_owned_by_resource" = (automation_related_resource."automation_owned_by_resource" OR excluded."automation_owned_by_resource"),
          "updated" = excluded."updated"
          RETURNING ${selectList(R, "automation_related_resource")}`,
      ),
    );
    return decodeRelated(rows[0]!);
  };

  /** Relates the automation to exactly the deployments its actions select (relations the deployment owns are kept). */
  const syncDeployments = async (tx: RepositoryContext["q"], automationId: string, actions: readonly JsonDocument[]) => {
    await tx.execute(
      sql`DELETE FROM automation_related_resource WHERE automation_id = ${automationId}
          AND ${d.startsWith(sql.raw(`"resource_id"`), DEPLOYMENT_PREFIX)} AND automation_owned_by_resource = ${false}`,
    );
    for (const deploymentId of selectedDeployments(actions)) await relate(tx, automationId, `${DEPLOYMENT_PREFIX}${deploymentId}`, false);
  };

  const getIn = async (tx: RepositoryContext["q"], id: string) => {
    const rows = await tx.query(sql`${select} WHERE a.id = ${id}`);
    return rows[0] ? decode(rows[0]) : null;
  };

  const api: AutomationRepository = {
    ...automationStateRepository(context),

    async create(input) {
      const data = parseInput(AutomationCreate, input, "automation");
      const ts = now();
      const row: Automation = {
        id: data.id ?? randomUUID(),
        created: ts,
        updated: ts,
        name: data.name,
        description: data.description,
        enabled: data.enabled,
        tags: data.tags,
        trigger: data.trigger,
        actions: data.actions,
        actions_on_trigger: data.actions_on_trigger,
        actions_on_resolve: data.actions_on_resolve,
      };
      await q.transaction(async (tx) => {
        await tx.execute(insertSql(T, { ...row }));
        await syncDeployments(tx, row.id, row.actions);
        if (data.owner_resource) await relate(tx, row.id, data.owner_resource, true);
      });
      return row;
    },

    get: async (id) => getIn(q, checkId(id, "automation id")),

    async read(options = {}) {
      const sort = parseInput(AutomationSort, options.sort ?? "NAME_ASC", "automation sort");
      const { limit, offset } = parseInput(PageInput, { limit: options.limit, offset: options.offset }, "page");
      const rows = await q.query(sql`${select}${where(automationFilterSql(d, options.automations, "a"))} ORDER BY ${SORTS[sort]}${page(d, limit, offset)}`);
      return rows.map(decode);
    },

    async count(filter) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM automation a${where(automationFilterSql(d, filter, "a"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, input) {
      id = checkId(id, "automation id");
      const data = parseInput(AutomationUpdate, input, "automation update");
      return q.transaction(async (tx) => {
        const changed = await tx.execute(sql`UPDATE automation SET ${assignments(T, { ...data, updated: now() })} WHERE id = ${id}`);
        if (changed === 0) throw new NotFoundError(`Automation ${id} not found.`);
        await syncDeployments(tx, id, data.actions);
        const updated = await getIn(tx, id);
        if (!updated) throw new NotFoundError(`Automation ${id} not found.`);
        return updated;
      });
    },

    async patch(id, input) {
      id = checkId(id, "automation id");
      const data = parseInput(AutomationPartialUpdate, input, "automation patch");
      const rows = await q.query(
        sql`UPDATE automation SET ${assignments(T, { enabled: data.enabled, updated: now() })} WHERE id = ${id} RETURNING ${selectList(T, "automation")}`,
      );
      if (!rows[0]) throw new NotFoundError(`Automation ${id} not found.`);
      return decode(rows[0]);
    },

    async delete(id) {
      id = checkId(id, "automation id");
      if ((await q.execute(sql`DELETE FROM automation WHERE id = ${id}`)) === 0) throw new NotFoundError(`Automation ${id} not found.`);
    },

    async snapshot() {
      const rows = await q.query<{ latest: unknown; n: number }>(sql`SELECT max(a.updated) AS latest, count(*) AS n FROM automation a`);
      const latest = rows[0]?.latest;
      return { latest_updated: latest === null || latest === undefined ? null : d.decodeTimestamp(latest), count: Number(rows[0]?.n ?? 0) };
    },

    async relateToResource(automationId, resourceId, ownedByResource) {
      automationId = checkId(automationId, "automation id");
      const resource = parseInput(z.string(), resourceId, "resource id");
      const owned = parseInput(z.boolean(), ownedByResource, "owned by resource");
      return q.transaction(async (tx) => {
        // The automation's row lock keeps it from being deleted before the relation is written.
        const exists = await tx.query(sql`SELECT a.id FROM automation a WHERE a.id = ${automationId}${d.forUpdate("a")}`);
        if (exists.length === 0) throw new NotFoundError(`Automation ${automationId} not found.`);
        return relate(tx, automationId, resource, owned);
      });
    },

    async readRelatedResources(automationId) {
      automationId = checkId(automationId, "automation id");
      const rows = await q.query(
        sql`SELECT ${selectList(R, "r")} FROM automation_related_resource r WHERE r.automation_id = ${automationId} ORDER BY r.resource_id, r.id`,
      );
      return rows.map(decodeRelated);
    },

    async unrelateFromResource(automationId, resourceId) {
      automationId = checkId(automationId, "automation id");
      return (await q.execute(sql`DELETE FROM automation_related_resource WHERE automation_id = ${automationId} AND resource_id = ${resourceId}`)) > 0;
    },

    async readRelatedTo(resourceId, options = {}) {
      const owned = parseInput(z.boolean().nullish(), options.owned_by_resource, "owned by resource");
      const rows = await q.query(
        sql`${select} JOIN automation_related_resource r ON r.automation_id = a.id WHERE ${sql.and([
          sql`r.resource_id = ${resourceId}`,
          has(owned) ? sql`r.automation_owned_by_resource = ${owned}` : sql.empty,
          automationFilterSql(d, options.automations, "a"),
        ])} ORDER BY a.created, a.id`,
      );
      return rows.map(decode);
    },

    async deleteOwnedBy(resourceId, options = {}) {
      const rows = await q.query<{ id: string }>(
        sql`DELETE FROM automation WHERE ${sql.and([
          sql`id IN (SELECT r.automation_id FROM automation_related_resource r WHERE r.resource_id = ${resourceId} AND r.automation_owned_by_resource = ${true})`,
          automationFilterSql(d, options.automations, "automation"),
        ])} RETURNING id`,
      );
      return rows.map((r) => r.id).sort();
    },
  };
  return api;
}
