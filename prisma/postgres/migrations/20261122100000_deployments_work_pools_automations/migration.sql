-- Deployments and their schedules and versions, work pools, queues and workers, concurrency limits,
-- variables, artifacts, saved searches, flow run inputs, CSRF tokens and automations. Foreign keys from
-- flow runs to work queues and from run states to their result artifacts.

-- CreateEnum
CREATE TYPE "deployment_status" AS ENUM ('READY', 'NOT_READY');

-- CreateEnum
CREATE TYPE "work_queue_status" AS ENUM ('READY', 'NOT_READY', 'PAUSED');

-- CreateEnum
CREATE TYPE "work_pool_status" AS ENUM ('READY', 'NOT_READY', 'PAUSED');

-- CreateEnum
CREATE TYPE "worker_status" AS ENUM ('ONLINE', 'OFFLINE');

-- CreateTable
CREATE TABLE "deployment" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "version" TEXT,
    "description" TEXT,
    "work_queue_name" TEXT,
    "infra_overrides" JSONB NOT NULL DEFAULT '{}',
    "path" TEXT,
    "entrypoint" TEXT,
    "last_polled" TIMESTAMPTZ(6),
    "status" "deployment_status" NOT NULL DEFAULT 'NOT_READY',
    "flow_id" UUID NOT NULL,
    "work_queue_id" UUID,
    "paused" BOOLEAN NOT NULL DEFAULT false,
    "concurrency_limit" INTEGER,
    "concurrency_limit_id" UUID,
    "concurrency_options" JSONB,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "labels" JSONB,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "pull_steps" JSONB,
    "parameter_openapi_schema" JSONB,
    "enforce_parameter_schema" BOOLEAN NOT NULL DEFAULT false,
    "created_by" JSONB,
    "updated_by" JSONB,
    "infrastructure_document_id" UUID,
    "storage_document_id" UUID,
    "version_id" UUID,

    CONSTRAINT "pk_deployment" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "deployment_schedule" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deployment_id" UUID NOT NULL,
    "schedule" JSONB NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "max_scheduled_runs" INTEGER,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    "slug" TEXT,

    CONSTRAINT "pk_deployment_schedule" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "deployment_version" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deployment_id" UUID NOT NULL,
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
    "work_queue_id" UUID,
    "work_queue_name" TEXT,
    "infra_overrides" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "pk_deployment_version" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "work_pool" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "type" TEXT NOT NULL,
    "base_job_template" JSONB NOT NULL DEFAULT '{}',
    "is_paused" BOOLEAN NOT NULL DEFAULT false,
    "default_queue_id" UUID,
    "concurrency_limit" INTEGER,
    "status" "work_pool_status" NOT NULL DEFAULT 'NOT_READY',
    "last_transitioned_status_at" TIMESTAMPTZ(6),
    "last_status_event_id" UUID,
    "storage_configuration" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "pk_work_pool" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "work_queue" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "filter" JSONB,
    "description" TEXT NOT NULL DEFAULT '',
    "is_paused" BOOLEAN NOT NULL DEFAULT false,
    "concurrency_limit" INTEGER,
    "priority" INTEGER NOT NULL,
    "last_polled" TIMESTAMPTZ(6),
    "status" "work_queue_status" NOT NULL DEFAULT 'NOT_READY',
    "work_pool_id" UUID NOT NULL,

    CONSTRAINT "pk_work_queue" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "worker" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "work_pool_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "last_heartbeat_time" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "heartbeat_interval_seconds" INTEGER,
    "status" "worker_status" NOT NULL DEFAULT 'OFFLINE',

    CONSTRAINT "pk_worker" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "agent" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "work_queue_id" UUID NOT NULL,
    "last_activity_time" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pk_agent" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "concurrency_limit" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "tag" TEXT NOT NULL,
    "concurrency_limit" INTEGER NOT NULL,
    "active_slots" JSONB NOT NULL DEFAULT '[]',

    CONSTRAINT "pk_concurrency_limit" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "concurrency_limit_v2" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "name" TEXT NOT NULL,
    "limit" INTEGER NOT NULL,
    "active_slots" INTEGER NOT NULL DEFAULT 0,
    "denied_slots" INTEGER NOT NULL DEFAULT 0,
    "slot_decay_per_second" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "avg_slot_occupancy_seconds" DOUBLE PRECISION NOT NULL DEFAULT 2,

    CONSTRAINT "pk_concurrency_limit_v2" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "variable" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "value" JSONB,
    "tags" JSONB NOT NULL DEFAULT '[]',

    CONSTRAINT "pk_variable" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "artifact" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "key" TEXT,
    "task_run_id" UUID,
    "flow_run_id" UUID,
    "type" TEXT,
    "data" JSON,
    "description" TEXT,
    "metadata_" JSON,

    CONSTRAINT "pk_artifact" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "artifact_collection" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "key" TEXT NOT NULL,
    "latest_id" UUID NOT NULL,
    "task_run_id" UUID,
    "flow_run_id" UUID,
    "type" TEXT,
    "data" JSON,
    "description" TEXT,
    "metadata_" JSON,

    CONSTRAINT "pk_artifact_collection" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "saved_search" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "filters" JSONB NOT NULL DEFAULT '[]',

    CONSTRAINT "pk_saved_search" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "flow_run_input" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "flow_run_id" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "sender" TEXT,

    CONSTRAINT "pk_flow_run_input" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "csrf_token" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "token" TEXT NOT NULL,
    "client" TEXT NOT NULL,
    "expiration" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "pk_csrf_token" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "automation" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "tags" JSONB NOT NULL DEFAULT '[]',
    "trigger" JSONB NOT NULL,
    "actions" JSONB NOT NULL,
    "actions_on_trigger" JSONB NOT NULL DEFAULT '[]',
    "actions_on_resolve" JSONB NOT NULL DEFAULT '[]',

    CONSTRAINT "pk_automation" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "automation_bucket" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "automation_id" UUID NOT NULL,
    "trigger_id" UUID NOT NULL,
    "bucketing_key" JSONB NOT NULL DEFAULT '[]',
    "last_event" JSONB,
    "start" TIMESTAMPTZ(6) NOT NULL,
    "end" TIMESTAMPTZ(6) NOT NULL,
    "count" INTEGER NOT NULL,
    "last_operation" TEXT,
    "triggered_at" TIMESTAMPTZ(6),

    CONSTRAINT "pk_automation_bucket" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "automation_related_resource" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "automation_id" UUID NOT NULL,
    "resource_id" TEXT,
    "automation_owned_by_resource" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "pk_automation_related_resource" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "composite_trigger_child_firing" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "automation_id" UUID NOT NULL,
    "parent_trigger_id" UUID NOT NULL,
    "child_trigger_id" UUID NOT NULL,
    "child_firing_id" UUID NOT NULL,
    "child_fired_at" TIMESTAMPTZ(6),
    "child_firing" JSONB NOT NULL,

    CONSTRAINT "pk_composite_trigger_child_firing" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "automation_event_follower" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "scope" TEXT NOT NULL DEFAULT '',
    "leader_event_id" UUID NOT NULL,
    "follower_event_id" UUID NOT NULL,
    "received" TIMESTAMPTZ(6) NOT NULL,
    "follower" JSONB NOT NULL,

    CONSTRAINT "pk_automation_event_follower" PRIMARY KEY ("id")
);

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
CREATE INDEX "trgm_ix_deployment_name" ON "deployment" USING GIN ("name" gin_trgm_ops);

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
CREATE INDEX "trgm_ix_work_queue_name" ON "work_queue" USING GIN ("name" gin_trgm_ops);

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

