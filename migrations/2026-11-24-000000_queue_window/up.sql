-- Endpoint actors page their queue in from disk, earliest due first: a
-- pending delivery always carries its due time in next_attempt_at.
UPDATE deliveries SET next_attempt_at = created_at
    WHERE state = 'pending' AND next_attempt_at IS NULL;
DROP INDEX deliveries_by_endpoint_state;
CREATE INDEX deliveries_by_endpoint_state_due ON deliveries (endpoint_id, state, next_attempt_at, id);
