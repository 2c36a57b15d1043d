-- Deployments and their schedules and versions, work pools, queues and workers, concurrency limits,
-- variables, artifacts, saved searches, flow run inputs, CSRF tokens and automations. Foreign keys from
-- flow runs to work queues and from run states to their result artifacts.

-- CreateTable
CREATE TABLE "deployment" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "version" TEXT,
    "description" TEXT,
    "work_queue_name" TEXT,
    "infra_overrides" JSONB NOT NULL DEFAULT '{}',
    "path" TEXT,
    "entrypoint" TEXT,
    "last_polled" DATETIME,
    "status" TEXT NOT NULL DEFAULT 'NOT_READY',
    "flow_id" TEXT NOT NULL,
    "work_queue_id" TEXT,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "concurrency_limit" INTEGER,
    "concurrency_limit_id" TEXT,
    "concurrency_options" JSONB,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "pull_steps" JSONB,
    "parameter_openapi_schema" JSONB,
    "enforce_parameter_schema" BOOLEAN NOT NULL DEFAULT false,
    "created_by" JSONB,
    "updated_by" JSONB,
    "infrastructure_document_id" TEXT,
    "storage_document_id" TEXT,
    "version_id" TEXT,
    CONSTRAINT "fk_deployment__flow_id__flow" FOREIGN KEY ("flow_id") REFERENCES "flow" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_deployment__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "fk_deployment__concurrency_limit_id__concurrency_limit_v2" FOREIGN KEY ("concurrency_limit_id") REFERENCES "concurrency_limit_v2" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "fk_deployment__infrastructure_document_id__block_document" FOREIGN KEY ("infrastructure_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_deployment__storage_document_id__block_document" FOREIGN KEY ("storage_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "deployment_schedule" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "deployment_id" TEXT NOT NULL,
    "schedule" JSONB NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "max_scheduled_runs" INTEGER,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "slug" TEXT,
    CONSTRAINT "fk_deployment_schedule__deployment_id__deployment" FOREIGN KEY ("deployment_id") REFERENCES "deployment" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "deployment_version" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "deployment_id" TEXT NOT NULL,
    "branch" TEXT,
    "version_info" JSONB NOT NULL DEFAULT '{}',
    "description" TEXT,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB,
    "entrypoint" TEXT,
    "pull_steps" JSONB,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "parameter_openapi_schema" JSONB,
    "enforce_parameter_schema" BOOLEAN NOT NULL DEFAULT false,
    "work_queue_id" TEXT,
    "work_queue_name" TEXT,
    "infra_overrides" JSONB NOT NULL DEFAULT '{}',
    CONSTRAINT "fk_deployment_version__deployment_id__deployment" FOREIGN KEY ("deployment_id") REFERENCES "deployment" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_deployment_version__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "work_pool" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "description" TEXT,
    "type" TEXT NOT NULL,
    "base_job_template" JSONB NOT NULL DEFAULT '{}',
    "is_paused" BOOLEAN NOT NULL DEFAULT false,
    "default_queue_id" TEXT,
    "concurrency_limit" INTEGER,
    "status" TEXT NOT NULL DEFAULT 'NOT_READY',
    "last_transitioned_status_at" DATETIME,
    "last_status_event_id" TEXT,
    "storage_configuration" JSONB NOT NULL DEFAULT '{}',
    CONSTRAINT "fk_work_pool__default_queue_id__work_queue" FOREIGN KEY ("default_queue_id") REFERENCES "work_queue" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "work_queue" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "filter" JSONB,
    "description" TEXT NOT NULL DEFAULT '',
    "is_paused" BOOLEAN NOT NULL DEFAULT false,
    "concurrency_limit" INTEGER,
    "priority" INTEGER NOT NULL,
    "last_polled" DATETIME,
    "status" TEXT NOT NULL DEFAULT 'NOT_READY',
    "work_pool_id" TEXT NOT NULL,
    CONSTRAINT "fk_work_queue__work_pool_id__work_pool" FOREIGN KEY ("work_pool_id") REFERENCES "work_pool" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "worker" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "work_pool_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "last_heartbeat_time" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "heartbeat_interval_seconds" INTEGER,
    "status" TEXT NOT NULL DEFAULT 'OFFLINE',
    CONSTRAINT "fk_worker__work_pool_id__work_pool" FOREIGN KEY ("work_pool_id") REFERENCES "work_pool" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "agent" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "work_queue_id" TEXT NOT NULL,
    "last_activity_time" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT "fk_agent__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue" ("id") ON DELETE NO ACTION ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "concurrency_limit" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "tag" TEXT NOT NULL,
    "concurrency_limit" INTEGER NOT NULL,
    "active_slots" JSONB NOT NULL DEFAULT '[]'
);

-- CreateTable
CREATE TABLE "concurrency_limit_v2" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "active" BOOLEAN NOT NULL DEFAULT true,
    "name" TEXT NOT NULL,
    "limit" INTEGER NOT NULL,
    "active_slots" INTEGER NOT NULL DEFAULT 0,
    "denied_slots" INTEGER NOT NULL DEFAULT 0,
    "slot_decay_per_second" REAL NOT NULL DEFAULT 0,
    "avg_slot_occupancy_seconds" REAL NOT NULL DEFAULT 2
);

