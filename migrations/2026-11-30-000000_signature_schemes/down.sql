ALTER TABLE endpoints DROP COLUMN signature_sha256_prefix;
ALTER TABLE endpoints DROP COLUMN signature_header;
ALTER TABLE endpoints DROP COLUMN signature_scheme;
