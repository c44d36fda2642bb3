-- Retention finds finished deliveries by state and age, and events by age,
-- a batch at a time, without scanning the tables.
CREATE INDEX deliveries_by_state_age ON deliveries (state, updated_at);
CREATE INDEX events_by_age ON events (created_at, tenant_id, id);
