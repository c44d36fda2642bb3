-- Endpoint health: per-endpoint limit overrides, the disabled status, the
-- breaker and failure streak owned by the endpoint actor, and alerts.

ALTER TABLE endpoints ADD COLUMN breaker_failures INTEGER;
ALTER TABLE endpoints ADD COLUMN breaker_cooldown_seconds BIGINT;
ALTER TABLE endpoints ADD COLUMN breaker_max_cooldown_seconds BIGINT;
ALTER TABLE endpoints ADD COLUMN alert_thresholds TEXT;
ALTER TABLE endpoints ADD COLUMN disable_after_failures INTEGER;
ALTER TABLE endpoints ADD COLUMN disable_after_seconds BIGINT;
ALTER TABLE endpoints ADD COLUMN disabled_at BIGINT;
ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;

-- Written only by the endpoint's actor; no row means a healthy endpoint.
CREATE TABLE endpoint_health (
    endpoint_id TEXT PRIMARY KEY NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    consecutive_failures INTEGER NOT NULL,
    failing_since BIGINT,
    alerted_thresholds TEXT NOT NULL,
    circuit_state TEXT NOT NULL,
    circuit_opened_at BIGINT,
    circuit_next_probe_at BIGINT,
    circuit_cooldown_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Health views read an endpoint's recent attempts without touching deliveries.
ALTER TABLE attempts ADD COLUMN endpoint_id TEXT;
UPDATE attempts SET endpoint_id =
    (SELECT deliveries.endpoint_id FROM deliveries WHERE deliveries.id = attempts.delivery_id);
CREATE INDEX attempts_by_endpoint_time ON attempts (endpoint_id, started_at);

-- dispatched_at NULL marks an alert whose notifications are not yet queued
-- (an outbox: they are queued again after a crash).
CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL,
    endpoint_url TEXT NOT NULL,
    kind TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    failing_since BIGINT,
    status_code INTEGER,
    error TEXT,
    disabled_reason TEXT,
    created_at BIGINT NOT NULL,
    dispatched_at BIGINT
);
CREATE INDEX alerts_by_tenant ON alerts (tenant_id, id);
CREATE INDEX alerts_undispatched ON alerts (dispatched_at);
