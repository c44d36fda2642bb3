DROP INDEX deliveries_by_endpoint_state_due;
CREATE INDEX deliveries_by_endpoint_state ON deliveries (endpoint_id, state, id);
