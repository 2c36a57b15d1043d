/**
 * The SQL behind workers' scheduled runs, shared by both backends, and what each backend implements
 * on its own (backends/sqlite/claims.ts, backends/postgres/claims.ts): claiming or locking runs
 * atomically.
 *
 * The selection follows Prefect's get-runs-from-worker-queues query: SCHEDULED runs (not awaiting an
 * in-process retry) in pools and queues that are not paused, at most as many per queue and per pool as
 * their concurrency limits leave free (limit minus PENDING and RUNNING runs; no limit = no cap),
 * ordered by queue priority and then by when they are due. Runs of paused deployments are left
 * out, and a deployment's concurrency limit caps its runs the same way.
 *
 * Where Prefect's two templates differ: a pool's runs in use are those of all its queues, paused
 * ones included (its SQLite template and its slot counts), and runs are ordered by queue priority
 * across pools (its PostgreSQL template). Deployment slots are handed out first (in claim order),
 * then queue slots, then pool slots, so a run one limit holds back never takes another's slot.
 */
import type { Dialect } from "./dialect.js";
import type { Queryable } from "./driver/types.js";
import { type Sql, sql } from "./sql.js";
import type { Timestamp } from "./timestamps.js";

export interface RunSelection {
  readonly workPoolNames: readonly string[] | null;
  readonly workQueueNames: readonly string[] | null;
  readonly scheduledBefore: Timestamp | null;
  readonly scheduledAfter: Timestamp | null;
  readonly limit: number | null;
}

/**
 * The pools, queues and deployments with concurrency limits whose rows a claimer holds locked. Runs
 * under a limit whose row is not among them are left for a later claim (PostgreSQL only: there the
 * locks are what keeps two claimers from both taking the same free slot).
 */
export interface HeldLimits {
  readonly pools: readonly string[];
  readonly queues: readonly string[];
  readonly deployments: readonly string[];
}

/** The state row every claimed run gets (its id, run and timestamp are set per run). */
export interface ClaimStateRow {
  readonly type: string;
  readonly name: string;
  readonly message: string | null;
  readonly state_details: Record<string, unknown>;
  readonly data: unknown;
}

/** A run a claim took, and the pool of its queue. */
export interface ClaimedRun {
  readonly id: string;
  readonly work_pool_id: string;
}

export interface RunClaims {
  /**
   * Inside the caller's transaction: selects runs as `eligibleRunsSql` does and moves each to `state`
   * (a new state row, and the run's pointer). Concurrent claims never take the same run or exceed a
   * limit together. Returns the claimed runs in claim order.
   */
  claim(tx: Queryable, selection: RunSelection, state: ClaimStateRow, now: Timestamp): Promise<ClaimedRun[]>;
  /**
   * Inside the caller's transaction: selects runs as `eligibleRunsSql` does and holds them until the
   * transaction ends, writing nothing, so that the caller can move them on itself (through
   * orchestration). Concurrent lockers never get the same run, and never more runs under a limit
   * than it has free slots, as long as each moves what it locked out of SCHEDULED before it commits.
   * Returns the locked runs in claim order.
   */
  lock(tx: Queryable, selection: RunSelection): Promise<ClaimedRun[]>;
  /**
   * The SQL `claim` and `lock` send, in order, when `held` are the limit rows a claimer holds, for
   * review (test/sql keeps them as snapshots).
   */
  readonly statements: {
    claim(selection: RunSelection, held: HeldLimits, state: ClaimStateRow, now: Timestamp): readonly Sql[];
    lock(selection: RunSelection, held: HeldLimits): readonly Sql[];
  };
}

const SLOT_STATES = sql.raw(`('PENDING', 'RUNNING')`);
/**
 * Claim order of rows with `priority`, `next_scheduled_start_time` and `id` (under `alias`): queue
 * priority, then due time; the id breaks ties so that both backends agree.
 */
export function claimOrder(alias = ""): Sql {
  const a = alias ? `${alias}.` : "";
  return sql.raw(`${a}priority ASC, ${a}next_scheduled_start_time ASC NULLS LAST, ${a}id ASC`);
}

