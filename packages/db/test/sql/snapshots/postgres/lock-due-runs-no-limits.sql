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
eligible AS (
  SELECT id, work_pool_id, work_queue_id, priority, next_scheduled_start_time FROM candidates
  WHERE pool_limit IS NULL AND queue_limit IS NULL AND deployment_limit IS NULL
)

SELECT e.id, e.work_pool_id
FROM (SELECT * FROM eligible ORDER BY priority ASC, next_scheduled_start_time ASC NULLS LAST, id ASC) e
CROSS JOIN LATERAL (
  SELECT 1 AS taken FROM flow_run fr WHERE fr.id = e.id AND fr.state_type = 'SCHEDULED' FOR UPDATE SKIP LOCKED
) l
ORDER BY e.priority ASC, e.next_scheduled_start_time ASC NULLS LAST, e.id ASC LIMIT $6;