-- CreateTable
CREATE TABLE "variable" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "value" JSONB,
    "tags" JSONB NOT NULL DEFAULT '[]'
);

-- CreateTable
CREATE TABLE "artifact" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "key" TEXT,
    "task_run_id" TEXT,
    "flow_run_id" TEXT,
    "type" TEXT,
    "data" JSONB,
    "description" TEXT,
    "metadata_" JSONB
);

-- CreateTable
CREATE TABLE "artifact_collection" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "key" TEXT NOT NULL,
    "latest_id" TEXT NOT NULL,
    "task_run_id" TEXT,
    "flow_run_id" TEXT,
    "type" TEXT,
    "data" JSONB,
    "description" TEXT,
    "metadata_" JSONB
);

-- CreateTable
CREATE TABLE "saved_search" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "filters" JSONB NOT NULL DEFAULT '[]'
);

-- CreateTable
CREATE TABLE "flow_run_input" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "flow_run_id" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "sender" TEXT,
    CONSTRAINT "fk_flow_run_input__flow_run_id__flow_run" FOREIGN KEY ("flow_run_id") REFERENCES "flow_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "csrf_token" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "token" TEXT NOT NULL,
    "client" TEXT NOT NULL,
    "expiration" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "automation" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "trigger" JSONB NOT NULL,
    "actions" JSONB NOT NULL,
    "actions_on_trigger" JSONB NOT NULL DEFAULT '[]',
    "actions_on_resolve" JSONB NOT NULL DEFAULT '[]'
);

-- CreateTable
CREATE TABLE "automation_bucket" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "automation_id" TEXT NOT NULL,
    "trigger_id" TEXT NOT NULL,
    "bucketing_key" JSONB NOT NULL DEFAULT '[]',
    "last_event" JSONB,
    "start" DATETIME NOT NULL,
    "end" DATETIME NOT NULL,
    "count" INTEGER NOT NULL,
    "last_operation" TEXT,
    "triggered_at" DATETIME,
    CONSTRAINT "fk_automation_bucket__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "automation_related_resource" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "automation_id" TEXT NOT NULL,
    "resource_id" TEXT,
    "automation_owned_by_resource" BOOLEAN NOT NULL DEFAULT false,
    CONSTRAINT "fk_automation_related_resource__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "composite_trigger_child_firing" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "automation_id" TEXT NOT NULL,
    "parent_trigger_id" TEXT NOT NULL,
    "child_trigger_id" TEXT NOT NULL,
    "child_firing_id" TEXT NOT NULL,
    "child_fired_at" DATETIME,
    "child_firing" JSONB NOT NULL,
    CONSTRAINT "fk_composite_trigger_child_firing__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "automation_event_follower" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "scope" TEXT NOT NULL DEFAULT '',
    "leader_event_id" TEXT NOT NULL,
    "follower_event_id" TEXT NOT NULL,
    "received" DATETIME NOT NULL,
    "follower" JSONB NOT NULL
);

