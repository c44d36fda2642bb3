-- Per-endpoint request shape and failure handling. Existing endpoints keep
-- POST and retry every failed status, as before.
ALTER TABLE endpoints ADD COLUMN http_method TEXT NOT NULL DEFAULT 'POST';
ALTER TABLE endpoints ADD COLUMN retry_client_errors BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE endpoints ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
