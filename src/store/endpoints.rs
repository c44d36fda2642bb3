//! Endpoints (subscriptions).

use super::models::EndpointRow;
use super::schema::endpoints;
use super::{dispatch, Db, StoreError};
use crate::core::endpoint::EndpointConfig;
use crate::core::matching::EventTypePattern;
use crate::core::signing::Secret;
use diesel::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

pub const ACTIVE: &str = "active";

pub fn insert(db: &mut Db, row: &EndpointRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(endpoints::table).values(row).execute(c))?;
    Ok(())
}

pub fn update(db: &mut Db, row: &EndpointRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(endpoints::table.find(&row.id)).set(row).execute(c))?;
    Ok(())
}

pub fn find(db: &mut Db, tenant_id: &str, id: &str) -> Result<Option<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.eq(id))
        .select(EndpointRow::as_select())
        .first(c)
        .optional())?)
}

pub fn list(
    db: &mut Db,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<EndpointRow>, StoreError> {
    let after = after.unwrap_or_default();
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.gt(after))
        .order(endpoints::id)
        .limit(limit)
        .select(EndpointRow::as_select())
        .load(c))?)
}

/// Every endpoint, for the router's registry at start-up.
pub fn all(db: &mut Db) -> Result<Vec<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .order(endpoints::id)
        .select(EndpointRow::as_select())
        .load(c))?)
}

/// Deletes the endpoint and, by cascade, its deliveries and attempts.
pub fn delete(db: &mut Db, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
    let deleted = dispatch!(db, c => diesel::delete(endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.eq(id)))
        .execute(c))?;
    Ok(deleted > 0)
}

impl EndpointRow {
    pub fn event_type_list(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    pub fn header_map(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.headers).unwrap_or_default()
    }

    pub fn retry_schedule_list(&self) -> Vec<u32> {
        serde_json::from_str(&self.retry_schedule).unwrap_or_default()
    }

    /// The configuration the router and the endpoint actor work from.
    pub fn config(&self) -> Result<EndpointConfig, StoreError> {
        let corrupt = |column: &str, reason: String| {
            StoreError::Corrupt(format!("endpoint {} column {column}: {reason}", self.id))
        };
        let patterns = self
            .event_type_list()
            .iter()
            .map(|p| EventTypePattern::parse(p).map_err(|e| corrupt("event_types", e.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        let secret = Secret::parse(&self.secret).map_err(|e| corrupt("secret", e.to_string()))?;
        Ok(EndpointConfig {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            url: self.url.clone(),
            patterns,
            headers: self.header_map().into_iter().collect(),
            secret,
            timeout: Duration::from_secs(u64::try_from(self.timeout_seconds).unwrap_or(30)),
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(1).max(1),
            retry_schedule: self.retry_schedule_list(),
            active: self.status == ACTIVE,
        })
    }
}
