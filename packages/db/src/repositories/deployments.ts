import { randomUUID } from "node:crypto";
import type { Dialect } from "../dialect.js";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../errors.js";
import { deploymentFilterSql, flowCriteriaSql, flowRunCriteriaSql, page, where } from "../filters.js";
import { checkId } from "../ids.js";
import type { Created, Page } from "../schemas/common.js";
import {
  type Deployment,
  type DeploymentConcurrencyLimit,
  DeploymentCreate,
  type DeploymentSchedule,
  DeploymentScheduleCreate,
  DeploymentScheduleFilter,
  DeploymentScheduleUpdate,
  DeploymentSort,
  type DeploymentStatusTargets,
  DeploymentUpdate,
  type DeploymentVersion,
  DeploymentVersionCreate,
} from "../schemas/deployments.js";
import type { DeploymentFilter, RunCriteria } from "../schemas/filters.js";
import type { WorkPoolFilter, WorkQueueFilter } from "../schemas/work-pools.js";
import { type Sql, sql } from "../sql.js";
import { assignments, insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";
import { orderBy } from "./run-states.js";
import { workPoolFilterSql, workQueueFilterSql } from "./work-pools/filters.js";

/** Prefect's read_deployments criteria: on the deployment, its flow, its runs and their task runs, its work pool and queue. */
export interface DeploymentCriteria extends Pick<RunCriteria, "flows" | "flow_runs" | "task_runs"> {
  readonly deployments?: DeploymentFilter | null | undefined;
  readonly work_pools?: WorkPoolFilter | null | undefined;
  /** Prefect's `work_pool_queues`. */
  readonly work_pool_queues?: WorkQueueFilter | null | undefined;
}

export interface DeploymentReadOptions extends DeploymentCriteria, Page {
  /** NAME_ASC by default. */
  readonly sort?: DeploymentSort | undefined;
}

export interface FutureRunDeletionOptions {
  /** Only runs created by these schedules (`created_by` of type SCHEDULE). */
  readonly scheduleIds?: readonly string[] | undefined;
  /**
   * Only runs not yet due (next scheduled start after now); true by default. Prefect's pause and
   * schedule deletion remove due runs too (false).
   */
  readonly futureOnly?: boolean | undefined;
}

export interface DeploymentRepository {
  /**
   * Prefect's upsert on (flow_id, name): inserts, or updates the existing deployment with the fields
   * given (keeping the others, `created_by` and concurrency settings not given); either way replaces
   * its schedules and deletes its future auto-scheduled runs. Labels get the flow's labels and
   * `prefect.flow.id`. Unknown flow or referenced rows: InvalidError.
   */
  create(input: DeploymentCreate): Promise<Created<Deployment>>;
  get(id: string): Promise<Deployment | null>;
  /**
   * What orchestration's concurrency rules read of a deployment: its limit (with the limit's row) and
   * collision strategy, in one query without the schedules `get` reads too. Null for an unknown id.
   */
  concurrency(id: string): Promise<DeploymentConcurrency | null>;
  getByName(flowName: string, deploymentName: string): Promise<Deployment | null>;
  read(options?: DeploymentReadOptions): Promise<Deployment[]>;
  count(criteria?: DeploymentCriteria): Promise<number>;
  /** Partial update (schedules, when given, replaced); deletes future auto-scheduled runs. Throws NotFoundError for an unknown id. */
  update(id: string, patch: DeploymentUpdate): Promise<Deployment>;
  /**
   * Deletes the deployment with its schedules, versions, its SCHEDULED runs not yet started (except
   * those awaiting a concurrency slot) and the concurrency limit it points at. Throws NotFoundError.
   */
  delete(id: string): Promise<void>;
  /** Sets `paused`. Throws NotFoundError for an unknown id. */
  pause(id: string): Promise<Deployment>;
  /** Clears `paused`. Throws NotFoundError for an unknown id. */
  resume(id: string): Promise<Deployment>;
  /** Marks the deployments (and those of the queues) READY with `last_polled` now; returns those that were NOT_READY. */
  markReady(targets: DeploymentStatusTargets): Promise<string[]>;
  /** Marks the deployments (and those of the queues) NOT_READY; returns those that were READY. */
  markNotReady(targets: DeploymentStatusTargets): Promise<string[]>;
  /**
   * Deletes the deployment's auto-scheduled runs still SCHEDULED and not yet due, except those awaiting
   * a concurrency slot and reruns (run_count > 0), as Prefect's `_delete_scheduled_runs`; returns how many.
   */
  deleteFutureAutoScheduledRuns(deploymentId: string, options?: FutureRunDeletionOptions): Promise<number>;

  /** Adds schedules; a slug already used by the deployment: AlreadyExistsError. Unknown deployment: NotFoundError. */
  createSchedules(deploymentId: string, schedules: readonly DeploymentScheduleCreate[]): Promise<DeploymentSchedule[]>;
  /** The deployment's schedules, newest first; unknown deployment: NotFoundError. */
  readSchedules(deploymentId: string, filter?: DeploymentScheduleFilter): Promise<DeploymentSchedule[]>;
  /** Partial update of one of the deployment's schedules; NotFoundError when it has no such schedule. */
  updateSchedule(deploymentId: string, scheduleId: string, patch: DeploymentScheduleUpdate): Promise<DeploymentSchedule>;
  /** NotFoundError when the deployment has no such schedule. */
  deleteSchedule(deploymentId: string, scheduleId: string): Promise<void>;
  /** Deletes every schedule of the deployment; returns how many. */
  deleteSchedules(deploymentId: string): Promise<number>;

  /** Adds a version; one per (deployment, branch): AlreadyExistsError. Unknown deployment: NotFoundError. */
  createVersion(deploymentId: string, input: DeploymentVersionCreate): Promise<DeploymentVersion>;
  /** The deployment's versions, newest first. */
  readVersions(deploymentId: string): Promise<DeploymentVersion[]>;
  getVersion(id: string): Promise<DeploymentVersion | null>;
}

const T = tables;

const SORTS: Record<DeploymentSort, readonly (readonly [string, "ASC" | "DESC"])[]> = {
  CREATED_DESC: [[`d."created"`, "DESC"], [`d."id"`, "ASC"]],
  UPDATED_DESC: [[`d."updated"`, "DESC"], [`d."id"`, "ASC"]],
  NAME_ASC: [[`d."name"`, "ASC"], [`d."id"`, "ASC"]],
  NAME_DESC: [[`d."name"`, "DESC"], [`d."id"`, "ASC"]],
};

/** Prefect's name for the limit a deployment's `concurrency_limit` creates. */
const ownLimitName = (deploymentId: string) => `deployment:${deploymentId}`;

const col = (alias: string, column: string) => sql.raw(`${alias}."${column}"`);
const has = <T>(value: T | null | undefined): value is T => value !== null && value !== undefined;
const combine = (operator: "and_" | "or_", parts: Sql[]): Sql => {
  const present = parts.filter((p) => !p.isEmpty);
  if (present.length === 0) return sql.empty;
  return operator === "or_" ? sql.or(present) : sql.and(present);
};


/** Conditions for `deployment` rows (alias `a`), as Prefect's `_apply_deployment_filters` builds them. */
function criteriaSql(d: Dialect, c: DeploymentCriteria, a: string): Sql {
  const conditions: Sql[] = [deploymentFilterSql(d, c.deployments, a)];
  if (has(c.flows)) {
    conditions.push(sql`EXISTS (SELECT 1 FROM flow df WHERE df.id = ${col(a, "flow_id")} AND ${sql.and([flowCriteriaSql(d, { flows: c.flows }, "df")])})`);
  }
  if (has(c.flow_runs) || has(c.task_runs)) {
    const runs = flowRunCriteriaSql(d, { flow_runs: c.flow_runs, task_runs: c.task_runs }, "dfr");
    conditions.push(sql`EXISTS (SELECT 1 FROM flow_run dfr WHERE dfr.deployment_id = ${col(a, "id")} AND ${sql.and([runs])})`);
  }
  if (has(c.work_pools) || has(c.work_pool_queues)) {
    const pool = has(c.work_pools) ? sql` JOIN work_pool dwp ON dwp.id = dwq.work_pool_id` : sql.empty;
    const match = sql.and([workQueueFilterSql(d, c.work_pool_queues, "dwq"), workPoolFilterSql(d, c.work_pools, "dwp")]);
    conditions.push(sql`EXISTS (SELECT 1 FROM work_queue dwq${pool} WHERE dwq.id = ${col(a, "work_queue_id")} AND ${match})`);
  }
  return combine("and_", conditions);
}

/** Rethrows a unique violation as AlreadyExistsError with `message`. */
async function unique<R>(message: string, constraint: string, fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw new AlreadyExistsError(message, constraint, { cause: error });
    throw error;
  }
}

