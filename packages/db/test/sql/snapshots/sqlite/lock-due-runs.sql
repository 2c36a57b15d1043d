SELECT 'pool' AS kind, id FROM (
  SELECT wp.id FROM work_pool wp
  WHERE wp.concurrency_limit IS NOT NULL AND NOT wp.is_paused
    AND EXISTS (SELECT 1 FROM work_queue wq WHERE wq.work_pool_id = wp.id AND (wp.name IN (?)) AND (wq.name IN (?, ?)))
  ORDER BY wp.id
) pools
UNION ALL
SELECT 'queue', id FROM (
  SELECT wq.id FROM work_queue wq JOIN work_pool wp ON wp.id = wq.work_pool_id
  WHERE wq.concurrency_limit IS NOT NULL AND NOT wq.is_paused AND NOT wp.is_paused AND (wp.name IN (?)) AND (wq.name IN (?, ?))
  ORDER BY wq.id
) queues
UNION ALL
SELECT 'deployment', id FROM (
  SELECT dep.id FROM deployment dep
  WHERE dep.concurrency_limit IS NOT NULL AND NOT dep.paused AND EXISTS (
    SELECT 1 FROM flow_run fr
    JOIN work_queue wq ON wq.id = fr.work_queue_id JOIN work_pool wp ON wp.id = wq.work_pool_id
    WHERE fr.deployment_id = dep.id AND fr.state_type = 'SCHEDULED' AND (wp.name IN (?)) AND (wq.name IN (?, ?))
  )
  ORDER BY dep.id
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
    AND (json_extract(fr.empirical_policy, ?) IS NULL OR json_extract(fr.empirical_policy, ?) <> 'in_process')
    AND NOT wp.is_paused AND NOT wq.is_paused AND (d.id IS NULL OR NOT d.paused)
    AND (wp.name IN (?)) AND (wq.name IN (?, ?))
    
    AND fr.next_scheduled_start_time <= ?
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
  WHERE ((c.pool_limit IS NULL OR c.work_pool_id IN (?))) AND ((c.queue_limit IS NULL OR c.work_queue_id IN (?))) AND ((c.deployment_limit IS NULL OR c.deployment_id IN (?)))
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
SELECT e.id, e.work_pool_id FROM eligible e ORDER BY e.priority ASC, e.next_scheduled_start_time ASC NULLS LAST, e.id ASC LIMIT ?;
