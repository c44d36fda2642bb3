//! History for the health views, read from the attempts table.

use super::models::AttemptRow;
use super::schema::attempts;
use super::{dispatch, Db, StoreError};
use crate::core::health::views::WindowStats;
use diesel::prelude::*;

/// Latency percentiles of a window are computed over at most this many of
/// its newest attempts, so a busy endpoint's view stays cheap.
const LATENCY_SAMPLE: i64 = 10_000;

pub fn window(db: &mut Db, endpoint_id: &str, since: i64) -> Result<WindowStats, StoreError> {
    let attempts: i64 = dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(attempts::started_at.ge(since))
        .count()
        .get_result(c))?;
    let succeeded: i64 = dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(attempts::started_at.ge(since))
        .filter(attempts::status_code.between(200, 299))
        .count()
        .get_result(c))?;
    let durations: Vec<i64> = dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(attempts::started_at.ge(since))
        .order(attempts::started_at.desc())
        .limit(LATENCY_SAMPLE)
        .select(attempts::duration_ms)
        .load(c))?;
    Ok(WindowStats::new(
        u64::try_from(attempts).unwrap_or_default(),
        u64::try_from(succeeded).unwrap_or_default(),
        durations,
    ))
}

/// Attempts and successes per endpoint of the tenant's given endpoints.
pub fn window_counts(
    db: &mut Db,
    endpoint_ids: &[String],
    since: i64,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let totals: Vec<(Option<String>, i64)> = dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq_any(endpoint_ids))
        .filter(attempts::started_at.ge(since))
        .group_by(attempts::endpoint_id)
        .select((attempts::endpoint_id, diesel::dsl::count_star()))
        .load(c))?;
    let successes: Vec<(Option<String>, i64)> = dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq_any(endpoint_ids))
        .filter(attempts::started_at.ge(since))
        .filter(attempts::status_code.between(200, 299))
        .group_by(attempts::endpoint_id)
        .select((attempts::endpoint_id, diesel::dsl::count_star()))
        .load(c))?;
    Ok(totals
        .into_iter()
        .filter_map(|(id, total)| {
            let id = id?;
            let ok = successes
                .iter()
                .find(|(other, _)| other.as_deref() == Some(id.as_str()))
                .map_or(0, |(_, n)| *n);
            Some((id, total, ok))
        })
        .collect())
}

/// Start, duration and status of the endpoint's newest attempts since
/// `since`, at most `limit`: the three columns a chart draws, not the
/// receivers' answers.
pub fn timings(
    db: &mut Db,
    endpoint_id: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<(i64, i64, Option<i32>)>, StoreError> {
    Ok(dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(attempts::started_at.ge(since))
        .order(attempts::started_at.desc())
        .limit(limit)
        .select((attempts::started_at, attempts::duration_ms, attempts::status_code))
        .load(c))?)
}

pub fn recent(db: &mut Db, endpoint_id: &str, limit: i64) -> Result<Vec<AttemptRow>, StoreError> {
    Ok(dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .order((attempts::started_at.desc(), attempts::id.desc()))
        .limit(limit)
        .select(AttemptRow::as_select())
        .load(c))?)
}

pub fn last_success_at(db: &mut Db, endpoint_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(attempts::status_code.between(200, 299))
        .order(attempts::started_at.desc())
        .select(attempts::started_at)
        .first(c)
        .optional())?)
}

pub fn last_failure(db: &mut Db, endpoint_id: &str) -> Result<Option<AttemptRow>, StoreError> {
    Ok(dispatch!(db, c => attempts::table
        .filter(attempts::endpoint_id.eq(endpoint_id))
        .filter(
            attempts::status_code
                .is_null()
                .or(attempts::status_code.not_between(200, 299)),
        )
        .order((attempts::started_at.desc(), attempts::id.desc()))
        .select(AttemptRow::as_select())
        .first(c)
        .optional())?)
}
