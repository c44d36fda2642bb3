-- An endpoint's actor reads, when it loads, the alerts it raised lately,
-- so that a reload does not reset the bound of one alert of a kind per
-- interval.
CREATE INDEX alerts_by_endpoint_time ON alerts (endpoint_id, created_at);