-- RedefineTables: SQLite adds foreign keys by rebuilding a table (the migration runner turns foreign
-- key enforcement off for the copy and checks every key before it commits).
CREATE TABLE "new_flow_run" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "state_type" TEXT,
    "state_name" TEXT,
    "state_timestamp" DATETIME,
    "run_count" INTEGER NOT NULL DEFAULT 0,
    "expected_start_time" DATETIME,
    "next_scheduled_start_time" DATETIME,
    "start_time" DATETIME,
    "end_time" DATETIME,
    "total_run_time" REAL NOT NULL DEFAULT 0,
    "flow_id" TEXT NOT NULL,
    "deployment_id" TEXT,
    "work_queue_name" TEXT,
    "flow_version" TEXT,
    "deployment_version" TEXT,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "idempotency_key" TEXT,
    "context" JSONB NOT NULL DEFAULT '{}',
    "empirical_policy" JSONB NOT NULL DEFAULT '{}',
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB,
    "created_by" JSONB,
    "infrastructure_pid" TEXT,
    "job_variables" JSONB DEFAULT '{}',
    "infrastructure_document_id" TEXT,
    "parent_task_run_id" TEXT,
    "auto_scheduled" BOOLEAN NOT NULL DEFAULT false,
    "state_id" TEXT,
    "work_queue_id" TEXT,
    CONSTRAINT "fk_flow_run__flow_id__flow" FOREIGN KEY ("flow_id") REFERENCES "flow" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_flow_run__state_id__flow_run_state" FOREIGN KEY ("state_id") REFERENCES "flow_run_state" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "fk_flow_run__parent_task_run_id__task_run" FOREIGN KEY ("parent_task_run_id") REFERENCES "task_run" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "fk_flow_run__infrastructure_document_id__block_document" FOREIGN KEY ("infrastructure_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_flow_run__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_flow_run" ("auto_scheduled", "context", "created", "created_by", "deployment_id", "deployment_version", "empirical_policy", "end_time", "expected_start_time", "flow_id", "flow_version", "id", "idempotency_key", "infrastructure_document_id", "infrastructure_pid", "job_variables", "labels", "name", "next_scheduled_start_time", "parameters", "parent_task_run_id", "run_count", "start_time", "state_id", "state_name", "state_timestamp", "state_type", "tags", "total_run_time", "updated", "work_queue_id", "work_queue_name") SELECT "auto_scheduled", "context", "created", "created_by", "deployment_id", "deployment_version", "empirical_policy", "end_time", "expected_start_time", "flow_id", "flow_version", "id", "idempotency_key", "infrastructure_document_id", "infrastructure_pid", "job_variables", "labels", "name", "next_scheduled_start_time", "parameters", "parent_task_run_id", "run_count", "start_time", "state_id", "state_name", "state_timestamp", "state_type", "tags", "total_run_time", "updated", "work_queue_id", "work_queue_name" FROM "flow_run";
