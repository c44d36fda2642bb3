-- Several API keys per tenant, each with an id to revoke it by, an optional
-- name and the first characters of the key (the key itself is stored only
-- as its SHA-256). Keys from before keep working: they get an id derived
-- from their digest and no prefix (their plaintext was never stored).
ALTER TABLE api_keys ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
UPDATE api_keys SET id = 'key_' || substr(key_hash, 1, 32) WHERE id = '';
CREATE UNIQUE INDEX api_keys_by_id ON api_keys (id);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);

-- Secret rotation: the replaced secret keeps signing, beside the new one,
-- until previous_secret_expires_at (epoch ms). Both secret columns hold
-- either the plain secret or, with HOOKRELAY_SECRET_KEY set, `enc:v1:…`.
ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at BIGINT;
