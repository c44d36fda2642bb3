ALTER TABLE endpoints DROP COLUMN ordered;
