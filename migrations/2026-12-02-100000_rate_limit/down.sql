ALTER TABLE endpoints DROP COLUMN rate_limit;
