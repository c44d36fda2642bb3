//! Events and their fan-out into deliveries.

use super::models::{DeliveryRow, EventRow};
use super::schema::{deliveries, endpoints, events};
use super::{dispatch, Db, StoreError};
use diesel::prelude::*;
use std::collections::HashSet;

/// What ingestion did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Written now, with these deliveries (ids, in the order given): a
    /// delivery whose endpoint no longer exists was skipped.
    New { delivery_ids: Vec<String> },
    /// The id or idempotency key was seen before: the original event, untouched.
    Duplicate { event_id: String, deliveries: usize },
}

/// Writes the event and its deliveries together, unless the tenant already
/// has an event with the same id or idempotency key.
pub fn ingest(
    db: &mut Db,
    event: &EventRow,
    fan_out: &[DeliveryRow],
) -> Result<Ingested, StoreError> {
    let inserted = dispatch!(db, c => diesel::insert_into(events::table)
        .values(event)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 0 {
        let original =
            find_duplicate(db, event)?.ok_or(StoreError::Query(diesel::result::Error::NotFound))?;
        let deliveries = count_deliveries(db, &event.tenant_id, &original)?;
        return Ok(Ingested::Duplicate {
            event_id: original,
            deliveries,
        });
    }
    let live = existing_endpoints(db, fan_out.iter().map(|d| d.endpoint_id.as_str()))?;
    let rows: Vec<&DeliveryRow> = fan_out
        .iter()
        .filter(|d| live.contains(&d.endpoint_id))
        .collect();
    if !rows.is_empty() {
        dispatch!(db, c => diesel::insert_into(deliveries::table).values(rows.clone()).execute(c))?;
    }
    Ok(Ingested::New {
        delivery_ids: rows.into_iter().map(|row| row.id.clone()).collect(),
    })
}

/// Which of these endpoints still exist. An endpoint deleted since the
/// fan-out was computed gets no delivery. On PostgreSQL the rows found are
/// locked against deletion until the transaction ends, so the deliveries
/// inserted next cannot lose their endpoint meanwhile.
pub fn existing_endpoints<'a>(
    db: &mut Db,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashSet<String>, StoreError> {
    let mut ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let query = endpoints::table
        .filter(endpoints::id.eq_any(ids))
        .select(endpoints::id);
    let found: Vec<String> = match db {
        Db::Postgres(c) => query.for_key_share().load(&mut **c)?,
        Db::Sqlite(c) => query.load(&mut **c)?,
    };
    Ok(found.into_iter().collect())
}

fn find_duplicate(db: &mut Db, event: &EventRow) -> Result<Option<String>, StoreError> {
    let by_id: Option<String> = dispatch!(db, c => events::table
        .filter(events::tenant_id.eq(&event.tenant_id))
        .filter(events::id.eq(&event.id))
        .select(events::id)
        .first(c)
        .optional())?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    let Some(key) = &event.idempotency_key else {
        return Ok(None);
    };
    Ok(dispatch!(db, c => events::table
        .filter(events::tenant_id.eq(&event.tenant_id))
        .filter(events::idempotency_key.eq(key))
        .select(events::id)
        .first(c)
        .optional())?)
}

fn count_deliveries(db: &mut Db, tenant_id: &str, event_id: &str) -> Result<usize, StoreError> {
    let count: i64 = dispatch!(db, c => deliveries::table
        .filter(deliveries::tenant_id.eq(tenant_id))
        .filter(deliveries::event_id.eq(event_id))
        .count()
        .get_result(c))?;
    Ok(usize::try_from(count).unwrap_or_default())
}

pub fn find(db: &mut Db, tenant_id: &str, id: &str) -> Result<Option<EventRow>, StoreError> {
    Ok(dispatch!(db, c => events::table
        .filter(events::tenant_id.eq(tenant_id))
        .filter(events::id.eq(id))
        .select(EventRow::as_select())
        .first(c)
        .optional())?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    /// The type, exactly.
    pub event_type: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
}

/// An event as the list shows it; its body stays on disk, so a page of
/// large events costs no more memory than a page of small ones.
#[derive(Debug, Clone, Queryable)]
pub struct EventSummary {
    pub id: String,
    pub event_type: String,
    pub created_at: i64,
}

/// The tenant's events in id order, after `after`.
pub fn list(
    db: &mut Db,
    tenant_id: &str,
    filter: &EventFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<EventSummary>, StoreError> {
    let after = after.unwrap_or_default();
    Ok(dispatch!(db, c => {
        let mut query = events::table
            .filter(events::tenant_id.eq(tenant_id))
            .filter(events::id.gt(after))
            .order(events::id)
            .limit(limit)
            .into_boxed();
        if let Some(event_type) = &filter.event_type {
            query = query.filter(events::event_type.eq(event_type));
        }
        if let Some(since) = filter.since {
            query = query.filter(events::created_at.ge(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(events::created_at.lt(until));
        }
        query
            .select((events::id, events::event_type, events::created_at))
            .load::<EventSummary>(c)
    })?)
}
