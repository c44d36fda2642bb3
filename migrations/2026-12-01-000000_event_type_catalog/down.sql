ALTER TABLE tenants DROP COLUMN reject_unknown_event_types;
DROP TABLE event_types;
