DROP INDEX alerts_by_endpoint_time;
