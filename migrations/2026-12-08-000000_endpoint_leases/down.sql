DROP TABLE endpoint_commands;
ALTER TABLE tenants DROP COLUMN endpoints_version;
DROP TABLE endpoint_leases;
DROP TABLE instances;
