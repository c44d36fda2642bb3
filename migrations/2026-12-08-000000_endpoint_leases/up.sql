-- Every instance serving from this database: its last heartbeat, and a
-- value derived from its secret key, so that an instance whose key differs
-- (it would seal secrets the others cannot open) is refused at start.
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    key_check TEXT NOT NULL
);

-- Which instance runs each endpoint's actor, until when, and under which
-- epoch. A released or expired lease keeps its row, so an endpoint's epoch
-- only grows; the row goes with its endpoint.
CREATE TABLE endpoint_leases (
    endpoint_id TEXT PRIMARY KEY NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX endpoint_leases_by_owner ON endpoint_leases (owner);

-- Raised in the transaction of every change to a tenant's endpoints, so
-- that every instance can tell that the endpoints it remembers are stale.
ALTER TABLE tenants ADD COLUMN endpoints_version BIGINT NOT NULL DEFAULT 0;

-- A status change asked through an instance that does not own the
-- endpoint, for the owner to take, carry out and answer.
CREATE TABLE endpoint_commands (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    command TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    taken_at BIGINT,
    answer TEXT,
    answered_at BIGINT
);
CREATE INDEX endpoint_commands_untaken ON endpoint_commands (created_at) WHERE taken_at IS NULL;
