INSERT INTO "flow_run" ("id", "created", "updated", "name", "state_type", "state_name", "state_timestamp", "run_count", "expected_start_time", "next_scheduled_start_time", "start_time", "end_time", "total_run_time", "flow_id", "deployment_id", "work_queue_name", "flow_version", "deployment_version", "parameters", "idempotency_key", "context", "empirical_policy", "tags", "labels", "created_by", "infrastructure_pid", "job_variables", "infrastructure_document_id", "parent_task_run_id", "auto_scheduled", "state_id", "work_queue_id") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("flow_id", "idempotency_key") DO NOTHING RETURNING id;

INSERT INTO "flow_run_state" ("id", "created", "updated", "flow_run_id", "type", "timestamp", "name", "message", "state_details", "data", "result_artifact_id") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)  RETURNING id;

UPDATE "flow_run" SET "state_id" = ? WHERE id = ?;
