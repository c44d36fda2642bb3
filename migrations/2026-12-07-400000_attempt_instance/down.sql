ALTER TABLE attempts DROP COLUMN instance;
