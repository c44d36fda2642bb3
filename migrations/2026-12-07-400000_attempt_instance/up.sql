-- The instance that made each attempt (HOOKRELAY_INSTANCE_ID); NULL for
-- attempts recorded before it was kept.
ALTER TABLE attempts ADD COLUMN instance TEXT;