/** A deployment's concurrency settings (see `DeploymentRepository.concurrency`). */
export type DeploymentConcurrency = Pick<Deployment, "id" | "concurrency_limit_id" | "concurrency_options" | "global_concurrency_limit">;

export function deploymentRepository(context: RepositoryContext): DeploymentRepository {
  const { q } = context;
  const d = q.dialect;
  const decodeRow = rowDecoder(d, T.deployment);
  const decodeLimit = rowDecoder<DeploymentConcurrencyLimit>(d, T.concurrency_limit_v2, "cl_");
  const decodeScheduleRow = rowDecoder<DeploymentSchedule>(d, T.deployment_schedule);
  const decodeVersionRow = rowDecoder(d, T.deployment_version);

  const select = sql`SELECT ${selectList(T.deployment, "d")}, wq.name AS wq_name, wp.name AS wp_name, ${selectList(T.concurrency_limit_v2, "cl", "cl_")}
    FROM deployment d
    LEFT JOIN work_queue wq ON wq.id = d.work_queue_id
    LEFT JOIN work_pool wp ON wp.id = wq.work_pool_id
    LEFT JOIN concurrency_limit_v2 cl ON cl.id = d.concurrency_limit_id`;
  const concurrencySelect = sql`SELECT d.id, d.concurrency_limit_id, d.concurrency_options, ${selectList(T.concurrency_limit_v2, "cl", "cl_")}
    FROM deployment d
    LEFT JOIN concurrency_limit_v2 cl ON cl.id = d.concurrency_limit_id`;
  const scheduleSelect = sql`SELECT ${selectList(T.deployment_schedule, "s")} FROM deployment_schedule s`;
  const versionSelect = sql`SELECT ${selectList(T.deployment_version, "v")} FROM deployment_version v`;

  const decodeVersion = (row: Record<string, unknown>): DeploymentVersion => {
    const { infra_overrides, ...rest } = decodeVersionRow(row);
    return { ...rest, job_variables: infra_overrides } as unknown as DeploymentVersion;
  };

  const schedulesOf = async (ids: readonly string[], filter?: DeploymentScheduleFilter): Promise<Map<string, DeploymentSchedule[]>> => {
    const byDeployment = new Map<string, DeploymentSchedule[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return byDeployment;
    const f = filter ? parseInput(DeploymentScheduleFilter, filter, "deployment schedule filter") : null;
    const active = f?.active && has(f.active.eq_) ? sql`s.active = ${f.active.eq_}` : sql.empty;
    const rows = await q.query(
      sql`${scheduleSelect} WHERE ${sql.and([d.inList(sql.raw("s.deployment_id"), ids), active])} ORDER BY s.updated DESC, s.id`,
    );
    for (const row of rows) {
      const schedule = decodeScheduleRow(row);
      byDeployment.get(schedule.deployment_id)?.push(schedule);
    }
    return byDeployment;
  };

  const decodeAll = async (rows: Record<string, unknown>[]): Promise<Deployment[]> => {
    const schedules = await schedulesOf(rows.map((r) => String(r.id)));
    return rows.map((row) => {
      const { infra_overrides, work_queue_name, ...rest } = decodeRow(row);
      return {
        ...rest,
        job_variables: infra_overrides,
        work_queue_name: (row.wq_name as string | null | undefined) ?? work_queue_name,
        work_pool_name: (row.wp_name as string | null | undefined) ?? null,
        global_concurrency_limit: row.cl_id ? decodeLimit(row) : null,
        schedules: schedules.get(String(row.id)) ?? [],
      } as unknown as Deployment;
    });
  };

  const getWhere = async (condition: Sql): Promise<Deployment | null> => {
    const rows = await q.query(sql`${select} WHERE ${condition}`);
    return (await decodeAll(rows))[0] ?? null;
  };

  const exists = async (table: string, id: string) => (await q.query(sql`SELECT 1 AS x FROM ${sql.ident(table)} WHERE id = ${id}`)).length > 0;

  /** Locks the deployment row (PostgreSQL) and returns its concurrency limit id; NotFoundError when missing. */
  const lockDeployment = async (id: string) => {
    const rows = await q.query<{ concurrency_limit_id: string | null }>(
      sql`SELECT d.concurrency_limit_id FROM deployment d WHERE d.id = ${id}${d.forUpdate("d")}`,
    );
    if (!rows[0]) throw new NotFoundError(`Deployment ${id} not found.`);
    return rows[0];
  };

  const requireDeployment = async (id: string) => {
    if (!(await exists("deployment", id))) throw new NotFoundError(`Deployment ${id} not found.`);
  };

  /** Refuses references to rows that do not exist, naming the field. */
  const checkReferences = async (data: {
    concurrency_limit_id?: string | null | undefined;
    work_queue_id?: string | null | undefined;
    storage_document_id?: string | null | undefined;
    infrastructure_document_id?: string | null | undefined;
  }) => {
    const refs: [keyof typeof data, string, string][] = [
      ["concurrency_limit_id", "concurrency_limit_v2", "Concurrency limit"],
      ["work_queue_id", "work_queue", "Work queue"],
      ["storage_document_id", "block_document", "Storage block document"],
      ["infrastructure_document_id", "block_document", "Infrastructure block document"],
    ];
    for (const [field, table, what] of refs) {
      const id = data[field];
      if (id && !(await exists(table, id))) throw new InvalidError(`${what} ${id} not found.`, [{ path: [field], message: `${what} not found` }], { reason: "missing_reference" });
    }
  };

  /**
   * Prefect's `_create_or_update_deployment_concurrency_limit`: the deployment's limit becomes `limit`
   * by changing the limit it points at, creating `deployment:<id>`, or (null) deleting the one it points at.
   */
  const setConcurrencyLimit = async (deploymentId: string, limit: number | null) => {
    const rows = await q.query<{ id: string; limit: number }>(
      sql`SELECT cl.id, cl."limit" FROM deployment d JOIN concurrency_limit_v2 cl ON cl.id = d.concurrency_limit_id WHERE d.id = ${deploymentId}`,
    );
    const current = rows[0];
    if ((current && Number(current.limit) === limit) || (!current && limit === null)) return;
    const ts = now();
    if (limit === null) {
      if (current) await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE id = ${current.id}`);
      await q.execute(sql`UPDATE deployment SET concurrency_limit = ${null}, concurrency_limit_id = ${null}, updated = ${ts} WHERE id = ${deploymentId}`);
    } else if (current) {
      await q.execute(sql`UPDATE concurrency_limit_v2 SET "limit" = ${limit}, updated = ${ts} WHERE id = ${current.id}`);
      await q.execute(sql`UPDATE deployment SET concurrency_limit = ${limit}, updated = ${ts} WHERE id = ${deploymentId}`);
    } else {
      const created = await q.query<{ id: string }>(
        insertSql(
          T.concurrency_limit_v2,
          { id: randomUUID(), created: ts, updated: ts, name: ownLimitName(deploymentId), limit },
          sql` ON CONFLICT ("name") DO UPDATE SET "limit" = excluded."limit", updated = excluded.updated RETURNING id`,
        ),
      );
      await q.execute(sql`UPDATE deployment SET concurrency_limit = ${limit}, concurrency_limit_id = ${created[0]?.id ?? null}, updated = ${ts} WHERE id = ${deploymentId}`);
    }
  };

  const deleteRuns = async (deploymentId: string, options: { autoScheduledOnly: boolean; futureOnly: boolean; scheduleIds?: readonly string[] | undefined }) => {
    const conditions: Sql[] = [
      sql`deployment_id = ${deploymentId}`,
      sql`state_type = 'SCHEDULED'`,
      sql`state_name <> 'AwaitingConcurrencySlot'`,
      sql`run_count = 0`,
    ];
    if (options.autoScheduledOnly) conditions.push(sql`auto_scheduled = ${true}`);
    if (options.futureOnly) conditions.push(sql`next_scheduled_start_time > ${now()}`);
    if (options.scheduleIds) {
      const ids = options.scheduleIds.map((id) => checkId(id, "schedule id"));
      conditions.push(sql`${d.jsonText(sql.raw("created_by"), "type")} = 'SCHEDULE'`, d.inList(d.jsonText(sql.raw("created_by"), "id"), ids));
    }
    return q.execute(sql`DELETE FROM flow_run WHERE ${sql.and(conditions)}`);
  };

  const insertSchedules = async (deploymentId: string, schedules: readonly DeploymentScheduleCreate[]) => {
    const parsed = schedules.map((s, i) => parseInput(DeploymentScheduleCreate, s, `deployment schedule ${i}`));
    const created: DeploymentSchedule[] = [];
    for (const s of parsed) {
      const ts = now();
      const row = {
        id: s.id ?? randomUUID(),
        created: ts,
        updated: ts,
        deployment_id: deploymentId,
        schedule: s.schedule,
        active: s.active,
        max_scheduled_runs: s.max_scheduled_runs ?? null,
        parameters: s.parameters,
        slug: s.slug ?? null,
      };
      await unique(`Schedule slugs must be unique within a deployment (slug ${JSON.stringify(row.slug)}).`, "slug", () =>
        q.execute(insertSql(T.deployment_schedule, row)),
      );
      created.push(row);
    }
    return created;
  };

  const statusChange = async (targets: DeploymentStatusTargets, to: "READY" | "NOT_READY") => {
    const deploymentIds = (targets.deploymentIds ?? []).map((id) => checkId(id, "deployment id"));
    const queueIds = (targets.workQueueIds ?? []).map((id) => checkId(id, "work queue id"));
    if (deploymentIds.length === 0 && queueIds.length === 0) return [];
    return q.transaction(async (tx) => {
      // Rows are locked in id order so that concurrent calls cannot deadlock.
      const rows = await tx.query<{ id: string; status: string }>(
        sql`SELECT d.id, d.status FROM deployment d WHERE ${sql.or([d.inList(sql.raw("d.id"), deploymentIds), d.inList(sql.raw("d.work_queue_id"), queueIds)])} ORDER BY d.id${d.forUpdate("d")}`,
      );
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      // `updated` is left alone, as Prefect does: the scheduler reads it as "the deployment changed".
      const set = to === "READY" ? sql`status = 'READY', last_polled = ${now()}` : sql`status = 'NOT_READY'`;
      await tx.execute(sql`UPDATE deployment SET ${set} WHERE ${d.inList(sql.raw("id"), ids)}`);
      return rows.filter((r) => r.status !== to).map((r) => r.id);
    });
  };

  const withTx = <R>(fn: (repo: DeploymentRepository) => Promise<R>) => q.transaction((tx) => fn(deploymentRepository({ ...context, q: tx })));

  const api: DeploymentRepository = {
    async create(input) {
      const data = parseInput(DeploymentCreate, input, "deployment");
      if (q.inTransaction === false) return withTx((repo) => repo.create(input));
      const flows = await q.query<{ labels: unknown }>(sql`SELECT labels FROM flow WHERE id = ${data.flow_id}`);
      if (!flows[0]) throw new InvalidError(`Flow ${data.flow_id} not found.`, [{ path: ["flow_id"], message: "Flow not found" }], { reason: "missing_reference" });
      await checkReferences(data);
      const flowLabels = (d.decodeJson(flows[0].labels) as Record<string, unknown> | null) ?? {};
      const labels = { ...flowLabels, "prefect.flow.id": data.flow_id, ...(data.labels ?? {}) };

      const ts = now();
      const id = data.id ?? randomUUID();
      const given: Record<string, unknown> = {
        version: data.version,
        description: data.description,
        paused: data.paused,
        concurrency_limit_id: data.concurrency_limit_id,
        concurrency_options: data.concurrency_options,
        parameters: data.parameters,
        parameter_openapi_schema: data.parameter_openapi_schema,
        enforce_parameter_schema: data.enforce_parameter_schema,
        pull_steps: data.pull_steps,
        tags: data.tags,
        labels,
        work_queue_name: data.work_queue_name,
        work_queue_id: data.work_queue_id,
        path: data.path,
        entrypoint: data.entrypoint,
        storage_document_id: data.storage_document_id,
        infrastructure_document_id: data.infrastructure_document_id,
        updated_by: data.updated_by,
        version_id: data.version_id,
        // Prefect applies job variables only when there are some.
        infra_overrides: data.job_variables && Object.keys(data.job_variables).length > 0 ? data.job_variables : undefined,
      };
      const row: Record<string, unknown> = {
        version: null,
        description: null,
        paused: false,
        concurrency_limit_id: null,
        concurrency_options: null,
        parameters: {},
        parameter_openapi_schema: {},
        enforce_parameter_schema: true,
        pull_steps: [],
        tags: [],
        work_queue_name: null,
        work_queue_id: null,
        path: null,
        entrypoint: null,
        storage_document_id: null,
        infrastructure_document_id: null,
        updated_by: null,
        version_id: null,
        infra_overrides: {},
        ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
        id,
        created: ts,
        updated: ts,
        name: data.name,
        flow_id: data.flow_id,
        created_by: data.created_by ?? null,
        concurrency_limit: null,
      };
      const updates = ["updated", ...Object.keys(given).filter((k) => given[k] !== undefined)];
      const upsert = sql` ON CONFLICT (flow_id, name) DO UPDATE SET ${sql.join(updates.map((c) => sql`${sql.ident(c)} = excluded.${sql.ident(c)}`))} RETURNING id, created`;
      const result = await unique(`Deployment ${id} already exists.`, "id", () => q.query<{ id: string; created: unknown }>(insertSql(T.deployment, row, upsert)));
      const deploymentId = String(result[0]?.id);
      const created = result[0] ? d.decodeTimestamp(result[0].created) === ts : false;

      await deleteRuns(deploymentId, { autoScheduledOnly: true, futureOnly: true });
      await q.execute(sql`DELETE FROM deployment_schedule WHERE deployment_id = ${deploymentId}`);
      if (data.schedules && data.schedules.length > 0) await insertSchedules(deploymentId, data.schedules);
      if (data.concurrency_limit !== undefined) await setConcurrencyLimit(deploymentId, data.concurrency_limit);

      const deployment = await getWhere(sql`d.id = ${deploymentId}`);
      if (!deployment) throw new NotFoundError(`Deployment ${data.name} was deleted while it was being created; try again.`);
      return { row: deployment, created };
    },

    get: async (id) => getWhere(sql`d.id = ${checkId(id, "deployment id")}`),

    async concurrency(id) {
      const [row] = await q.query(sql`${concurrencySelect} WHERE d.id = ${checkId(id, "deployment id")}`);
      if (!row) return null;
      // The deployment's decoder reads the columns selected (the others come out null).
      const { concurrency_limit_id, concurrency_options } = decodeRow(row) as Pick<Deployment, "concurrency_limit_id" | "concurrency_options">;
      return { id: row.id as string, concurrency_limit_id, concurrency_options, global_concurrency_limit: row.cl_id ? decodeLimit(row) : null };
    },

    getByName: (flowName, deploymentName) =>
      getWhere(sql`d.name = ${deploymentName} AND d.flow_id = (SELECT f.id FROM flow f WHERE f.name = ${flowName})`),

    async read(options = {}) {
      const sort = options.sort ? parseInput(DeploymentSort, options.sort, "deployment sort") : "NAME_ASC";
      const rows = await q.query(sql`${select}${where(criteriaSql(d, options, "d"))} ORDER BY ${orderBy(SORTS[sort])}${page(d, options.limit, options.offset)}`);
      return decodeAll(rows);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM deployment d${where(criteriaSql(d, criteria, "d"))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, "deployment id");
      const data = parseInput(DeploymentUpdate, patch, "deployment update");
      if (q.inTransaction === false) return withTx((repo) => repo.update(id, patch));
      await lockDeployment(id);
      await checkReferences(data);
      const { schedules, concurrency_limit, job_variables, ...fields } = data;
      const changes = {
        ...fields,
        infra_overrides: job_variables && Object.keys(job_variables).length > 0 ? job_variables : undefined,
        updated: now(),
      };
      await q.execute(sql`UPDATE deployment SET ${assignments(T.deployment, changes)} WHERE id = ${id}`);
      await deleteRuns(id, { autoScheduledOnly: true, futureOnly: true });
      if (schedules !== undefined) {
        await q.execute(sql`DELETE FROM deployment_schedule WHERE deployment_id = ${id}`);
        await insertSchedules(id, schedules);
      }
      if (concurrency_limit !== undefined) await setConcurrencyLimit(id, concurrency_limit);
      const deployment = await getWhere(sql`d.id = ${id}`);
      if (!deployment) throw new NotFoundError(`Deployment ${id} not found.`);
      return deployment;
    },

    async delete(id) {
      id = checkId(id, "deployment id");
      if (q.inTransaction === false) return withTx((repo) => repo.delete(id));
      const { concurrency_limit_id } = await lockDeployment(id);
      await deleteRuns(id, { autoScheduledOnly: false, futureOnly: false });
      if (concurrency_limit_id) await q.execute(sql`DELETE FROM concurrency_limit_v2 WHERE id = ${concurrency_limit_id}`);
      await q.execute(sql`DELETE FROM deployment WHERE id = ${id}`);
    },

    async pause(id) {
      id = checkId(id, "deployment id");
      if ((await q.execute(sql`UPDATE deployment SET paused = ${true}, updated = ${now()} WHERE id = ${id}`)) === 0) throw new NotFoundError(`Deployment ${id} not found.`);
      const deployment = await api.get(id);
      if (!deployment) throw new NotFoundError(`Deployment ${id} not found.`);
      return deployment;
    },

    async resume(id) {
      id = checkId(id, "deployment id");
      if ((await q.execute(sql`UPDATE deployment SET paused = ${false}, updated = ${now()} WHERE id = ${id}`)) === 0) throw new NotFoundError(`Deployment ${id} not found.`);
      const deployment = await api.get(id);
      if (!deployment) throw new NotFoundError(`Deployment ${id} not found.`);
      return deployment;
    },

    markReady: (targets) => statusChange(targets, "READY"),
    markNotReady: (targets) => statusChange(targets, "NOT_READY"),

    async deleteFutureAutoScheduledRuns(deploymentId, options = {}) {
      deploymentId = checkId(deploymentId, "deployment id");
      return deleteRuns(deploymentId, { autoScheduledOnly: true, futureOnly: options.futureOnly ?? true, scheduleIds: options.scheduleIds });
    },

    async createSchedules(deploymentId, schedules) {
      deploymentId = checkId(deploymentId, "deployment id");
      for (const [i, s] of schedules.entries()) parseInput(DeploymentScheduleCreate, s, `deployment schedule ${i}`);
      if (q.inTransaction === false) return withTx((repo) => repo.createSchedules(deploymentId, schedules));
      await lockDeployment(deploymentId);
      return insertSchedules(deploymentId, schedules);
    },

    async readSchedules(deploymentId, filter) {
      deploymentId = checkId(deploymentId, "deployment id");
      await requireDeployment(deploymentId);
      return (await schedulesOf([deploymentId], filter)).get(deploymentId) ?? [];
    },

    async updateSchedule(deploymentId, scheduleId, patch) {
      deploymentId = checkId(deploymentId, "deployment id");
      scheduleId = checkId(scheduleId, "schedule id");
      const { replaces: _replaces, ...data } = parseInput(DeploymentScheduleUpdate, patch, "deployment schedule update");
      const rows = await unique(`Schedule slugs must be unique within a deployment (slug ${JSON.stringify(data.slug)}).`, "slug", () =>
        q.query(
          sql`UPDATE deployment_schedule SET ${assignments(T.deployment_schedule, { ...data, updated: now() })}
              WHERE id = ${scheduleId} AND deployment_id = ${deploymentId} RETURNING ${selectList(T.deployment_schedule, "deployment_schedule")}`,
        ),
      );
      if (!rows[0]) throw new NotFoundError(`Deployment ${deploymentId} has no schedule ${scheduleId}.`);
      return decodeScheduleRow(rows[0]);
    },

    async deleteSchedule(deploymentId, scheduleId) {
      deploymentId = checkId(deploymentId, "deployment id");
      scheduleId = checkId(scheduleId, "schedule id");
      const deleted = await q.execute(sql`DELETE FROM deployment_schedule WHERE id = ${scheduleId} AND deployment_id = ${deploymentId}`);
      if (deleted === 0) throw new NotFoundError(`Deployment ${deploymentId} has no schedule ${scheduleId}.`);
    },

    async deleteSchedules(deploymentId) {
      deploymentId = checkId(deploymentId, "deployment id");
      return q.execute(sql`DELETE FROM deployment_schedule WHERE deployment_id = ${deploymentId}`);
    },

    async createVersion(deploymentId, input) {
      deploymentId = checkId(deploymentId, "deployment id");
      const data = parseInput(DeploymentVersionCreate, input, "deployment version");
      if (q.inTransaction === false) return withTx((repo) => repo.createVersion(deploymentId, input));
      await lockDeployment(deploymentId);
      await checkReferences({ work_queue_id: data.work_queue_id });
      const ts = now();
      const { job_variables, ...fields } = data;
      const row = {
        ...fields,
        id: data.id ?? randomUUID(),
        created: ts,
        updated: ts,
        deployment_id: deploymentId,
        branch: data.branch ?? null,
        description: data.description ?? null,
        labels: data.labels ?? null,
        entrypoint: data.entrypoint ?? null,
        pull_steps: data.pull_steps ?? null,
        parameter_openapi_schema: data.parameter_openapi_schema ?? null,
        work_queue_id: data.work_queue_id ?? null,
        work_queue_name: data.work_queue_name ?? null,
        infra_overrides: job_variables,
      };
      await unique(`Deployment ${deploymentId} already has a version on branch ${JSON.stringify(row.branch)} (or version id ${row.id} is taken).`, "branch", () =>
        q.execute(insertSql(T.deployment_version, row)),
      );
      const { infra_overrides, ...rest } = row;
      return { ...rest, job_variables: infra_overrides } as unknown as DeploymentVersion;
    },

    async readVersions(deploymentId) {
      deploymentId = checkId(deploymentId, "deployment id");
      const rows = await q.query(sql`${versionSelect} WHERE v.deployment_id = ${deploymentId} ORDER BY v.created DESC, v.id`);
      return rows.map(decodeVersion);
    },

    async getVersion(id) {
      const rows = await q.query(sql`${versionSelect} WHERE v.id = ${checkId(id, "deployment version id")}`);
      return rows[0] ? decodeVersion(rows[0]) : null;
    },
  };
  return api;
}
