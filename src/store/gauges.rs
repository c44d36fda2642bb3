//! Counts for the metrics' gauges, read from the database at scrape.

use super::schema::{deliveries, endpoint_health, endpoints};
use super::{dispatch, Db, StoreError};
use crate::core::delivery::lifecycle::DeliveryState;
use crate::metrics::StoredCounts;
use diesel::dsl::count_star;
use diesel::prelude::*;

const WAITING: [DeliveryState; 2] = [DeliveryState::Pending, DeliveryState::Held];
const STATUSES: [&str; 2] = ["active", "disabled"];
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

pub fn stored_counts(db: &mut Db) -> Result<StoredCounts, StoreError> {
    let waiting: Vec<&str> = WAITING.iter().map(|state| state.as_str()).collect();
    let by_state: Vec<(String, i64)> = dispatch!(db, c => deliveries::table
        .filter(deliveries::state.eq_any(&waiting))
        .group_by(deliveries::state)
        .select((deliveries::state, count_star()))
        .load(c))?;
    let by_status: Vec<(String, i64)> = dispatch!(db, c => endpoints::table
        .group_by(endpoints::status)
        .select((endpoints::status, count_star()))
        .load(c))?;
    let tripped: Vec<(String, i64)> = dispatch!(db, c => endpoint_health::table
        .inner_join(endpoints::table.on(endpoints::id.eq(endpoint_health::endpoint_id)))
        .filter(endpoint_health::circuit_state.ne("closed"))
        .group_by(endpoint_health::circuit_state)
        .select((endpoint_health::circuit_state, count_star()))
        .load(c))?;
    let all: i64 = by_status.iter().map(|(_, count)| count).sum();
    let not_closed: i64 = tripped.iter().map(|(_, count)| count).sum();
    let mut by_breaker = tripped;
    by_breaker.push(("closed".to_owned(), all - not_closed));
    Ok(StoredCounts {
        deliveries_by_state: with_zeros(&waiting, by_state),
        endpoints_by_status: with_zeros(&STATUSES, by_status),
        endpoints_by_breaker: with_zeros(&BREAKER_STATES, by_breaker),
    })
}

/// `counts`, with every name of `known` it lacks at zero.
fn with_zeros(known: &[&str], mut counts: Vec<(String, i64)>) -> Vec<(String, i64)> {
    for name in known {
        if !counts.iter().any(|(counted, _)| counted == name) {
            counts.push(((*name).to_owned(), 0));
        }
    }
    counts.sort();
    counts
}
