-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
-- Times are milliseconds since the Unix epoch (BIGINT); JSON documents are TEXT.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Keys are stored as SHA-256 hex digests; tenant_id NULL marks an admin key.
CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    event_types TEXT NOT NULL,
    headers TEXT NOT NULL,
    secret TEXT NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    max_in_flight INTEGER NOT NULL,
    retry_schedule TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, id);

-- body holds the exact bytes that are signed and sent on every attempt.
CREATE TABLE events (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    attempt_count INTEGER NOT NULL,
    next_attempt_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_by_endpoint_state ON deliveries (endpoint_id, state, id);
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, event_id);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code INTEGER,
    response_headers TEXT,
    response_body TEXT,
    error_kind TEXT,
    error_message TEXT
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt);
