//! Deliveries and their attempts.

use super::leases::Fence;
use super::models::{AlertRow, AttemptRow, DeliveryRow, EndpointHealthRow};
use super::schema::{attempts, deliveries, events};
use super::{dispatch, tenant_page, Db, StoreError};
use crate::core::delivery::lifecycle::{BacklogMove, DeliveryState, StatusClass};
use crate::core::health::failure_policy::DisableReason;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::Bool;

/// The outcome of one attempt, to be stored with the delivery's new state.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: AttemptRow,
    pub state: DeliveryState,
    pub next_attempt_at: Option<i64>,
}

/// Everything one finished attempt writes, in one transaction.
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    pub record: AttemptRecord,
    /// The endpoint's breaker and streak, when this attempt changed them.
    pub health: Option<EndpointHealthRow>,
    pub alerts: Vec<AlertRow>,
    /// Set when this attempt disables the endpoint: its status is set and
    /// the hold of its pending deliveries recorded, for the endpoint's actor
    /// to carry out in batches (`endpoints::set_status`, `endpoints::set_backlog_move`).
    pub disable: Option<DisableReason>,
    /// The lease the endpoint's actor holds: the write is dropped, and its
    /// maker told, when another instance has taken the endpoint since
    /// (none: a write made outside an endpoint actor, in tests).
    pub fence: Option<Fence>,
}

#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub state: Option<String>,
    /// The event's type, exactly.
    pub event_type: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
    /// The class of the last attempt's status.
    pub status_class: Option<StatusClass>,
}

/// The status code of a delivery's last attempt (NULL when it has none or
/// the attempt got no answer), as SQL both backends run.
const LAST_STATUS: &str =
    "(SELECT a.status_code FROM attempts a WHERE a.delivery_id = deliveries.id \
     ORDER BY a.started_at DESC, a.id DESC LIMIT 1)";

/// The condition "the last attempt's status is of this class".
fn last_status_is(class: StatusClass) -> String {
    match class.codes() {
        // The bounds are our own constants, never input.
        Some((low, high)) => format!("{LAST_STATUS} BETWEEN {low} AND {high}"),
        None => format!("{LAST_STATUS} IS NULL"),
    }
}

/// `deliveries.state = '…'`, the state written into the statement rather
/// than bound. Deliveries are indexed by partial indexes, one for waiting
/// deliveries and one for finished ones, and a planner uses one only when
/// it can see that the query's condition implies the index's, which a
/// bound value hides from PostgreSQL's cached generic plans (and from
/// SQLite's plan until it prepares the statement again for the value).
/// The states are our own constants, never input.
pub fn state_is(state: DeliveryState) -> SqlLiteral<Bool> {
    diesel::dsl::sql(&format!("deliveries.state = '{}'", state.as_str()))
}

/// Waiting deliveries (`pending` or `held`), written as the partial index
/// on them is declared, which SQLite needs to use it.
pub fn is_waiting() -> SqlLiteral<Bool> {
    diesel::dsl::sql("(deliveries.state = 'pending' OR deliveries.state = 'held')")
}

/// The states in which an attempt's result may still change a delivery.
pub const UNSETTLED: [&str; 2] = [
    DeliveryState::Pending.as_str(),
    DeliveryState::Held.as_str(),
];

