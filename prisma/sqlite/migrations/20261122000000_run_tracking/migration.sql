-- Run tracking: flows, flow runs and task runs with their states, logs, events, blocks and configuration.

-- CreateTable
CREATE TABLE "flow" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB
);

-- CreateTable
CREATE TABLE "flow_run" (
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
    CONSTRAINT "fk_flow_run__infrastructure_document_id__block_document" FOREIGN KEY ("infrastructure_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "flow_run_state" (
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
    CONSTRAINT "fk_flow_run_state__flow_run_id__flow_run" FOREIGN KEY ("flow_run_id") REFERENCES "flow_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "task_run" (
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
    "flow_run_id" TEXT,
    "task_key" TEXT NOT NULL,
    "dynamic_key" TEXT NOT NULL,
    "cache_key" TEXT,
    "cache_expiration" DATETIME,
    "task_version" TEXT,
    "flow_run_run_count" INTEGER NOT NULL DEFAULT 0,
    "empirical_policy" JSONB NOT NULL DEFAULT '{}',
    "task_inputs" JSONB NOT NULL DEFAULT '{}',
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB,
    "state_id" TEXT,
    CONSTRAINT "fk_task_run__flow_run_id__flow_run" FOREIGN KEY ("flow_run_id") REFERENCES "flow_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "task_run_state" (
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
    CONSTRAINT "fk_task_run_state__task_run_id__task_run" FOREIGN KEY ("task_run_id") REFERENCES "task_run" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "task_run_state_cache" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "cache_key" TEXT NOT NULL,
    "cache_expiration" DATETIME,
    "task_run_state_id" TEXT NOT NULL
);

-- CreateTable
CREATE TABLE "log" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "level" INTEGER NOT NULL,
    "flow_run_id" TEXT,
    "task_run_id" TEXT,
    "message" TEXT NOT NULL,
    "timestamp" DATETIME NOT NULL
);

-- CreateTable
CREATE TABLE "events" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "occurred" DATETIME NOT NULL,
    "event" TEXT NOT NULL,
    "resource_id" TEXT NOT NULL,
    "resource" JSONB NOT NULL,
    "related_resource_ids" JSONB NOT NULL DEFAULT '[]',
    "related" JSONB NOT NULL DEFAULT '[]',
    "payload" JSONB NOT NULL,
    "received" DATETIME NOT NULL,
    "recorded" DATETIME NOT NULL,
    "follows" TEXT
);

-- CreateTable
CREATE TABLE "event_resources" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "occurred" DATETIME NOT NULL,
    "resource_id" TEXT NOT NULL,
    "resource_role" TEXT NOT NULL,
    "resource" JSONB NOT NULL,
    "event_id" TEXT NOT NULL
);

-- CreateTable
CREATE TABLE "block_type" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "logo_url" TEXT,
    "documentation_url" TEXT,
    "description" TEXT,
    "code_example" TEXT,
    "is_protected" BOOLEAN NOT NULL DEFAULT false
);

-- CreateTable
CREATE TABLE "block_schema" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "checksum" TEXT NOT NULL,
    "fields" JSONB NOT NULL DEFAULT '{}',
    "capabilities" JSONB NOT NULL DEFAULT '[]',
    "version" TEXT NOT NULL DEFAULT 'non-versioned',
    "block_type_id" TEXT NOT NULL,
    CONSTRAINT "fk_block_schema__block_type_id__block_type" FOREIGN KEY ("block_type_id") REFERENCES "block_type" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "block_schema_reference" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "parent_block_schema_id" TEXT NOT NULL,
    "reference_block_schema_id" TEXT NOT NULL,
    CONSTRAINT "fk_block_schema_reference__parent_block_schema_id__block_schema" FOREIGN KEY ("parent_block_schema_id") REFERENCES "block_schema" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_block_schema_reference__reference_block_schema_id__block_schema" FOREIGN KEY ("reference_block_schema_id") REFERENCES "block_schema" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "block_document" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "data" JSONB NOT NULL DEFAULT '{}',
    "is_anonymous" BOOLEAN NOT NULL DEFAULT false,
    "block_type_name" TEXT,
    "block_type_id" TEXT NOT NULL,
    "block_schema_id" TEXT NOT NULL,
    CONSTRAINT "fk_block_document__block_type_id__block_type" FOREIGN KEY ("block_type_id") REFERENCES "block_type" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_block_document__block_schema_id__block_schema" FOREIGN KEY ("block_schema_id") REFERENCES "block_schema" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "block_document_reference" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "parent_block_document_id" TEXT NOT NULL,
    "reference_block_document_id" TEXT NOT NULL,
    CONSTRAINT "ck_block_document_reference__no_self_reference" CHECK ("parent_block_document_id" <> "reference_block_document_id"),
    CONSTRAINT "fk_block_document_reference__parent_block_document_id__block_document" FOREIGN KEY ("parent_block_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "fk_block_document_reference__reference_block_document_id__block_document" FOREIGN KEY ("reference_block_document_id") REFERENCES "block_document" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "configuration" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "key" TEXT NOT NULL,
    "value" JSONB NOT NULL
);

