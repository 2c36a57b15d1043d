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
eligible AS (
  SELECT id, work_pool_id, work_queue_id, priority, next_scheduled_start_time FROM candidates
  WHERE pool_limit IS NULL AND queue_limit IS NULL AND deployment_limit IS NULL
)
SELECT e.id, e.work_pool_id FROM eligible e ORDER BY e.priority ASC, e.next_scheduled_start_time ASC NULLS LAST, e.id ASC LIMIT ?;
