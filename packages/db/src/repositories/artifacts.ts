import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { Dialect } from "../dialect.js";
import { NotFoundError } from "../errors.js";
import { deploymentFilterSql, flowRunCriteriaSql, page, taskRunCriteriaSql, where } from "../filters.js";
import { checkId } from "../ids.js";
import { type Artifact, type ArtifactCollection, ArtifactCreate, ArtifactUpdate } from "../schemas/artifacts.js";
import { Limit, Offset } from "../schemas/common.js";
import {
  ArtifactCollectionFilter,
  ArtifactCollectionSort,
  ArtifactFilter,
  ArtifactSort,
  type DeploymentFilter,
  type FlowFilter,
  type FlowRunFilter,
  type TaskRunFilter,
} from "../schemas/filters.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { orderBy } from "./run-states.js";

/** Criteria on the runs, flows and deployments an artifact belongs to, as Prefect's read endpoints take them. */
export interface ArtifactRelatedCriteria {
  readonly flow_runs?: FlowRunFilter | null | undefined;
  readonly task_runs?: TaskRunFilter | null | undefined;
  readonly flows?: FlowFilter | null | undefined;
  /** On the deployment of the artifact's flow run. */
  readonly deployments?: DeploymentFilter | null | undefined;
}

export interface ArtifactCriteria extends ArtifactRelatedCriteria {
  readonly artifacts?: ArtifactFilter | null | undefined;
}

export interface ArtifactReadOptions extends ArtifactCriteria {
  readonly sort?: ArtifactSort | undefined;
  readonly limit?: number | null | undefined;
  readonly offset?: number | null | undefined;
}

export interface ArtifactCollectionCriteria extends ArtifactRelatedCriteria {
  readonly artifacts?: ArtifactCollectionFilter | null | undefined;
}

export interface ArtifactCollectionReadOptions extends ArtifactCollectionCriteria {
  readonly sort?: ArtifactCollectionSort | undefined;
  readonly limit?: number | null | undefined;
  readonly offset?: number | null | undefined;
}

export interface ArtifactRepository {
  /** Inserts an artifact; one with a key also becomes the latest of its collection, in the same transaction. */
  create(input: ArtifactCreate): Promise<Artifact>;
  get(id: string): Promise<Artifact | null>;
  /** Artifacts matching the criteria, newest id first unless sorted otherwise (Prefect's ID_DESC). */
  read(options?: ArtifactReadOptions): Promise<Artifact[]>;
  count(criteria?: ArtifactCriteria): Promise<number>;
  /** The collection of a key: the newest artifact with that key, or null. */
  getLatest(key: string): Promise<ArtifactCollection | null>;
  /** Collections (the newest artifact of each key) matching the criteria, newest id first by default. */
  readLatest(options?: ArtifactCollectionReadOptions): Promise<ArtifactCollection[]>;
  countLatest(criteria?: ArtifactCollectionCriteria): Promise<number>;
  /** Writes the given fields (its collection too when it is the latest of its key). Throws NotFoundError. */
  update(id: string, patch: ArtifactUpdate): Promise<Artifact>;
  /** Deletes the artifact; its collection then points at the next newest version, or goes with the last one. Throws NotFoundError. */
  delete(id: string): Promise<void>;
}

const A = tables.artifact;
const C = tables.artifact_collection;

const ARTIFACT_SORTS: Record<ArtifactSort, Sql> = {
  CREATED_DESC: orderBy([[`a."created"`, "DESC"], [`a."id"`, "DESC"]]),
  UPDATED_DESC: orderBy([[`a."updated"`, "DESC"], [`a."id"`, "DESC"]]),
  ID_DESC: orderBy([[`a."id"`, "DESC"]]),
  KEY_DESC: orderBy([[`a."key"`, "DESC"], [`a."id"`, "DESC"]]),
  KEY_ASC: orderBy([[`a."key"`, "ASC"], [`a."id"`, "DESC"]]),
};

const COLLECTION_SORTS: Record<ArtifactCollectionSort, Sql> = {
  CREATED_DESC: orderBy([[`c."created"`, "DESC"], [`c."id"`, "DESC"]]),
  UPDATED_DESC: orderBy([[`c."updated"`, "DESC"], [`c."id"`, "DESC"]]),
  ID_DESC: orderBy([[`c."id"`, "DESC"]]),
  KEY_DESC: orderBy([[`c."key"`, "DESC"]]),
  KEY_ASC: orderBy([[`c."key"`, "ASC"]]),
};

const PageInput = z.object({ limit: Limit.nullish(), offset: Offset.nullish() });

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);
const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;

type ParsedArtifactFilter = z.output<typeof ArtifactFilter>;
type ParsedCollectionFilter = z.output<typeof ArtifactCollectionFilter>;

