-- Attempts a second an endpoint takes at most; NULL: no limit.
ALTER TABLE endpoints ADD COLUMN rate_limit INTEGER;
