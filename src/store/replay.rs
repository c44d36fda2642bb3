//! An operator's replays: a manual attempt of a delivery (a retry, or the
//! one attempt of an endpoint test), the recovery of an endpoint's failed
//! and cancelled deliveries in batches, and an endpoint's attempts.

use super::deliveries as delivery_rows;
use super::models::{AttemptRow, DeliveryRow};
use super::schema::{attempts, deliveries};
use super::{dispatch, endpoints, Db, StoreError};
use crate::core::delivery::lifecycle::{DeliveryState, StatusClass};
use diesel::prelude::*;

/// A manual attempt and the state it moves its delivery to.
#[derive(Debug, Clone)]
pub struct ManualWrite {
    pub attempt: AttemptRow,
    /// The state the delivery was in when the attempt started.
    pub former: DeliveryState,
    /// From [`crate::core::delivery::lifecycle::after_manual_attempt`].
    pub after: DeliveryState,
}

/// Stores a manual attempt and moves its delivery from `former` to
/// `after`; a delivery that something else moved meanwhile (its endpoint's
/// actor, an operator) stays as that left it. A delivery that stays in its
/// state is not touched: a pending one keeps its schedule and its count.
/// Returns the delivery as it now is.
pub fn record_manual_attempt(
    db: &mut Db,
    write: &ManualWrite,
    now: i64,
) -> Result<Option<DeliveryRow>, StoreError> {
    let delivery_id = &write.attempt.delivery_id;
    dispatch!(db, c => diesel::insert_into(attempts::table).values(&write.attempt).execute(c))?;
    if write.after != write.former {
        // `after` is a settled state here (succeeded or failed): no due time.
        dispatch!(db, c => diesel::update(deliveries::table
            .filter(deliveries::id.eq(delivery_id))
            .filter(deliveries::state.eq(write.former.as_str())))
            .set((
                deliveries::state.eq(write.after.as_str()),
                deliveries::attempt_count.eq(write.attempt.attempt),
                deliveries::next_attempt_at.eq(None::<i64>),
                deliveries::updated_at.eq(now),
            ))
            .execute(c))?;
    }
    Ok(dispatch!(db, c => deliveries::table
        .filter(deliveries::id.eq(delivery_id))
        .select(DeliveryRow::as_select())
        .first(c)
        .optional())?)
}

/// The states a recovery queues again.
pub const RECOVERABLE: [DeliveryState; 2] = [DeliveryState::Failed, DeliveryState::Cancelled];

/// Deliveries moved by one recovery batch: small enough that the writer,
/// which every ingestion and attempt result goes through, is held only
/// briefly, and that the ids read stay few.
pub const RECOVER_BATCH: i64 = 2000;

/// Created at or after `since`, and before `until` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub since: i64,
    pub until: Option<i64>,
}

/// What one recovery batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredBatch {
    pub moved: usize,
    /// The event time and id of the last delivery read, from which the next
    /// batch goes on; `None` when none was left.
    pub last: Option<(i64, String)>,
}

/// Queues again up to `limit` deliveries of the endpoint in state `from`
/// whose event was created in `window`, after `after` in (event time, id)
/// order. Each starts a fresh schedule, due at its event's time, so the
/// endpoint's actor sends them in event order. On a disabled endpoint
/// (disabled since the recovery began) they are held instead, to be
/// replayed when it is enabled.
pub fn recover_batch(
    db: &mut Db,
    endpoint_id: &str,
    from: DeliveryState,
    window: TimeWindow,
    after: Option<&(i64, String)>,
    limit: i64,
    now: i64,
) -> Result<RecoveredBatch, StoreError> {
    let active = endpoints::find_by_id(db, endpoint_id)?.is_some_and(|row| row.is_active());
    let rows = delivery_rows::in_creation_order(
        db,
        endpoint_id,
        from,
        Some(window.since),
        window.until,
        after,
        limit,
    )?;
    let Some((last_id, last_at)) = rows.last() else {
        return Ok(RecoveredBatch {
            moved: 0,
            last: None,
        });
    };
    let last = Some((*last_at, last_id.clone()));
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let chosen = deliveries::table
        .filter(deliveries::id.eq_any(&ids))
        .filter(deliveries::state.eq(from.as_str()));
    let moved = if active {
        dispatch!(db, c => diesel::update(chosen)
            .set((
                deliveries::state.eq(DeliveryState::Pending.as_str()),
                deliveries::attempt_count.eq(0),
                deliveries::next_attempt_at.eq(deliveries::created_at.nullable()),
                deliveries::updated_at.eq(now),
            ))
            .execute(c))?
    } else {
        dispatch!(db, c => diesel::update(chosen)
            .set((
                deliveries::state.eq(DeliveryState::Held.as_str()),
                deliveries::attempt_count.eq(0),
                deliveries::next_attempt_at.eq(None::<i64>),
                deliveries::updated_at.eq(now),
            ))
            .execute(c))?
    };
    Ok(RecoveredBatch { moved, last })
}

#[derive(Debug, Default, Clone)]
pub struct AttemptFilter {
    pub status_class: Option<StatusClass>,
    /// Started at or after (ms).
    pub since: Option<i64>,
    /// Started before (ms).
    pub until: Option<i64>,
}

/// The endpoint's attempts, newest first, after the attempt `before` (the
/// previous page's last). `None` when `before` is no attempt of this
/// endpoint.
pub fn attempts_of_endpoint(
    db: &mut Db,
    endpoint_id: &str,
    filter: &AttemptFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Option<Vec<AttemptRow>>, StoreError> {
    let cursor = match before {
        None => None,
        Some(id) => {
            let started_at: Option<i64> = dispatch!(db, c => attempts::table
                .filter(attempts::endpoint_id.eq(endpoint_id))
                .filter(attempts::id.eq(id))
                .select(attempts::started_at)
                .first(c)
                .optional())?;
            match started_at {
                Some(at) => Some((at, id)),
                None => return Ok(None),
            }
        }
    };
    let rows = dispatch!(db, c => {
        let mut query = attempts::table
            .filter(attempts::endpoint_id.eq(endpoint_id))
            .order((attempts::started_at.desc(), attempts::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = cursor {
            query = query.filter(
                attempts::started_at
                    .lt(at)
                    .or(attempts::started_at.eq(at).and(attempts::id.lt(id))),
            );
        }
        if let Some(since) = filter.since {
            query = query.filter(attempts::started_at.ge(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(attempts::started_at.lt(until));
        }
        match filter.status_class.map(StatusClass::codes) {
            Some(Some((low, high))) => query = query.filter(attempts::status_code.between(low, high)),
            Some(None) => query = query.filter(attempts::status_code.is_null()),
            None => {}
        }
        query.select(AttemptRow::as_select()).load(c)
    })?;
    Ok(Some(rows))
}

/// The delivery and what a manual attempt of it needs: its event's id,
/// type and body.
pub fn delivery_to_attempt(
    db: &mut Db,
    tenant_id: &str,
    delivery_id: &str,
) -> Result<Option<(DeliveryRow, super::models::EventRow)>, StoreError> {
    let Some(delivery) = delivery_rows::find(db, tenant_id, delivery_id)? else {
        return Ok(None);
    };
    let event = super::events::find(db, tenant_id, &delivery.event_id)?;
    Ok(event.map(|event| (delivery, event)))
}
