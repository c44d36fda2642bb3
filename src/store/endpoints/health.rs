//! The streak and breaker an endpoint's actor saves, so that a restart
//! resumes them.

use crate::core::health::breaker::{Breaker, CircuitState};
use crate::core::health::failure_policy::Streak;
use crate::store::models::EndpointHealthRow;
use crate::store::schema::endpoint_health;
use crate::store::{dispatch, Db, StoreError};
use diesel::prelude::*;

/// The streak and breaker saved by the endpoint's actor, if any.
pub fn load_health(db: &mut Db, id: &str) -> Result<Option<EndpointHealthRow>, StoreError> {
    Ok(dispatch!(db, c => endpoint_health::table
        .find(id)
        .select(EndpointHealthRow::as_select())
        .first(c)
        .optional())?)
}

pub fn save_health(db: &mut Db, row: &EndpointHealthRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(endpoint_health::table)
        .values(row)
        .on_conflict(endpoint_health::endpoint_id)
        .do_update()
        .set(row)
        .execute(c))?;
    Ok(())
}

impl EndpointHealthRow {
    pub fn new(endpoint_id: &str, streak: &Streak, breaker: &Breaker, now: i64) -> Self {
        EndpointHealthRow {
            endpoint_id: endpoint_id.to_owned(),
            consecutive_failures: i32::try_from(streak.consecutive_failures).unwrap_or(i32::MAX),
            failing_since: streak.failing_since,
            alerted_thresholds: serde_json::to_string(&streak.alerted).unwrap_or_default(),
            circuit_state: breaker.state.as_str().to_owned(),
            circuit_opened_at: breaker.opened_at,
            circuit_next_probe_at: breaker.next_probe_at,
            circuit_cooldown_ms: breaker.cooldown_ms,
            updated_at: now,
            alert_raised: streak.alert_raised,
        }
    }

    pub fn streak(&self) -> Streak {
        Streak {
            consecutive_failures: u32::try_from(self.consecutive_failures).unwrap_or_default(),
            failing_since: self.failing_since,
            alerted: serde_json::from_str(&self.alerted_thresholds).unwrap_or_default(),
            alert_raised: self.alert_raised,
        }
    }

    pub fn breaker(&self) -> Breaker {
        Breaker::restore(
            CircuitState::parse(&self.circuit_state).unwrap_or(CircuitState::Closed),
            self.circuit_opened_at,
            self.circuit_next_probe_at,
            self.circuit_cooldown_ms,
        )
    }
}
