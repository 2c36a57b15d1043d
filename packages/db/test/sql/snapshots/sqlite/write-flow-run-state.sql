INSERT INTO "flow_run_state" ("id", "created", "updated", "flow_run_id", "type", "timestamp", "name", "message", "state_details", "data", "result_artifact_id") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("flow_run_id", "timestamp") DO NOTHING RETURNING id;

UPDATE "flow_run" SET "state_id" = ?, "state_type" = ?, "state_name" = ?, "state_timestamp" = ?, "updated" = ?, "run_count" = ?, "start_time" = ? WHERE id = ?;
