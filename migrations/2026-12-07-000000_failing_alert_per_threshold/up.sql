-- Each threshold of a failure streak raises its own endpoint.failing alert,
-- and the bound on repeats is kept per threshold: an endpoint's actor
-- recalls, when it loads, when each threshold last alerted. Alerts raised
-- before were raised at the failure that crossed their threshold.
ALTER TABLE alerts ADD COLUMN threshold INTEGER;
UPDATE alerts SET threshold = consecutive_failures WHERE kind = 'endpoint.failing';

-- A streak whose failing alert got past the bound ends with
-- endpoint.recovered; before, any streak that had crossed a threshold did.
ALTER TABLE endpoint_health ADD COLUMN alert_raised BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE endpoint_health SET alert_raised = TRUE WHERE alerted_thresholds <> '[]';