-- AddForeignKey
ALTER TABLE "flow_run" ADD CONSTRAINT "fk_flow_run__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "flow_run_state" ADD CONSTRAINT "fk_flow_run_state__result_artifact_id__artifact" FOREIGN KEY ("result_artifact_id") REFERENCES "artifact"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "task_run_state" ADD CONSTRAINT "fk_task_run_state__result_artifact_id__artifact" FOREIGN KEY ("result_artifact_id") REFERENCES "artifact"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment" ADD CONSTRAINT "fk_deployment__flow_id__flow" FOREIGN KEY ("flow_id") REFERENCES "flow"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment" ADD CONSTRAINT "fk_deployment__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment" ADD CONSTRAINT "fk_deployment__concurrency_limit_id__concurrency_limit_v2" FOREIGN KEY ("concurrency_limit_id") REFERENCES "concurrency_limit_v2"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment" ADD CONSTRAINT "fk_deployment__infrastructure_document_id__block_document" FOREIGN KEY ("infrastructure_document_id") REFERENCES "block_document"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment" ADD CONSTRAINT "fk_deployment__storage_document_id__block_document" FOREIGN KEY ("storage_document_id") REFERENCES "block_document"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment_schedule" ADD CONSTRAINT "fk_deployment_schedule__deployment_id__deployment" FOREIGN KEY ("deployment_id") REFERENCES "deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment_version" ADD CONSTRAINT "fk_deployment_version__deployment_id__deployment" FOREIGN KEY ("deployment_id") REFERENCES "deployment"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "deployment_version" ADD CONSTRAINT "fk_deployment_version__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "work_pool" ADD CONSTRAINT "fk_work_pool__default_queue_id__work_queue" FOREIGN KEY ("default_queue_id") REFERENCES "work_queue"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "work_queue" ADD CONSTRAINT "fk_work_queue__work_pool_id__work_pool" FOREIGN KEY ("work_pool_id") REFERENCES "work_pool"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "worker" ADD CONSTRAINT "fk_worker__work_pool_id__work_pool" FOREIGN KEY ("work_pool_id") REFERENCES "work_pool"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "agent" ADD CONSTRAINT "fk_agent__work_queue_id__work_queue" FOREIGN KEY ("work_queue_id") REFERENCES "work_queue"("id") ON DELETE NO ACTION ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "flow_run_input" ADD CONSTRAINT "fk_flow_run_input__flow_run_id__flow_run" FOREIGN KEY ("flow_run_id") REFERENCES "flow_run"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "automation_bucket" ADD CONSTRAINT "fk_automation_bucket__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "automation_related_resource" ADD CONSTRAINT "fk_automation_related_resource__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "composite_trigger_child_firing" ADD CONSTRAINT "fk_composite_trigger_child_firing__automation_id__automation" FOREIGN KEY ("automation_id") REFERENCES "automation"("id") ON DELETE CASCADE ON UPDATE CASCADE;
