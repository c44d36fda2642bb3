//! Alerts: stored first, then dispatched as operational events (an outbox).

use super::models::AlertRow;
use super::schema::alerts;
use super::{dispatch, tenant_page, Db, StoreError};
use crate::core::health::failure_policy::AlertKind;
use diesel::prelude::*;

#[derive(Debug, Default, Clone)]
pub struct AlertFilter {
    pub endpoint_id: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
}

pub fn insert(db: &mut Db, rows: &[AlertRow]) -> Result<(), StoreError> {
    if !rows.is_empty() {
        dispatch!(db, c => diesel::insert_into(alerts::table).values(rows).execute(c))?;
    }
    Ok(())
}

/// When each threshold of the endpoint last raised `endpoint.failing`,
/// among the alerts raised since `since` (the index `(endpoint_id,
/// created_at)` keeps this to the few recent ones), as `(threshold, at)`.
pub fn last_failing(
    db: &mut Db,
    endpoint_id: &str,
    since: i64,
) -> Result<Vec<(u32, i64)>, StoreError> {
    let rows: Vec<(Option<i32>, Option<i64>)> = dispatch!(db, c => alerts::table
        .filter(alerts::endpoint_id.eq(endpoint_id))
        .filter(alerts::created_at.ge(since))
        .filter(alerts::kind.eq(AlertKind::Failing.as_str()))
        .filter(alerts::threshold.is_not_null())
        .group_by(alerts::threshold)
        .select((alerts::threshold, diesel::dsl::max(alerts::created_at)))
        .load(c))?;
    Ok(rows
        .into_iter()
        .filter_map(|(threshold, at)| Some((u32::try_from(threshold?).ok()?, at?)))
        .collect())
}

/// How many undispatched alerts one sweep takes on.
const SWEEP_BATCH: i64 = 500;

/// Alerts raised before `raised_before` whose notifications were not queued.
pub fn undispatched(db: &mut Db, raised_before: i64) -> Result<Vec<AlertRow>, StoreError> {
    Ok(dispatch!(db, c => alerts::table
        .filter(alerts::dispatched_at.is_null())
        .filter(alerts::created_at.lt(raised_before))
        .order(alerts::id)
        .limit(SWEEP_BATCH)
        .select(AlertRow::as_select())
        .load(c))?)
}

pub fn mark_dispatched(db: &mut Db, ids: &[String], now: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(alerts::table.filter(alerts::id.eq_any(ids)))
        .set(alerts::dispatched_at.eq(now))
        .execute(c))?;
    Ok(())
}

pub fn list(
    db: &mut Db,
    tenant_id: &str,
    filter: &AlertFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AlertRow>, StoreError> {
    Ok(dispatch!(db, c => {
        let mut query = tenant_page!(alerts.id, tenant_id, after, limit);
        if let Some(endpoint_id) = &filter.endpoint_id {
            query = query.filter(alerts::endpoint_id.eq(endpoint_id));
        }
        if let Some(kind) = &filter.kind {
            query = query.filter(alerts::kind.eq(kind));
        }
        if let Some(since) = filter.since {
            query = query.filter(alerts::created_at.ge(since));
        }
        query.select(AlertRow::as_select()).load(c)
    })?)
}
