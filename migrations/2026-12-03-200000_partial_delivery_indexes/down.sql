DROP TABLE backlog_move_cursors;
DROP INDEX deliveries_finished_by_state_age;
CREATE INDEX deliveries_by_state_age ON deliveries (state, updated_at);
DROP INDEX deliveries_waiting_by_endpoint_due;
CREATE INDEX deliveries_by_endpoint_state_due ON deliveries (endpoint_id, state, next_attempt_at, id);