/** The criteria of ArtifactFilter and ArtifactCollectionFilter, alike but for the id (`latest_id` for collections). */
function artifactFilterSql(
  d: Dialect,
  f: ParsedArtifactFilter | ParsedCollectionFilter,
  a: string,
  idColumn: "id" | "latest_id",
  ids: ParsedArtifactFilter["id"],
): Sql {
  const parts = [
    ids && has(ids.any_) ? d.inList(col(a, idColumn), ids.any_) : sql.empty,
    f.key && has(f.key.any_) ? d.inList(col(a, "key"), f.key.any_) : sql.empty,
    f.key?.like_ ? d.containsInsensitive(col(a, "key"), f.key.like_) : sql.empty,
    f.key && has(f.key.exists_) ? (f.key.exists_ ? sql`${col(a, "key")} IS NOT NULL` : sql`${col(a, "key")} IS NULL`) : sql.empty,
    f.flow_run_id && has(f.flow_run_id.any_) ? d.inList(col(a, "flow_run_id"), f.flow_run_id.any_) : sql.empty,
    f.task_run_id && has(f.task_run_id.any_) ? d.inList(col(a, "task_run_id"), f.task_run_id.any_) : sql.empty,
    f.type && has(f.type.any_) ? d.inList(col(a, "type"), f.type.any_) : sql.empty,
    // As in Prefect, NOT IN leaves out artifacts without a type, and an empty list filters nothing.
    f.type?.not_any_?.length ? d.notInList(col(a, "type"), f.type.not_any_) : sql.empty,
  ].filter((p) => !p.isEmpty);
  if (parts.length === 0) return sql.empty;
  return f.operator === "or_" ? sql.or(parts) : sql.and(parts);
}

/**
 * Prefect's EXISTS sub-queries on the artifact's flow run (with its flow and deployment) and task run.
 * A criterion given at all, even empty, requires the run (or deployment) to exist, as in Prefect.
 */
function relatedSql(d: Dialect, c: ArtifactRelatedCriteria, a: string): Sql {
  const parts: Sql[] = [];
  if (has(c.flow_runs) || has(c.flows) || has(c.deployments)) {
    const runs = flowRunCriteriaSql(d, { flow_runs: c.flow_runs, flows: c.flows }, "afr");
    const deployment = has(c.deployments)
      ? sql`EXISTS (SELECT 1 FROM deployment ad WHERE ad.id = afr.deployment_id AND ${sql.and([deploymentFilterSql(d, c.deployments, "ad")])})`
      : sql.empty;
    parts.push(sql`EXISTS (SELECT 1 FROM flow_run afr WHERE afr.id = ${col(a, "flow_run_id")} AND ${sql.and([runs, deployment])})`);
  }
  if (has(c.task_runs)) {
    const tasks = taskRunCriteriaSql(d, { task_runs: c.task_runs }, "atr");
    parts.push(sql`EXISTS (SELECT 1 FROM task_run atr WHERE atr.id = ${col(a, "task_run_id")} AND ${tasks})`);
  }
  return sql.and(parts);
}

