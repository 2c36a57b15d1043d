SELECT 'pool' AS kind, id FROM (
  SELECT wp.id FROM work_pool wp
  WHERE wp.concurrency_limit IS NOT NULL AND NOT wp.is_paused
    AND EXISTS (SELECT 1 FROM work_queue wq WHERE wq.work_pool_id = wp.id AND (wp.name = ANY($1)) AND (wq.name = ANY($2)))
  ORDER BY wp.id FOR NO KEY UPDATE OF wp
) pools
UNION ALL
SELECT 'queue', id FROM (
  SELECT wq.id FROM work_queue wq JOIN work_pool wp ON wp.id = wq.work_pool_id
  WHERE wq.concurrency_limit IS NOT NULL AND NOT wq.is_paused AND NOT wp.is_paused AND (wp.name = ANY($3)) AND (wq.name = ANY($4))
  ORDER BY wq.id FOR NO KEY UPDATE OF wq
) queues
UNION ALL
SELECT 'deployment', id FROM (
  SELECT dep.id FROM deployment dep
  WHERE dep.concurrency_limit IS NOT NULL AND NOT dep.paused AND EXISTS (
    SELECT 1 FROM flow_run fr
    JOIN work_queue wq ON wq.id = fr.work_queue_id JOIN work_pool wp ON wp.id = wq.work_pool_id
    WHERE fr.deployment_id = dep.id AND fr.state_type = 'SCHEDULED' AND (wp.name = ANY($5)) AND (wq.name = ANY($6))
  )
  ORDER BY dep.id FOR NO KEY UPDATE OF dep
) deployments;

WITH
candidates AS (
  SELECT fr.id, fr.deployment_id, fr.next_scheduled_start_time, wq.id AS work_queue_id, wq.work_pool_id, wq.priority,
    wp.concurrency_limit AS pool_limit, wq.concurrency_limit AS queue_limit, d.concurrency_limit AS deployment_limit
  FROM flow_run fr
  JOIN work_queue wq ON wq.id = fr.work_queue_id
  JOIN work_pool wp ON wp.id = wq.work_pool_id
  LEFT JOIN deployment d ON d.id = fr.deployment_id
  WHERE fr.state_type = 'SCHEDULED'
    AND ((fr.empirical_policy ->> $1) IS NULL OR (fr.empirical_policy ->> $2) <> 'in_process')
    AND NOT wp.is_paused AND NOT wq.is_paused AND (d.id IS NULL OR NOT d.paused)
    AND (wp.name = ANY($3)) AND (wq.name = ANY($4))
    
    AND fr.next_scheduled_start_time <= $5
),
pool_active AS (
  SELECT aq.work_pool_id AS id, count(*) AS n FROM flow_run a JOIN work_queue aq ON aq.id = a.work_queue_id
  WHERE a.state_type IN ('PENDING', 'RUNNING') AND aq.work_pool_id IN (SELECT work_pool_id FROM candidates WHERE pool_limit IS NOT NULL)
  GROUP BY aq.work_pool_id
),
queue_active AS (
  SELECT a.work_queue_id AS id, count(*) AS n FROM flow_run a
  WHERE a.state_type IN ('PENDING', 'RUNNING') AND a.work_queue_id IN (SELECT work_queue_id FROM candidates WHERE queue_limit IS NOT NULL)
  GROUP BY a.work_queue_id
),
deployment_active AS (
  SELECT a.deployment_id AS id, count(*) AS n FROM flow_run a
  WHERE a.state_type IN ('PENDING', 'RUNNING') AND a.deployment_id IN (SELECT deployment_id FROM candidates WHERE deployment_limit IS NOT NULL)
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
  WHERE ((c.pool_limit IS NULL OR c.work_pool_id = ANY($6))) AND ((c.queue_limit IS NULL OR c.work_queue_id = ANY($7))) AND ((c.deployment_limit IS NULL OR c.deployment_id = ANY($8)))
),
by_deployment AS (
  SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.deployment_id ORDER BY s.priority ASC, s.next_scheduled_start_time ASC NULLS LAST, s.id ASC) AS deployment_rank FROM slotted s
),
by_queue AS (
  SELECT b.*, ROW_NUMBER() OVER (PARTITION BY b.work_queue_id ORDER BY b.priority ASC, b.next_scheduled_start_time ASC NULLS LAST, b.id ASC) AS queue_rank
  FROM by_deployment b WHERE b.deployment_free IS NULL OR b.deployment_rank <= b.deployment_free
),
by_pool AS (
  SELECT q.*, ROW_NUMBER() OVER (PARTITION BY q.work_pool_id ORDER BY q.priority ASC, q.next_scheduled_start_time ASC NULLS LAST, q.id ASC) AS pool_rank
  FROM by_queue q WHERE q.queue_free IS NULL OR q.queue_rank <= q.queue_free
),
eligible AS (
  SELECT id, work_pool_id, work_queue_id, priority, next_scheduled_start_time FROM by_pool
  WHERE pool_free IS NULL OR pool_rank <= pool_free
)
,
picked AS (
  -- Runs in claim order, each locked as it comes (runs other claimers hold are skipped), until the
  -- LIMIT is met: only the runs taken are locked. The lateral lookup keeps the plan that way whatever
  -- the planner thinks of the CTEs' sizes.
  SELECT e.id, e.work_pool_id, e.priority, e.next_scheduled_start_time, l.state_timestamp
  FROM (SELECT * FROM eligible ORDER BY priority ASC, next_scheduled_start_time ASC NULLS LAST, id ASC) e
  CROSS JOIN LATERAL (
    SELECT fr.state_timestamp FROM flow_run fr WHERE fr.id = e.id AND fr.state_type = 'SCHEDULED' FOR UPDATE SKIP LOCKED
  ) l
  ORDER BY e.priority ASC, e.next_scheduled_start_time ASC NULLS LAST, e.id ASC LIMIT $9
),
states AS (
  INSERT INTO flow_run_state ("id", "created", "updated", "flow_run_id", "type", "timestamp", "name", "message", "state_details", "data", "result_artifact_id")
  SELECT gen_random_uuid(), $10::timestamptz, $11::timestamptz, p.id, $12::state_type,
    GREATEST($13::timestamptz, p.state_timestamp + interval '1 microsecond'),
    $14::text, $15::text, $16::jsonb, $17::jsonb, NULL
  FROM picked p
  ON CONFLICT ("flow_run_id", "timestamp") DO NOTHING
  RETURNING *
),
claimed AS (
  UPDATE flow_run run SET "state_id" = s.id, "state_type" = s.type, "state_name" = s.name, "state_timestamp" = s."timestamp", "updated" = $18::timestamptz
  FROM states s WHERE run.id = s.flow_run_id
  RETURNING run.id
)
SELECT p.id, p.work_pool_id FROM claimed c JOIN picked p ON p.id = c.id ORDER BY p.priority ASC, p.next_scheduled_start_time ASC NULLS LAST, p.id ASC;
