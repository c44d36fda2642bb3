ALTER TABLE endpoints DROP COLUMN secret_headers;
