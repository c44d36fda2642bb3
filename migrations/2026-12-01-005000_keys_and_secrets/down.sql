ALTER TABLE endpoints DROP COLUMN previous_secret_expires_at;
ALTER TABLE endpoints DROP COLUMN previous_secret;
DROP INDEX api_keys_by_tenant;
DROP INDEX api_keys_by_id;
ALTER TABLE api_keys DROP COLUMN prefix;
ALTER TABLE api_keys DROP COLUMN name;
ALTER TABLE api_keys DROP COLUMN id;
