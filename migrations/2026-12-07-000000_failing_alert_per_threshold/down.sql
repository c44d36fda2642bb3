ALTER TABLE endpoint_health DROP COLUMN alert_raised;
ALTER TABLE alerts DROP COLUMN threshold;