DROP TABLE "flow_run";
ALTER TABLE "new_flow_run" RENAME TO "flow_run";
CREATE INDEX "ix_flow_run__flow_id" ON "flow_run"("flow_id");
CREATE INDEX "ix_flow_run__deployment_id" ON "flow_run"("deployment_id");
CREATE INDEX "ix_flow_run__name" ON "flow_run"("name");
CREATE INDEX "ix_flow_run__work_queue_name" ON "flow_run"("work_queue_name");
CREATE INDEX "ix_flow_run__work_queue_id" ON "flow_run"("work_queue_id");
CREATE INDEX "ix_flow_run__flow_version" ON "flow_run"("flow_version");
CREATE INDEX "ix_flow_run__deployment_version" ON "flow_run"("deployment_version");
CREATE INDEX "ix_flow_run__infrastructure_document_id" ON "flow_run"("infrastructure_document_id");
CREATE INDEX "ix_flow_run__parent_task_run_id" ON "flow_run"("parent_task_run_id");
CREATE INDEX "ix_flow_run__state_id" ON "flow_run"("state_id");
CREATE INDEX "ix_flow_run__expected_start_time_desc" ON "flow_run"("expected_start_time" DESC);
CREATE INDEX "ix_flow_run__next_scheduled_start_time_asc" ON "flow_run"("next_scheduled_start_time" ASC);
CREATE INDEX "ix_flow_run__end_time_desc" ON "flow_run"("end_time" DESC);
CREATE INDEX "ix_flow_run__start_time" ON "flow_run"("start_time");
CREATE INDEX "ix_flow_run__state_type" ON "flow_run"("state_type");
CREATE INDEX "ix_flow_run__state_name" ON "flow_run"("state_name");
CREATE INDEX "ix_flow_run__state_timestamp" ON "flow_run"("state_timestamp");
CREATE INDEX "ix_flow_run__updated" ON "flow_run"("updated");
CREATE UNIQUE INDEX "uq_flow_run__flow_id_idempotency_key" ON "flow_run"("flow_id", "idempotency_key");
CREATE TABLE "new_flow_run_state" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "flow_run_id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "timestamp" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "message" TEXT,
    "state_details" JSONB NOT NULL DEFAULT '{}',
    "data" JSONB,
    "result_artifact_id" TEXT,
    CONSTRAINT "fk_flow_run_state__flow_run_id__flow_run" FOREIGN KEY ("flow_run_id") REFERENCES "flow_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_flow_run_state__result_artifact_id__artifact" FOREIGN KEY ("result_artifact_id") REFERENCES "artifact" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_flow_run_state" ("created", "data", "flow_run_id", "id", "message", "name", "result_artifact_id", "state_details", "timestamp", "type", "updated") SELECT "created", "data", "flow_run_id", "id", "message", "name", "result_artifact_id", "state_details", "timestamp", "type", "updated" FROM "flow_run_state";
DROP TABLE "flow_run_state";
ALTER TABLE "new_flow_run_state" RENAME TO "flow_run_state";
CREATE INDEX "ix_flow_run_state__type" ON "flow_run_state"("type");
CREATE INDEX "ix_flow_run_state__name" ON "flow_run_state"("name");
CREATE INDEX "ix_flow_run_state__result_artifact_id" ON "flow_run_state"("result_artifact_id");
CREATE INDEX "ix_flow_run_state__updated" ON "flow_run_state"("updated");
CREATE UNIQUE INDEX "uq_flow_run_state__flow_run_id_timestamp_desc" ON "flow_run_state"("flow_run_id", "timestamp" DESC);
CREATE TABLE "new_task_run_state" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "task_run_id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "timestamp" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "message" TEXT,
    "state_details" JSONB NOT NULL DEFAULT '{}',
    "data" JSONB,
    "result_artifact_id" TEXT,
    CONSTRAINT "fk_task_run_state__task_run_id__task_run" FOREIGN KEY ("task_run_id") REFERENCES "task_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_task_run_state__result_artifact_id__artifact" FOREIGN KEY ("result_artifact_id") REFERENCES "artifact" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_task_run_state" ("created", "data", "id", "message", "name", "result_artifact_id", "state_details", "task_run_id", "timestamp", "type", "updated") SELECT "created", "data", "id", "message", "name", "result_artifact_id", "state_details", "task_run_id", "timestamp", "type", "updated" FROM "task_run_state";
DROP TABLE "task_run_state";
ALTER TABLE "new_task_run_state" RENAME TO "task_run_state";
CREATE INDEX "ix_task_run_state__type" ON "task_run_state"("type");
CREATE INDEX "ix_task_run_state__name" ON "task_run_state"("name");
CREATE INDEX "ix_task_run_state__result_artifact_id" ON "task_run_state"("result_artifact_id");
CREATE INDEX "ix_task_run_state__updated" ON "task_run_state"("updated");
CREATE UNIQUE INDEX "uq_task_run_state__task_run_id_timestamp_desc" ON "task_run_state"("task_run_id", "timestamp" DESC);