/** Conditions on the pool (`wp`) and queue (`wq`) names a selection asks for. */
export function poolAndQueueNames(d: Dialect, s: RunSelection): Sql {
  return sql.and([
    s.workPoolNames ? d.inList(sql.raw("wp.name"), s.workPoolNames) : sql.empty,
    s.workQueueNames ? d.inList(sql.raw("wq.name"), s.workQueueNames) : sql.empty,
  ]);
}

/**
 * The limit rows (pools, queues, deployments with a concurrency limit) a selection's runs may be
 * under: its pools and queues that are not paused, and the deployments with runs due in them. `lock`
 * is put after each kind's rows are selected (e.g. PostgreSQL's `FOR NO KEY UPDATE OF <alias>`);
 * rows come in id order, so that lockers queue up instead of deadlocking.
 */
export function limitsInReachSql(d: Dialect, s: RunSelection, lock: (alias: string) => Sql): Sql {
  const names = poolAndQueueNames(d, s);
  return sql`SELECT 'pool' AS kind, id FROM (
  SELECT wp.id FROM work_pool wp
  WHERE wp.concurrency_limit IS NOT NULL AND NOT wp.is_paused
    AND EXISTS (SELECT 1 FROM work_queue wq WHERE wq.work_pool_id = wp.id AND ${names})
  ORDER BY wp.id${lock("wp")}
) pools
UNION ALL
SELECT 'queue', id FROM (
  SELECT wq.id FROM work_queue wq JOIN work_pool wp ON wp.id = wq.work_pool_id
  WHERE wq.concurrency_limit IS NOT NULL AND NOT wq.is_paused AND NOT wp.is_paused AND ${names}
  ORDER BY wq.id${lock("wq")}
) queues
UNION ALL
SELECT 'deployment', id FROM (
  SELECT dep.id FROM deployment dep
  WHERE dep.concurrency_limit IS NOT NULL AND NOT dep.paused AND EXISTS (
    SELECT 1 FROM flow_run fr
    JOIN work_queue wq ON wq.id = fr.work_queue_id JOIN work_pool wp ON wp.id = wq.work_pool_id
    WHERE fr.deployment_id = dep.id AND fr.state_type = 'SCHEDULED' AND ${names}
  )
  ORDER BY dep.id${lock("dep")}
) deployments`;
}

/** A row of `limitsInReachSql`. */
export interface LimitRow {
  readonly kind: "pool" | "queue" | "deployment";
  readonly id: string;
}

/** The limits of `limitsInReachSql`'s rows. */
export function heldLimits(rows: readonly LimitRow[]): HeldLimits {
  return {
    pools: rows.filter((l) => l.kind === "pool").map((l) => l.id),
    queues: rows.filter((l) => l.kind === "queue").map((l) => l.id),
    deployments: rows.filter((l) => l.kind === "deployment").map((l) => l.id),
  };
}

const holdsNone = (held: HeldLimits): boolean => held.pools.length === 0 && held.queues.length === 0 && held.deployments.length === 0;

/**
 * `WITH ...` ending in a CTE `eligible (id, work_pool_id, work_queue_id, priority,
 * next_scheduled_start_time)`: every run the selection may hand out, before the overall `limit`.
 * With `held`, runs under a limit whose row is not held are left out; when no limit is held at all,
 * the runs under none are eligible as they are, without counting slots or ranking runs (three sorts
 * of every due run, which cost a claim of 10 among 300 due runs on SQLite about 1.6 ms of its 2).
 */
