-- Raised in the transaction of every change to what a tenant may publish
-- (its reject_unknown_event_types setting, a type declared, restored or
-- archived), so that every instance sharing the database can tell that the
-- rule it remembers for the tenant is out of date.
ALTER TABLE tenants ADD COLUMN publish_rule_version BIGINT NOT NULL DEFAULT 0;