-- CreateIndex
CREATE INDEX "ix_deployment__created" ON "deployment"("created");

-- CreateIndex
CREATE INDEX "ix_deployment__updated" ON "deployment"("updated");

-- CreateIndex
CREATE INDEX "ix_deployment__flow_id" ON "deployment"("flow_id");

-- CreateIndex
CREATE INDEX "ix_deployment__work_queue_name" ON "deployment"("work_queue_name");

-- CreateIndex
CREATE INDEX "ix_deployment__work_queue_id" ON "deployment"("work_queue_id");

-- CreateIndex
CREATE INDEX "ix_deployment__paused" ON "deployment"("paused");

-- CreateIndex
CREATE INDEX "ix_deployment__version_id" ON "deployment"("version_id");

-- CreateIndex
CREATE UNIQUE INDEX "uq_deployment__flow_id_name" ON "deployment"("flow_id", "name");

-- CreateIndex
CREATE INDEX "ix_deployment_schedule__deployment_id" ON "deployment_schedule"("deployment_id");

-- CreateIndex
CREATE INDEX "ix_deployment_schedule__slug" ON "deployment_schedule"("slug");

-- CreateIndex
CREATE INDEX "ix_deployment_schedule__updated" ON "deployment_schedule"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "ix_deployment_schedule__deployment_id__slug" ON "deployment_schedule"("deployment_id", "slug");

-- CreateIndex
CREATE INDEX "ix_deployment_version__deployment_id" ON "deployment_version"("deployment_id");

-- CreateIndex
CREATE INDEX "ix_deployment_version__work_queue_id" ON "deployment_version"("work_queue_id");

-- CreateIndex
CREATE INDEX "ix_deployment_version__work_queue_name" ON "deployment_version"("work_queue_name");

-- CreateIndex
CREATE INDEX "ix_deployment_version__updated" ON "deployment_version"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_deployment_version__deployment__branch" ON "deployment_version"("deployment_id", "branch");

-- CreateIndex
CREATE INDEX "ix_work_pool__type" ON "work_pool"("type");

-- CreateIndex
CREATE INDEX "ix_work_pool__updated" ON "work_pool"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_work_pool__name" ON "work_pool"("name");

-- CreateIndex
CREATE INDEX "ix_work_queue__work_pool_id" ON "work_queue"("work_pool_id");

-- CreateIndex
CREATE INDEX "ix_work_queue__work_pool_id_priority" ON "work_queue"("work_pool_id", "priority");

-- CreateIndex
CREATE INDEX "ix_work_queue__updated" ON "work_queue"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_work_queue__work_pool_id_name" ON "work_queue"("work_pool_id", "name");

-- CreateIndex
CREATE INDEX "ix_worker__work_pool_id" ON "worker"("work_pool_id");

-- CreateIndex
CREATE INDEX "ix_worker__work_pool_id_last_heartbeat_time" ON "worker"("work_pool_id", "last_heartbeat_time");

-- CreateIndex
CREATE INDEX "ix_worker__updated" ON "worker"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_worker__work_pool_id_name" ON "worker"("work_pool_id", "name");

-- CreateIndex
CREATE INDEX "ix_agent__work_queue_id" ON "agent"("work_queue_id");

-- CreateIndex
CREATE INDEX "ix_agent__updated" ON "agent"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_agent__name" ON "agent"("name");

-- CreateIndex
CREATE INDEX "ix_concurrency_limit__updated" ON "concurrency_limit"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_concurrency_limit__tag" ON "concurrency_limit"("tag");

-- CreateIndex
CREATE INDEX "ix_concurrency_limit_v2__updated" ON "concurrency_limit_v2"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_concurrency_limit_v2__name" ON "concurrency_limit_v2"("name");