pub fn record_attempt(db: &mut Db, record: &AttemptRecord, now: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(attempts::table).values(&record.attempt).execute(c))?;
    // A delivery settled while this attempt was in flight (cancelled, or
    // succeeded or failed by an operator's manual attempt) stays settled.
    dispatch!(db, c => diesel::update(deliveries::table
        .filter(deliveries::id.eq(&record.attempt.delivery_id))
        .filter(deliveries::state.eq_any(UNSETTLED)))
        .set((
            deliveries::state.eq(record.state.as_str()),
            deliveries::attempt_count.eq(record.attempt.attempt),
            deliveries::next_attempt_at.eq(record.next_attempt_at),
            deliveries::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

pub fn list(
    db: &mut Db,
    tenant_id: &str,
    filter: &DeliveryFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(dispatch!(db, c => {
        let mut query = tenant_page!(deliveries.id, tenant_id, after, limit);
        if let Some(endpoint_id) = &filter.endpoint_id {
            query = query.filter(deliveries::endpoint_id.eq(endpoint_id));
        }
        if let Some(state) = &filter.state {
            query = query.filter(deliveries::state.eq(state));
        }
        if let Some(event_type) = &filter.event_type {
            query = query.filter(deliveries::event_id.eq_any(events::table
                .filter(events::tenant_id.eq(tenant_id))
                .filter(events::event_type.eq(event_type))
                .select(events::id)));
        }
        if let Some(since) = filter.since {
            query = query.filter(deliveries::created_at.ge(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(deliveries::created_at.lt(until));
        }
        if let Some(class) = filter.status_class {
            query = query.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&last_status_is(class)));
        }
        query.select(DeliveryRow::as_select()).load(c)
    })?)
}

pub fn for_event(
    db: &mut Db,
    tenant_id: &str,
    event_id: &str,
) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(dispatch!(db, c => deliveries::table
        .filter(deliveries::tenant_id.eq(tenant_id))
        .filter(deliveries::event_id.eq(event_id))
        .order(deliveries::id)
        .select(DeliveryRow::as_select())
        .load(c))?)
}

pub fn find(db: &mut Db, tenant_id: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(dispatch!(db, c => deliveries::table
        .filter(deliveries::tenant_id.eq(tenant_id))
        .filter(deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(c)
        .optional())?)
}

pub fn attempts_of(db: &mut Db, delivery_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
    Ok(dispatch!(db, c => attempts::table
        .filter(attempts::delivery_id.eq(delivery_id))
        // A replay starts the count again; time keeps the true order.
        .order((attempts::started_at, attempts::id))
        .select(AttemptRow::as_select())
        .load(c))?)
}

/// Deliveries that reached a disabled endpoint's actor as pending.
pub fn hold(db: &mut Db, delivery_ids: &[String], now: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(deliveries::table
        .filter(deliveries::id.eq_any(delivery_ids))
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str())))
        .set((
            deliveries::state.eq(DeliveryState::Held.as_str()),
            deliveries::next_attempt_at.eq(None::<i64>),
            deliveries::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// A position among an endpoint's deliveries of one state in the order of
/// their creation: the creation time and id of the last one read.
pub type CreationCursor = (i64, String);

/// Up to `limit` of the endpoint's deliveries in `state` created in
/// `[since, until)`, after `after`, in (created_at, id) order: their ids and
/// creation times. The index (endpoint_id, state, created_at, id) serves
/// it, entered at `after`: the `created_at >= …` term is what lets either
/// planner seek there instead of reading from the start of the state.
pub fn in_creation_order(
    db: &mut Db,
    endpoint_id: &str,
    state: DeliveryState,
    since: Option<i64>,
    until: Option<i64>,
    after: Option<&CreationCursor>,
    limit: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(dispatch!(db, c => {
        let mut query = deliveries::table
            .filter(deliveries::endpoint_id.eq(endpoint_id))
            .filter(deliveries::state.eq(state.as_str()))
            .order((deliveries::created_at, deliveries::id))
            .limit(limit)
            .into_boxed();
        if let Some(since) = since {
            query = query.filter(deliveries::created_at.ge(since));
        }
        if let Some(until) = until {
            query = query.filter(deliveries::created_at.lt(until));
        }
        if let Some((at, id)) = after {
            query = query.filter(deliveries::created_at.ge(at)).filter(
                deliveries::created_at
                    .gt(at)
                    .or(deliveries::id.gt(id)),
            );
        }
        query
            .select((deliveries::id, deliveries::created_at))
            .load(c)
    })?)
}

/// What one batch of a backlog move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedBatch {
    pub moved: usize,
    /// The last delivery moved, from which the next batch goes on.
    pub last: Option<CreationCursor>,
}

/// One batch of a [`BacklogMove`]: at most `limit` of the endpoint's
/// deliveries in the move's `from` state, in creation order after `after`
/// (where the previous batch ended), change state. Replayed ones start over
/// with a full schedule, due at `replay_due_at` (a pending delivery always
/// carries its due time; one time for the whole move keeps the event order
/// across batches). Fewer than `limit` moved means none is left.
pub fn move_batch(
    db: &mut Db,
    endpoint_id: &str,
    kind: BacklogMove,
    limit: usize,
    replay_due_at: i64,
    after: Option<&CreationCursor>,
    now: i64,
) -> Result<MovedBatch, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ahead = in_creation_order(db, endpoint_id, kind.from(), None, None, after, limit)?;
    let last = ahead
        .last()
        .map(|(id, at)| (*at, id.clone()))
        .or(after.cloned());
    let mut moved = move_rows(db, &ahead, kind, replay_due_at, now)?;
    let short = i64::try_from(ahead.len()).unwrap_or(i64::MAX) < limit;
    if short && after.is_some() {
        // A row can enter `from` behind the cursor (a fan-out that raced the
        // status change); the move ends only when none is left anywhere.
        let rest = limit - i64::try_from(ahead.len()).unwrap_or(limit);
        let behind = in_creation_order(db, endpoint_id, kind.from(), None, None, None, rest)?;
        moved += move_rows(db, &behind, kind, replay_due_at, now)?;
    }
    Ok(MovedBatch { moved, last })
}

/// Moves the given deliveries, those still in the move's `from` state.
fn move_rows(
    db: &mut Db,
    rows: &[(String, i64)],
    kind: BacklogMove,
    replay_due_at: i64,
    now: i64,
) -> Result<usize, StoreError> {
    let (from, to) = (kind.from().as_str(), kind.to().as_str());
    let mut moved = 0;
    // Each id is a bound parameter on SQLite, which allows 32,766 of them.
    for chunk in rows.chunks(IDS_PER_STATEMENT) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let moving = deliveries::table
            .filter(deliveries::id.eq_any(ids))
            .filter(deliveries::state.eq(from));
        moved += match kind {
            BacklogMove::Replay => dispatch!(db, c => diesel::update(moving)
                .set((
                    deliveries::state.eq(to),
                    deliveries::attempt_count.eq(0),
                    deliveries::next_attempt_at.eq(Some(replay_due_at)),
                    deliveries::updated_at.eq(now),
                ))
                .execute(c))?,
            BacklogMove::Hold | BacklogMove::Cancel => dispatch!(db, c => diesel::update(moving)
                .set((
                    deliveries::state.eq(to),
                    deliveries::next_attempt_at.eq(None::<i64>),
                    deliveries::updated_at.eq(now),
                ))
                .execute(c))?,
        };
    }
    Ok(moved)
}

/// Ids bound in one statement of [`move_batch`].
const IDS_PER_STATEMENT: usize = 10_000;

/// Whether the endpoint has any delivery in `state`.
pub fn any_in_state(
    db: &mut Db,
    endpoint_id: &str,
    state: DeliveryState,
) -> Result<bool, StoreError> {
    let found: Option<String> = dispatch!(db, c => deliveries::table
        .filter(deliveries::endpoint_id.eq(endpoint_id))
        .filter(state_is(state))
        .select(deliveries::id)
        .first(c)
        .optional())?;
    Ok(found.is_some())
}

/// Waiting deliveries (pending and held) per endpoint and state, for the
/// tenant's endpoints.
pub fn count_waiting_by_endpoint_and_state(
    db: &mut Db,
    tenant_id: &str,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(dispatch!(db, c => deliveries::table
        .filter(deliveries::tenant_id.eq(tenant_id))
        .filter(is_waiting())
        .group_by((deliveries::endpoint_id, deliveries::state))
        .select((deliveries::endpoint_id, deliveries::state, diesel::dsl::count_star()))
        .load(c))?)
}

pub fn count_in_state(
    db: &mut Db,
    endpoint_id: &str,
    state: DeliveryState,
) -> Result<u64, StoreError> {
    let count: i64 = dispatch!(db, c => deliveries::table
        .filter(deliveries::endpoint_id.eq(endpoint_id))
        .filter(state_is(state))
        .count()
        .get_result(c))?;
    Ok(u64::try_from(count).unwrap_or_default())
}
