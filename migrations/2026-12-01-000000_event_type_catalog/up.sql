-- The event-type catalog: the types a tenant declares it publishes.
-- Deleting a type archives it (archived_at set): it stays listed and can be
-- created again. json_schema is the declared payload schema, stored as text
-- and not enforced.
CREATE TABLE event_types (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    json_schema TEXT,
    archived_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Whether publishing a type outside the catalog is refused; NULL follows
-- HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES.
ALTER TABLE tenants ADD COLUMN reject_unknown_event_types BOOLEAN;
