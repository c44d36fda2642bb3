//! Events and their fan-out into deliveries.

use super::models::{DeliveryRow, EventRow};
use super::schema::{deliveries, endpoints, events};
use super::{dispatch, sequence, tenant_page, Db, StoreError};
use crate::core::delivery::lifecycle::DeliveryState;
use diesel::prelude::*;
use std::collections::HashMap;

/// What ingestion did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Written now, with these deliveries (in the order given): a delivery
    /// whose endpoint no longer exists was skipped.
    New { deliveries: Vec<WrittenDelivery> },
    /// The id or idempotency key was seen before: the original event, untouched.
    Duplicate { event_id: String, deliveries: usize },
}

/// A delivery as ingestion wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenDelivery {
    pub id: String,
    /// Its place in its endpoint's line (see `store::sequence`).
    pub seq: i64,
    /// Stored `held`: its endpoint was disabled when the event was written,
    /// whatever the fan-out had assumed.
    pub held: bool,
}

impl WrittenDelivery {
    fn of(row: &DeliveryRow) -> WrittenDelivery {
        WrittenDelivery {
            id: row.id.clone(),
            seq: row.seq,
            held: row.state == DeliveryState::Held.as_str(),
        }
    }
}

/// Writes the event and its deliveries together, unless the tenant already
/// has an event with the same id or idempotency key. Each delivery is
/// stored `pending` or `held` by its endpoint's status as read here.
pub fn ingest(
    db: &mut Db,
    event: &EventRow,
    fan_out: &[DeliveryRow],
) -> Result<Ingested, StoreError> {
    write(db, event, fan_out, StateBy::EndpointStatus)
}

/// [`ingest`], with each delivery stored in the state it comes with: an
/// endpoint test's `held` delivery, which the handler attempts itself and
/// no actor may page in.
pub fn ingest_as_given(
    db: &mut Db,
    event: &EventRow,
    deliveries: &[DeliveryRow],
) -> Result<Ingested, StoreError> {
    write(db, event, deliveries, StateBy::Caller)
}

/// Who decides the state a new delivery is stored in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateBy {
    EndpointStatus,
    Caller,
}

fn write(
    db: &mut Db,
    event: &EventRow,
    fan_out: &[DeliveryRow],
    state_by: StateBy,
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
    let endpoint_ids: Vec<&str> = fan_out.iter().map(|d| d.endpoint_id.as_str()).collect();
    // Before the status read: an ordered endpoint's lock comes first, so no
    // writer holds the status read's weaker lock while waiting for it.
    let numbers = sequence::take(db, &endpoint_ids, fan_out.len())?;
    let live = live_endpoints(db, endpoint_ids.into_iter())?;
    let rows: Vec<DeliveryRow> = fan_out
        .iter()
        .zip(numbers)
        .filter_map(|(d, seq)| {
            let row = DeliveryRow { seq, ..d.clone() };
            live.get(&d.endpoint_id).map(|&active| match state_by {
                StateBy::EndpointStatus => stored_as(row, active),
                StateBy::Caller => row,
            })
        })
        .collect();
    if !rows.is_empty() {
        dispatch!(db, c => diesel::insert_into(deliveries::table).values(&rows).execute(c))?;
    }
    Ok(Ingested::New {
        deliveries: rows.iter().map(WrittenDelivery::of).collect(),
    })
}

/// The delivery as it is stored for an endpoint whose status the
/// transaction read: a waiting one (`pending` or `held`, the fan-out's
/// guess from the router's flag, which a status change racing this write
/// may not have reached yet) is `pending` and due at once if the endpoint
/// is active, `held` otherwise; any other state is kept.
pub fn stored_as(row: DeliveryRow, active: bool) -> DeliveryRow {
    let waiting = [DeliveryState::Pending, DeliveryState::Held]
        .iter()
        .any(|state| row.state == state.as_str());
    if !waiting {
        return row;
    }
    let (state, due_at) = if active {
        (DeliveryState::Pending, Some(row.created_at))
    } else {
        (DeliveryState::Held, None)
    };
    DeliveryRow {
        state: state.as_str().to_owned(),
        next_attempt_at: due_at,
        ..row
    }
}

/// Which of these endpoints still exist, and whether each is active. An
/// endpoint deleted since the fan-out was computed gets no delivery. On
/// PostgreSQL the rows found are locked (`FOR SHARE`) until the transaction
/// ends: the deliveries inserted next cannot lose their endpoint meanwhile,
/// and a status change waits for this write (or this read waits for it and
/// sees its outcome), so an enable cannot commit between the read of the
/// status and the insert of a `held` delivery.
pub fn live_endpoints<'a>(
    db: &mut Db,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, bool>, StoreError> {
    let mut ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let query = endpoints::table
        .filter(endpoints::id.eq_any(ids))
        .select((endpoints::id, endpoints::status));
    let found: Vec<(String, String)> = match db {
        Db::Postgres(c) => query.for_share().load(&mut **c)?,
        Db::Sqlite(c) => query.load(&mut **c)?,
    };
    Ok(found
        .into_iter()
        .map(|(id, status)| (id, status == super::endpoints::ACTIVE))
        .collect())
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
    Ok(dispatch!(db, c => {
        let mut query = tenant_page!(events.id, tenant_id, after, limit);
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
