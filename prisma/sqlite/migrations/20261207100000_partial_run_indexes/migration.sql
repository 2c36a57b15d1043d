-- Indexes of `flow_run` on columns that most runs leave NULL hold only the runs that have a value. A NULL
-- entry still cost every insert of a run a write to that index (all NULLs sort together, so every new
-- run dirtied the same page of each such index, and SQLite writes each dirty page at COMMIT). Every
-- query that reads these indexes compares the column with a value (`=`, `IN`, a range), which implies
-- IS NOT NULL, so each one still serves it. No sort reads them (the sorts on `end_time`,
-- `next_scheduled_start_time` and the start-time expression keep their full indexes).

-- DropIndex
DROP INDEX "ix_flow_run__deployment_id";

-- CreateIndex
CREATE INDEX "ix_flow_run__deployment_id" ON "flow_run"("deployment_id") WHERE deployment_id IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__work_queue_name";

-- CreateIndex
CREATE INDEX "ix_flow_run__work_queue_name" ON "flow_run"("work_queue_name") WHERE work_queue_name IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__work_queue_id";

-- CreateIndex
CREATE INDEX "ix_flow_run__work_queue_id" ON "flow_run"("work_queue_id") WHERE work_queue_id IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__flow_version";

-- CreateIndex
CREATE INDEX "ix_flow_run__flow_version" ON "flow_run"("flow_version") WHERE flow_version IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__deployment_version";

-- CreateIndex
CREATE INDEX "ix_flow_run__deployment_version" ON "flow_run"("deployment_version") WHERE deployment_version IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__infrastructure_document_id";

-- CreateIndex
CREATE INDEX "ix_flow_run__infrastructure_document_id" ON "flow_run"("infrastructure_document_id") WHERE infrastructure_document_id IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__parent_task_run_id";

-- CreateIndex
CREATE INDEX "ix_flow_run__parent_task_run_id" ON "flow_run"("parent_task_run_id") WHERE parent_task_run_id IS NOT NULL;

-- DropIndex
DROP INDEX "ix_flow_run__start_time";

-- CreateIndex
CREATE INDEX "ix_flow_run__start_time" ON "flow_run"("start_time") WHERE start_time IS NOT NULL;
