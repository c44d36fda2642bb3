-- Recovering an endpoint's failed and cancelled deliveries of a time
-- window reads them in batches in the order of their events' creation.
CREATE INDEX deliveries_by_endpoint_state_created ON deliveries (endpoint_id, state, created_at, id);