-- CreateIndex
CREATE INDEX "ix_flow__created" ON "flow"("created");

-- CreateIndex
CREATE INDEX "ix_flow__updated" ON "flow"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_flow__name" ON "flow"("name");

-- CreateIndex
CREATE INDEX "ix_flow_run__flow_id" ON "flow_run"("flow_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__deployment_id" ON "flow_run"("deployment_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__name" ON "flow_run"("name");

-- CreateIndex
CREATE INDEX "ix_flow_run__work_queue_name" ON "flow_run"("work_queue_name");

-- CreateIndex
CREATE INDEX "ix_flow_run__work_queue_id" ON "flow_run"("work_queue_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__flow_version" ON "flow_run"("flow_version");

-- CreateIndex
CREATE INDEX "ix_flow_run__deployment_version" ON "flow_run"("deployment_version");

-- CreateIndex
CREATE INDEX "ix_flow_run__infrastructure_document_id" ON "flow_run"("infrastructure_document_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__parent_task_run_id" ON "flow_run"("parent_task_run_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__state_id" ON "flow_run"("state_id");

-- CreateIndex
CREATE INDEX "ix_flow_run__expected_start_time_desc" ON "flow_run"("expected_start_time" DESC);

-- CreateIndex
CREATE INDEX "ix_flow_run__next_scheduled_start_time_asc" ON "flow_run"("next_scheduled_start_time" ASC);

-- CreateIndex
CREATE INDEX "ix_flow_run__end_time_desc" ON "flow_run"("end_time" DESC);

-- CreateIndex
CREATE INDEX "ix_flow_run__start_time" ON "flow_run"("start_time");

-- CreateIndex
CREATE INDEX "ix_flow_run__state_type" ON "flow_run"("state_type");

-- CreateIndex
CREATE INDEX "ix_flow_run__state_name" ON "flow_run"("state_name");

-- CreateIndex
CREATE INDEX "ix_flow_run__state_timestamp" ON "flow_run"("state_timestamp");

-- CreateIndex
CREATE INDEX "ix_flow_run__updated" ON "flow_run"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_flow_run__flow_id_idempotency_key" ON "flow_run"("flow_id", "idempotency_key");

-- CreateIndex
CREATE INDEX "ix_flow_run_state__type" ON "flow_run_state"("type");

-- CreateIndex
CREATE INDEX "ix_flow_run_state__name" ON "flow_run_state"("name");

-- CreateIndex
CREATE INDEX "ix_flow_run_state__result_artifact_id" ON "flow_run_state"("result_artifact_id");

-- CreateIndex
CREATE INDEX "ix_flow_run_state__updated" ON "flow_run_state"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_flow_run_state__flow_run_id_timestamp_desc" ON "flow_run_state"("flow_run_id", "timestamp" DESC);

-- CreateIndex
CREATE INDEX "ix_task_run__flow_run_id" ON "task_run"("flow_run_id");

-- CreateIndex
CREATE INDEX "ix_task_run__name" ON "task_run"("name");

-- CreateIndex
CREATE INDEX "ix_task_run__state_id" ON "task_run"("state_id");

-- CreateIndex
CREATE INDEX "ix_task_run__expected_start_time_desc" ON "task_run"("expected_start_time" DESC);

-- CreateIndex
CREATE INDEX "ix_task_run__next_scheduled_start_time_asc" ON "task_run"("next_scheduled_start_time" ASC);

-- CreateIndex
CREATE INDEX "ix_task_run__end_time_desc" ON "task_run"("end_time" DESC);

-- CreateIndex
CREATE INDEX "ix_task_run__start_time" ON "task_run"("start_time");

-- CreateIndex
CREATE INDEX "ix_task_run__state_type" ON "task_run"("state_type");

-- CreateIndex
CREATE INDEX "ix_task_run__state_type_start_time" ON "task_run"("state_type", "start_time");

-- CreateIndex
CREATE INDEX "ix_task_run__state_name" ON "task_run"("state_name");

-- CreateIndex
CREATE INDEX "ix_task_run__state_timestamp" ON "task_run"("state_timestamp");

-- CreateIndex
CREATE INDEX "ix_task_run__updated" ON "task_run"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_task_run__flow_run_id_task_key_dynamic_key" ON "task_run"("flow_run_id", "task_key", "dynamic_key");

-- CreateIndex
CREATE INDEX "ix_task_run_state__type" ON "task_run_state"("type");

-- CreateIndex
CREATE INDEX "ix_task_run_state__name" ON "task_run_state"("name");

-- CreateIndex
CREATE INDEX "ix_task_run_state__result_artifact_id" ON "task_run_state"("result_artifact_id");

-- CreateIndex
CREATE INDEX "ix_task_run_state__updated" ON "task_run_state"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_task_run_state__task_run_id_timestamp_desc" ON "task_run_state"("task_run_id", "timestamp" DESC);

-- CreateIndex
CREATE INDEX "ix_task_run_state_cache__cache_key_created_desc" ON "task_run_state_cache"("cache_key", "created" DESC);

-- CreateIndex
CREATE INDEX "ix_task_run_state_cache__updated" ON "task_run_state_cache"("updated");

-- CreateIndex
CREATE INDEX "ix_log__level" ON "log"("level");

-- CreateIndex
CREATE INDEX "ix_log__flow_run_id" ON "log"("flow_run_id");

-- CreateIndex
CREATE INDEX "ix_log__task_run_id" ON "log"("task_run_id");

-- CreateIndex
CREATE INDEX "ix_log__timestamp" ON "log"("timestamp");

-- CreateIndex
CREATE INDEX "ix_log__flow_run_id_timestamp" ON "log"("flow_run_id", "timestamp");

-- CreateIndex
CREATE INDEX "ix_log__updated" ON "log"("updated");

-- CreateIndex
CREATE INDEX "ix_events__occurred" ON "events"("occurred");

-- CreateIndex
CREATE INDEX "ix_events__event__id" ON "events"("event", "id");

-- CreateIndex
CREATE INDEX "ix_events__event_resource_id_occurred" ON "events"("event", "resource_id", "occurred");

-- CreateIndex
CREATE INDEX "ix_events__occurred_id" ON "events"("occurred", "id");

-- CreateIndex
CREATE INDEX "ix_events__event_occurred_id" ON "events"("event", "occurred", "id");

-- CreateIndex
CREATE INDEX "ix_events__event_occurred" ON "events"("event", "occurred");

-- CreateIndex
CREATE INDEX "ix_events__updated" ON "events"("updated");

-- CreateIndex
CREATE INDEX "ix_event_resources__resource_id__occurred" ON "event_resources"("resource_id", "occurred");

-- CreateIndex
CREATE INDEX "ix_event_resources__occurred" ON "event_resources"("occurred");

-- CreateIndex
CREATE INDEX "ix_event_resources__event_id" ON "event_resources"("event_id");

-- CreateIndex
CREATE INDEX "ix_event_resources__updated" ON "event_resources"("updated");

-- CreateIndex
CREATE INDEX "ix_block_type__updated" ON "block_type"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_block_type__slug" ON "block_type"("slug");

-- CreateIndex
CREATE INDEX "ix_block_schema__block_type_id" ON "block_schema"("block_type_id");

-- CreateIndex
CREATE INDEX "ix_block_schema__created" ON "block_schema"("created");

-- CreateIndex
CREATE INDEX "ix_block_schema__updated" ON "block_schema"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_block_schema__checksum_version" ON "block_schema"("checksum", "version");

-- CreateIndex
CREATE INDEX "ix_block_schema_reference__parent_block_schema_id" ON "block_schema_reference"("parent_block_schema_id");

-- CreateIndex
CREATE INDEX "ix_block_schema_reference__reference_block_schema_id" ON "block_schema_reference"("reference_block_schema_id");

-- CreateIndex
CREATE INDEX "ix_block_schema_reference__updated" ON "block_schema_reference"("updated");

-- CreateIndex
CREATE INDEX "ix_block_document__name" ON "block_document"("name");

-- CreateIndex
CREATE INDEX "ix_block_document__is_anonymous" ON "block_document"("is_anonymous");

-- CreateIndex
CREATE INDEX "ix_block_document__block_type_name__name" ON "block_document"("block_type_name", "name");

-- CreateIndex
CREATE INDEX "ix_block_document__block_schema_id" ON "block_document"("block_schema_id");

-- CreateIndex
CREATE INDEX "ix_block_document__updated" ON "block_document"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_block__type_id_name" ON "block_document"("block_type_id", "name");

-- CreateIndex
CREATE INDEX "ix_block_document_reference__parent_block_document_id" ON "block_document_reference"("parent_block_document_id");

-- CreateIndex
CREATE INDEX "ix_block_document_reference__reference_block_document_id" ON "block_document_reference"("reference_block_document_id");

-- CreateIndex
CREATE INDEX "ix_block_document_reference__updated" ON "block_document_reference"("updated");

-- CreateIndex
CREATE INDEX "ix_configuration__key" ON "configuration"("key");

-- CreateIndex
CREATE INDEX "ix_configuration__updated" ON "configuration"("updated");

-- CreateIndex
CREATE UNIQUE INDEX "uq_configuration__key" ON "configuration"("key");

-- Indexes the Prisma schema cannot express (expression and partial indexes), as Prefect has them.
CREATE INDEX "ix_flow_run__coalesce_start_time_expected_start_time_desc" ON "flow_run"(COALESCE("start_time", "expected_start_time") DESC);
CREATE INDEX "ix_flow_run__coalesce_start_time_expected_start_time_asc" ON "flow_run"(COALESCE("start_time", "expected_start_time") ASC);
CREATE INDEX "ix_flow_run__scheduler_deployment_id_auto_scheduled_next_schedu" ON "flow_run"("deployment_id", "auto_scheduled", "next_scheduled_start_time") WHERE "state_type" = 'SCHEDULED';
