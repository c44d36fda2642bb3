-- When the key last authenticated a request (epoch ms), written at most
-- once a minute a key; NULL: not used since this column was added.
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