export function eligibleRunsSql(d: Dialect, s: RunSelection, held?: HeldLimits): Sql {
  const retryType = d.jsonText(sql.raw("fr.empirical_policy"), "retry_type");
  const candidates = sql`candidates AS (
  SELECT fr.id, fr.deployment_id, fr.next_scheduled_start_time, wq.id AS work_queue_id, wq.work_pool_id, wq.priority,
    wp.concurrency_limit AS pool_limit, wq.concurrency_limit AS queue_limit, d.concurrency_limit AS deployment_limit
  FROM flow_run fr
  JOIN work_queue wq ON wq.id = fr.work_queue_id
  JOIN work_pool wp ON wp.id = wq.work_pool_id
  LEFT JOIN deployment d ON d.id = fr.deployment_id
  WHERE fr.state_type = 'SCHEDULED'
    AND (${retryType} IS NULL OR ${retryType} <> 'in_process')
    AND NOT wp.is_paused AND NOT wq.is_paused AND (d.id IS NULL OR NOT d.paused)
    AND ${poolAndQueueNames(d, s)}
    ${s.scheduledAfter ? sql`AND fr.next_scheduled_start_time >= ${s.scheduledAfter}` : sql.empty}
    ${s.scheduledBefore ? sql`AND fr.next_scheduled_start_time <= ${s.scheduledBefore}` : sql.empty}
)`;
  if (held && holdsNone(held)) {
    return sql`WITH
${candidates},
eligible AS (
  SELECT id, work_pool_id, work_queue_id, priority, next_scheduled_start_time FROM candidates
  WHERE pool_limit IS NULL AND queue_limit IS NULL AND deployment_limit IS NULL
)
`;
  }
  const guard = held
    ? sql.and([
        sql`(c.pool_limit IS NULL OR ${d.inList(sql.raw("c.work_pool_id"), held.pools)})`,
        sql`(c.queue_limit IS NULL OR ${d.inList(sql.raw("c.work_queue_id"), held.queues)})`,
        sql`(c.deployment_limit IS NULL OR ${d.inList(sql.raw("c.deployment_id"), held.deployments)})`,
      ])
    : sql.raw("1=1");
  return sql`WITH
${candidates},
pool_active AS (
  SELECT aq.work_pool_id AS id, count(*) AS n FROM flow_run a JOIN work_queue aq ON aq.id = a.work_queue_id
  WHERE a.state_type IN ${SLOT_STATES} AND aq.work_pool_id IN (SELECT work_pool_id FROM candidates WHERE pool_limit IS NOT NULL)
  GROUP BY aq.work_pool_id
),
queue_active AS (
  SELECT a.work_queue_id AS id, count(*) AS n FROM flow_run a
  WHERE a.state_type IN ${SLOT_STATES} AND a.work_queue_id IN (SELECT work_queue_id FROM candidates WHERE queue_limit IS NOT NULL)
  GROUP BY a.work_queue_id
),
deployment_active AS (
  SELECT a.deployment_id AS id, count(*) AS n FROM flow_run a
  WHERE a.state_type IN ${SLOT_STATES} AND a.deployment_id IN (SELECT deployment_id FROM candidates WHERE deployment_limit IS NOT NULL)
  GROUP BY a.deployment_id
),
slotted AS (
  SELECT c.id, c.deployment_id, c.next_scheduled_start_time, c.work_queue_id, c.work_pool_id, c.priority,
    c.pool_limit - COALESCE(pa.n, 0) AS pool_free,
    c.queue_limit - COALESCE(qa.n, 0) AS queue_free,
    c.deployment_limit - COALESCE(da.n, 0) AS deployment_free
  FROM candidates c
  LEFT JOIN pool_active pa ON pa.id = c.work_pool_id
  LEFT JOIN queue_active qa ON qa.id = c.work_queue_id
  LEFT JOIN deployment_active da ON da.id = c.deployment_id
  WHERE ${guard}
),
by_deployment AS (
  SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.deployment_id ORDER BY ${claimOrder("s")}) AS deployment_rank FROM slotted s
),
by_queue AS (
  SELECT b.*, ROW_NUMBER() OVER (PARTITION BY b.work_queue_id ORDER BY ${claimOrder("b")}) AS queue_rank
  FROM by_deployment b WHERE b.deployment_free IS NULL OR b.deployment_rank <= b.deployment_free
),
by_pool AS (
  SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.work_pool_id ORDER BY ${claimOrder("q")}) AS pool_rank
  FROM by_queue q WHERE q.queue_free IS NULL OR q.queue_rank <= q.queue_free
),
eligible AS (
  SELECT id, work_pool_id, work_queue_id, priority, next_scheduled_start_time FROM by_pool
  WHERE pool_free IS NULL OR pool_rank <= pool_free
)
`;
}

/** ` LIMIT n`, or nothing for no cap. */
export function limitSql(limit: number | null): Sql {
  return limit === null ? sql.empty : sql` LIMIT ${limit}`;
}
