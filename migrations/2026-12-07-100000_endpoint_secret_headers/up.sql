-- Header names (lowercased, a JSON array) whose values the endpoint marks
-- secret: masked in views and sealed at rest like credential-like names.
ALTER TABLE endpoints ADD COLUMN secret_headers TEXT NOT NULL DEFAULT '[]';