-- CreateIndex
CREATE INDEX "ix_variable__updated" ON "variable"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_variable__name" ON "variable"("name");

-- CreateIndex
CREATE INDEX "ix_artifact__key" ON "artifact"("key");

-- CreateIndex
CREATE INDEX "ix_artifact__key_created_desc" ON "artifact"("key", "created" DESC);

-- CreateIndex
CREATE INDEX "ix_artifact__task_run_id" ON "artifact"("task_run_id");

-- CreateIndex
CREATE INDEX "ix_artifact__flow_run_id" ON "artifact"("flow_run_id");

-- CreateIndex
CREATE INDEX "ix_artifact__updated" ON "artifact"("updated");

-- CreateIndex
CREATE INDEX "ix_artifact_collection__key_latest_id" ON "artifact_collection"("key", "latest_id");

-- CreateIndex
CREATE INDEX "ix_artifact_collection__updated" ON "artifact_collection"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_artifact_collection__key" ON "artifact_collection"("key");

-- CreateIndex
CREATE INDEX "ix_saved_search__updated" ON "saved_search"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_saved_search__name" ON "saved_search"("name");

-- CreateIndex
CREATE INDEX "ix_flow_run_input__updated" ON "flow_run_input"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_flow_run_input__flow_run_id_key" ON "flow_run_input"("flow_run_id", "key");

-- CreateIndex
CREATE INDEX "ix_csrf_token__updated" ON "csrf_token"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_csrf_token__client" ON "csrf_token"("client");

-- CreateIndex
CREATE INDEX "ix_automation__updated" ON "automation"("updated");

-- CreateIndex
CREATE INDEX "ix_automation_bucket__automation_id__end" ON "automation_bucket"("automation_id", "end");

-- CreateIndex
CREATE INDEX "ix_automation_bucket__updated" ON "automation_bucket"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_automation_bucket__automation_id__trigger_id__bucketing_key" ON "automation_bucket"("automation_id", "trigger_id", "bucketing_key");

-- CreateIndex
CREATE INDEX "ix_automation_related_resource__resource_id" ON "automation_related_resource"("resource_id");

-- CreateIndex
CREATE INDEX "ix_automation_related_resource__updated" ON "automation_related_resource"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_automation_related_resource__automation_id__resource_id" ON "automation_related_resource"("automation_id", "resource_id");

-- CreateIndex
CREATE INDEX "ix_composite_trigger_child_firing__updated" ON "composite_trigger_child_firing"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_composite_trigger_child_firing__a_id__pt_id__ct__id" ON "composite_trigger_child_firing"("automation_id", "parent_trigger_id", "child_trigger_id");

-- CreateIndex
CREATE INDEX "ix_automation_event_follower__scope" ON "automation_event_follower"("scope");

-- CreateIndex
CREATE INDEX "ix_automation_event_follower__leader_event_id" ON "automation_event_follower"("leader_event_id");

-- CreateIndex
CREATE INDEX "ix_automation_event_follower__received" ON "automation_event_follower"("received");

-- CreateIndex
CREATE INDEX "ix_ae_follower_scope_leader" ON "automation_event_follower"("scope", "leader_event_id");

-- CreateIndex
CREATE INDEX "ix_automation_event_follower__updated" ON "automation_event_follower"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_follower_for_scope" ON "automation_event_follower"("scope", "follower_event_id");

-- Rebuilding flow_run dropped the indexes the Prisma schema cannot express: create them again.
CREATE INDEX "ix_flow_run__coalesce_start_time_expected_start_time_desc" ON "flow_run"(COALESCE("start_time", "expected_start_time") DESC);
CREATE INDEX "ix_flow_run__coalesce_start_time_expected_start_time_asc" ON "flow_run"(COALESCE("start_time", "expected_start_time") ASC);
CREATE INDEX "ix_flow_run__scheduler_deployment_id_auto_scheduled_next_schedu" ON "flow_run"("deployment_id", "auto_scheduled", "next_scheduled_start_time") WHERE "state_type" = 'SCHEDULED';
