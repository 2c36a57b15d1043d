-- Index review of the tables every run, state, log and event is written to. Each index below cost every
-- write of its table an entry (on PostgreSQL every update of a run too, since an update that changes an
-- indexed column writes a new entry in all of the table's indexes), and no query of the server uses it:
--  - `updated` of runs, states, logs and events, and `state_timestamp` of runs: no filter or sort reads them;
--  - the `type` and `name` of state rows: a run's states are read by run, never by type or name;
--  - indexes that are a prefix of another index on the same table, which serves their queries as well:
--    `log (flow_run_id)` of `(flow_run_id, timestamp)`, `events (occurred)` of `(occurred, id)`,
--    `events (event, occurred)` of `(event, occurred, id)`;
--  - the ascending copy of the start-time sort's expression index: the descending one is read backwards.

-- DropIndex
DROP INDEX "ix_flow_run__updated";

-- DropIndex
DROP INDEX "ix_flow_run__state_timestamp";

-- DropIndex
DROP INDEX "ix_flow_run_state__type";

-- DropIndex
DROP INDEX "ix_flow_run_state__name";

-- DropIndex
DROP INDEX "ix_flow_run_state__updated";

-- DropIndex
DROP INDEX "ix_task_run__updated";

-- DropIndex
DROP INDEX "ix_task_run__state_timestamp";

-- DropIndex
DROP INDEX "ix_task_run_state__type";

-- DropIndex
DROP INDEX "ix_task_run_state__name";

-- DropIndex
DROP INDEX "ix_task_run_state__updated";

-- DropIndex
DROP INDEX "ix_log__flow_run_id";

-- DropIndex
DROP INDEX "ix_log__updated";

-- DropIndex
DROP INDEX "ix_events__occurred";

-- DropIndex
DROP INDEX "ix_events__event_occurred";

-- DropIndex
DROP INDEX "ix_events__updated";

-- DropIndex
DROP INDEX "ix_event_resources__updated";

-- DropIndex
DROP INDEX "ix_flow_run__coalesce_start_time_expected_start_time_asc";
