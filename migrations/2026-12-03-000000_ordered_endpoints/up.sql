-- Endpoints that take their deliveries one at a time in event order. Their
-- actors page pending deliveries by (endpoint_id, state, created_at, id),
-- which deliveries_by_endpoint_state_created already serves.
ALTER TABLE endpoints ADD COLUMN ordered BOOLEAN NOT NULL DEFAULT FALSE;
