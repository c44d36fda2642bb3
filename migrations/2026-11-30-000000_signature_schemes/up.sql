-- How each endpoint's deliveries are signed. Existing endpoints keep
-- Standard Webhooks; signature_header and signature_sha256_prefix shape the
-- hex scheme only.
ALTER TABLE endpoints ADD COLUMN signature_scheme TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE endpoints ADD COLUMN signature_header TEXT NOT NULL DEFAULT 'X-Webhook-Signature';
ALTER TABLE endpoints ADD COLUMN signature_sha256_prefix BOOLEAN NOT NULL DEFAULT FALSE;
