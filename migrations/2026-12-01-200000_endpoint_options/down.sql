ALTER TABLE endpoints DROP COLUMN metadata;
ALTER TABLE endpoints DROP COLUMN retry_client_errors;
ALTER TABLE endpoints DROP COLUMN http_method;
