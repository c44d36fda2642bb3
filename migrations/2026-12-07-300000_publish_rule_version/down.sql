ALTER TABLE tenants DROP COLUMN publish_rule_version;
