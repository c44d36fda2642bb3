//! The deletes of the retention sweep, one batch per writer job (see
//! `core::delivery::retention` for what is due and when).

use super::schema::{attempts, deliveries, events};
use super::{deliveries as delivery_rows, dispatch, Db, StoreError};
use crate::core::delivery::lifecycle::DeliveryState;
use crate::core::delivery::retention::{Batch, BatchOutcome, EventKey};
use diesel::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// Runs one batch of the sweep.
pub fn delete_batch(db: &mut Db, batch: &Batch) -> Result<BatchOutcome, StoreError> {
    match batch {
        Batch::Deliveries {
            states,
            before,
            limit,
        } => delete_deliveries(db, states, *before, *limit),
        Batch::Events {
            before,
            after,
            limit,
        } => delete_unreferenced_events(db, *before, after.as_ref(), *limit),
    }
}

/// Deletes up to `limit` deliveries in one of `states` last changed before
/// `before`, and their attempts.
fn delete_deliveries(
    db: &mut Db,
    states: &[DeliveryState],
    before: i64,
    limit: usize,
) -> Result<BatchOutcome, StoreError> {
    let mut ids: Vec<String> = Vec::new();
    // One state at a time, inlined: so the partial index of finished
    // deliveries serves each (see `deliveries::state_is`).
    for &state in states {
        let wanted = i64::try_from(limit.saturating_sub(ids.len())).unwrap_or(i64::MAX);
        if wanted == 0 {
            break;
        }
        let found: Vec<String> = dispatch!(db, c => deliveries::table
            .filter(delivery_rows::state_is(state))
            .filter(deliveries::updated_at.lt(before))
            .select(deliveries::id)
            .limit(wanted)
            .load(c))?;
        ids.extend(found);
    }
    if ids.is_empty() {
        return Ok(BatchOutcome {
            rows: 0,
            deleted: 0,
            last_event: None,
        });
    }
    let states: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
    dispatch!(db, c => diesel::delete(attempts::table.filter(attempts::delivery_id.eq_any(&ids)))
        .execute(c))?;
    // The state is checked again: only finished deliveries ever go.
    let deleted = dispatch!(db, c => diesel::delete(deliveries::table
        .filter(deliveries::id.eq_any(&ids))
        .filter(deliveries::state.eq_any(&states)))
        .execute(c))?;
    Ok(BatchOutcome {
        rows: ids.len(),
        deleted,
        last_event: None,
    })
}

/// Looks at up to `limit` events created before `before`, after `after` in
/// the order (created_at, tenant_id, id), and deletes those no delivery
/// refers to. Deliveries are only ever created with their event, so one
/// found without any now never gets one later.
fn delete_unreferenced_events(
    db: &mut Db,
    before: i64,
    after: Option<&EventKey>,
    limit: usize,
) -> Result<BatchOutcome, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let scanned: Vec<(i64, String, String)> = dispatch!(db, c => {
        let mut query = events::table
            .filter(events::created_at.lt(before))
            .order((events::created_at, events::tenant_id, events::id))
            .select((events::created_at, events::tenant_id, events::id))
            .limit(limit)
            .into_boxed();
        if let Some(key) = after {
            query = query.filter(
                events::created_at.gt(key.created_at).or(events::created_at
                    .eq(key.created_at)
                    .and(events::tenant_id.gt(&key.tenant_id).or(events::tenant_id
                        .eq(&key.tenant_id)
                        .and(events::id.gt(&key.id))))),
            );
        }
        query.load(c)
    })?;
    let Some(last) = scanned.last() else {
        return Ok(BatchOutcome {
            rows: 0,
            deleted: 0,
            last_event: None,
        });
    };
    let last_event = Some(EventKey {
        created_at: last.0,
        tenant_id: last.1.clone(),
        id: last.2.clone(),
    });
    let mut deleted = 0;
    let mut by_tenant: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, tenant_id, id) in &scanned {
        by_tenant.entry(tenant_id).or_default().push(id);
    }
    for (tenant_id, ids) in by_tenant {
        let referenced: HashSet<String> = dispatch!(db, c => deliveries::table
            .filter(deliveries::tenant_id.eq(tenant_id))
            .filter(deliveries::event_id.eq_any(&ids))
            .select(deliveries::event_id)
            .distinct()
            .load::<String>(c))?
        .into_iter()
        .collect();
        let unreferenced: Vec<&str> = ids
            .into_iter()
            .filter(|id| !referenced.contains(*id))
            .collect();
        if !unreferenced.is_empty() {
            deleted += dispatch!(db, c => diesel::delete(events::table
                .filter(events::tenant_id.eq(tenant_id))
                .filter(events::id.eq_any(&unreferenced)))
                .execute(c))?;
        }
    }
    Ok(BatchOutcome {
        rows: scanned.len(),
        deleted,
        last_event,
    })
}
