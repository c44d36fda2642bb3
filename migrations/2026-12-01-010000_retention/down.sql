DROP INDEX events_by_age;
DROP INDEX deliveries_by_state_age;
