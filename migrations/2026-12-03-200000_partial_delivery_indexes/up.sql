-- Every delivery leaves the index it is not looked up by: a waiting
-- (pending or held) delivery is paged and moved by endpoint and due time,
-- a finished one swept by state and age. A row entering or leaving a state
-- then touches one of the two indexes instead of both. The conditions are
-- written as the queries write theirs (one `state = '…'` term each, the
-- state inlined), which both planners need to use a partial index.
DROP INDEX deliveries_by_endpoint_state_due;
CREATE INDEX deliveries_waiting_by_endpoint_due ON deliveries (endpoint_id, state, next_attempt_at, id)
    WHERE state = 'pending' OR state = 'held';
DROP INDEX deliveries_by_state_age;
CREATE INDEX deliveries_finished_by_state_age ON deliveries (state, updated_at)
    WHERE state = 'succeeded' OR state = 'failed' OR state = 'cancelled';

-- Where an endpoint's backlog move under way has got to, in (created_at,
-- id) order: each batch starts after the last one instead of stepping again
-- over the index entries the earlier batches left dead. A table of its own:
-- diesel's endpoints table is at its 32 columns.
CREATE TABLE backlog_move_cursors (
    endpoint_id TEXT PRIMARY KEY NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    after_created_at BIGINT NOT NULL,
    after_id TEXT NOT NULL
);