export function artifactRepository(context: RepositoryContext): ArtifactRepository {
  const { q } = context;
  const d = q.dialect;
  const decode = rowDecoder<Artifact>(d, A);
  const decodeCollection = rowDecoder<ArtifactCollection>(d, C);
  const select = sql`SELECT ${selectList(A, "a")} FROM artifact a`;
  const selectCollection = sql`SELECT ${selectList(C, "c")} FROM artifact_collection c`;

  const artifactConditions = (criteria: ArtifactCriteria): Sql => {
    const f = has(criteria.artifacts) ? parseInput(ArtifactFilter, criteria.artifacts, "artifact filter") : null;
    return sql.and([f ? artifactFilterSql(d, f, "a", "id", f.id) : sql.empty, relatedSql(d, criteria, "a")]);
  };
  const collectionConditions = (criteria: ArtifactCollectionCriteria): Sql => {
    const f = has(criteria.artifacts) ? parseInput(ArtifactCollectionFilter, criteria.artifacts, "artifact collection filter") : null;
    return sql.and([f ? artifactFilterSql(d, f, "c", "latest_id", f.latest_id) : sql.empty, relatedSql(d, criteria, "c")]);
  };

  /** The collection fields copied from an artifact. */
  const copied = (artifact: Omit<Artifact, "id" | "created" | "updated">) => ({
    type: artifact.type,
    description: artifact.description,
    data: artifact.data,
    metadata_: artifact.metadata_,
    flow_run_id: artifact.flow_run_id,
    task_run_id: artifact.task_run_id,
  });

  /**
   * Locks the collection of `key` until the transaction ends (PostgreSQL; SQLite's write transactions
   * are exclusive already), so that writers of one key take turns.
   */
  const lockCollection = async (tx: RepositoryContext["q"], key: string) => {
    const rows = await tx.query(sql`SELECT ${selectList(C, "c")} FROM artifact_collection c WHERE c.key = ${key}${d.forUpdate("c")}`);
    return rows[0] ? decodeCollection(rows[0]) : null;
  };

  const api: ArtifactRepository = {
    async create(input) {
      const data = parseInput(ArtifactCreate, input, "artifact");
      const id = data.id ?? randomUUID();
      const fields = {
        key: data.key ?? null,
        type: data.type ?? null,
        description: data.description ?? null,
        data: data.data ?? null,
        metadata_: data.metadata_ ?? null,
        flow_run_id: data.flow_run_id ?? null,
        task_run_id: data.task_run_id ?? null,
      };
      const key = fields.key;
      if (key === null) {
        const ts = now();
        const row = { id, created: ts, updated: ts, ...fields };
        await q.execute(insertSql(A, row));
        return row as Artifact;
      }
      return q.transaction(async (tx) => {
        // Insert the key's collection pointing at this artifact, or take the lock on the existing one:
        // concurrent creates of one key queue here, so each takes its timestamp after the previous one
        // committed and the collection always ends on the newest.
        let ts = now();
        const claimed = await tx.query<{ latest_id: string }>(
          insertSql(
            C,
            { id: randomUUID(), created: ts, updated: ts, key, latest_id: id, ...copied(fields) },
            sql` ON CONFLICT ("key") DO UPDATE SET "key" = excluded."key" RETURNING latest_id`,
          ),
        );
        const inserted = claimed[0]?.latest_id === id;
        if (!inserted) ts = now();
        const row = { id, created: ts, updated: ts, ...fields };
        await tx.execute(insertSql(A, row));
        if (!inserted) {
          await tx.execute(sql`UPDATE artifact_collection SET ${assignments(C, { latest_id: id, ...copied(fields), updated: ts })} WHERE key = ${key}`);
        }
        return row as Artifact;
      });
    },

    async get(id) {
      const rows = await q.query(sql`${select} WHERE a.id = ${checkId(id, "artifact id")}`);
      return rows[0] ? decode(rows[0]) : null;
    },

    async read(options = {}) {
      const sort = parseInput(ArtifactSort, options.sort ?? "ID_DESC", "artifact sort");
      const { limit, offset } = parseInput(PageInput, { limit: options.limit, offset: options.offset }, "page");
      const rows = await q.query(sql`${select}${where(artifactConditions(options))} ORDER BY ${ARTIFACT_SORTS[sort]}${page(d, limit, offset)}`);
      return rows.map(decode);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM artifact a${where(artifactConditions(criteria))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async getLatest(key) {
      const rows = await q.query(sql`${selectCollection} WHERE c.key = ${key}`);
      return rows[0] ? decodeCollection(rows[0]) : null;
    },

    async readLatest(options = {}) {
      const sort = parseInput(ArtifactCollectionSort, options.sort ?? "ID_DESC", "artifact collection sort");
      const { limit, offset } = parseInput(PageInput, { limit: options.limit, offset: options.offset }, "page");
      const rows = await q.query(
        sql`${selectCollection}${where(collectionConditions(options))} ORDER BY ${COLLECTION_SORTS[sort]}${page(d, limit, offset)}`,
      );
      return rows.map(decodeCollection);
    },

    async countLatest(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM artifact_collection c${where(collectionConditions(criteria))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, "artifact id");
      const changes = parseInput(ArtifactUpdate, patch, "artifact update");
      return q.transaction(async (tx) => {
        const current = await tx.query<{ key: string | null }>(sql`SELECT a.key FROM artifact a WHERE a.id = ${id}`);
        if (!current[0]) throw new NotFoundError(`Artifact ${id} not found.`);
        // Collection before artifact, the order every writer of a key takes its locks in.
        const key = current[0].key;
        const collection = key === null ? null : await lockCollection(tx, key);
        const ts = now();
        const rows = await tx.query(sql`UPDATE artifact SET ${assignments(A, { ...changes, updated: ts })} WHERE id = ${id} RETURNING ${selectList(A, "artifact")}`);
        if (!rows[0]) throw new NotFoundError(`Artifact ${id} not found.`);
        if (collection?.latest_id === id) {
          await tx.execute(sql`UPDATE artifact_collection SET ${assignments(C, { ...changes, updated: ts })} WHERE id = ${collection.id}`);
        }
        return decode(rows[0]);
      });
    },

    async delete(id) {
      id = checkId(id, "artifact id");
      await q.transaction(async (tx) => {
        const current = await tx.query<{ key: string | null }>(sql`SELECT a.key FROM artifact a WHERE a.id = ${id}`);
        if (!current[0]) throw new NotFoundError(`Artifact ${id} not found.`);
        const key = current[0].key;
        const collection = key === null ? null : await lockCollection(tx, key);
        if (collection && collection.latest_id === id) {
          const next = await tx.query(
            sql`${select} WHERE a.key = ${collection.key} AND a.id <> ${id} ORDER BY ${orderBy([[`a."created"`, "DESC"], [`a."id"`, "DESC"]])} LIMIT 1`,
          );
          if (next[0]) {
            const newest = decode(next[0]);
            await tx.execute(
              sql`UPDATE artifact_collection SET ${assignments(C, { latest_id: newest.id, ...copied(newest), updated: now() })} WHERE id = ${collection.id}`,
            );
          } else {
            await tx.execute(sql`DELETE FROM artifact_collection WHERE id = ${collection.id}`);
          }
        }
        if ((await tx.execute(sql`DELETE FROM artifact WHERE id = ${id}`)) === 0) throw new NotFoundError(`Artifact ${id} not found.`);
      });
    },
  };
  return api;
}

