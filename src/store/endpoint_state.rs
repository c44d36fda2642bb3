//! An endpoint actor's units of work: load the endpoint's state and take it
//! over, read the next page of its queue, and change its status. Each runs
//! on a blocking thread (a page, on the read pool) or in the writer.

use super::models::{AlertRow, EndpointHealthRow};
use super::schema::{deliveries, events};
use super::{alerts, deliveries as delivery_rows, dispatch, endpoints, sequence, Db, StoreError};
use crate::core::delivery::lifecycle::{move_to_finish, BacklogMove, DeliveryState};
use crate::core::delivery::rescue::OnDisk;
use crate::core::endpoint_machine::{select_page, HealthState, Page, PageOrder, QueuedDelivery};
use crate::core::health::failure_policy::DisableReason;
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

/// What an endpoint actor starts from.
#[derive(Debug, Clone)]
pub struct SavedState {
    pub active: bool,
    pub health: Option<HealthState>,
    /// The backlog move to finish, in batches ([`move_batch`]).
    pub unfinished: Option<BacklogMove>,
    /// When each threshold last raised `endpoint.failing`, if since the
    /// `alerts_since` given to [`load`].
    pub failing_alerts: Vec<(u32, i64)>,
    /// Every delivery committed before the read is numbered up to this
    /// (see [`sequence::high_water`]).
    pub numbered_up_to: i64,
}

/// Reads the endpoint's status, health and the backlog move a crash (or a
/// failed write) interrupted. Deliveries left in the wrong state by a
/// fan-out that raced a status change are settled by a move too: held rows
/// of an active endpoint are replayed, pending rows of a disabled one held.
/// Runs in the writer, so it is ordered with the actor's own writes; moves
/// nothing itself, so it stays short whatever the backlog.
pub fn load(
    db: &mut Db,
    endpoint_id: &str,
    alerts_since: i64,
    now: i64,
) -> Result<SavedState, StoreError> {
    let active = endpoints::find_by_id(db, endpoint_id)?.is_some_and(|row| row.is_active());
    let health = endpoints::load_health(db, endpoint_id)?.map(|row| HealthState {
        streak: row.streak(),
        breaker: row.breaker(),
    });
    let recorded = endpoints::backlog_move(db, endpoint_id)?;
    let unfinished = move_to_finish(active, recorded.map(|(kind, _)| kind), |state| {
        delivery_rows::any_in_state(db, endpoint_id, state)
    })?;
    if unfinished != recorded.map(|(kind, _)| kind) {
        if unfinished.is_some() {
            log::warn!("endpoint {endpoint_id}: settling deliveries stranded by a status change");
        }
        endpoints::set_backlog_move(db, endpoint_id, unfinished.map(|kind| (kind, now)))?;
    }
    let failing_alerts = alerts::last_failing(db, endpoint_id, alerts_since)?;
    Ok(SavedState {
        active,
        health,
        unfinished,
        failing_alerts,
        numbered_up_to: sequence::high_water(db)?,
    })
}

/// Disables the endpoint by hand: the status, the alert and the hold of its
/// pending deliveries, which [`move_batch`] then carries out.
pub fn disable(
    db: &mut Db,
    endpoint_id: &str,
    alert: &AlertRow,
    now: i64,
) -> Result<(), StoreError> {
    endpoints::set_status(db, endpoint_id, Some(DisableReason::Manual), now)?;
    endpoints::set_backlog_move(db, endpoint_id, Some((BacklogMove::Hold, now)))?;
    alerts::insert(db, std::slice::from_ref(alert))
}

/// What becomes of held deliveries when an endpoint is enabled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Queue them again, in their original order.
    Held,
    /// Cancel them (they stay visible).
    None,
}

impl Replay {
    pub fn backlog_move(self) -> BacklogMove {
        match self {
            Replay::Held => BacklogMove::Replay,
            Replay::None => BacklogMove::Cancel,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnableOutcome {
    pub replayed: usize,
    pub cancelled: usize,
}

impl EnableOutcome {
    pub fn to_move(&self) -> usize {
        self.replayed + self.cancelled
    }
}

/// Enables the endpoint (`reset`: it was disabled; save the fresh health
/// and the alert), counts its held deliveries and records their replay or
/// cancellation, which [`move_batch`] then carries out.
pub fn enable(
    db: &mut Db,
    endpoint_id: &str,
    reset: Option<(&EndpointHealthRow, &AlertRow)>,
    replay: Replay,
    now: i64,
) -> Result<EnableOutcome, StoreError> {
    if let Some((health, alert)) = reset {
        endpoints::set_status(db, endpoint_id, None, now)?;
        endpoints::save_health(db, health)?;
        alerts::insert(db, std::slice::from_ref(alert))?;
    }
    let held = delivery_rows::count_in_state(db, endpoint_id, DeliveryState::Held)?;
    let held = usize::try_from(held).unwrap_or(usize::MAX);
    let kind = replay.backlog_move();
    let under_way = (held > 0).then_some((kind, now));
    endpoints::set_backlog_move(db, endpoint_id, under_way)?;
    Ok(match replay {
        Replay::Held => EnableOutcome {
            replayed: held,
            cancelled: 0,
        },
        Replay::None => EnableOutcome {
            replayed: 0,
            cancelled: held,
        },
    })
}

/// One batch of the endpoint's backlog move `kind`, in a writer job of its
/// own: at most `limit` rows, after where the previous batch ended (recorded
/// with it, so that a restart goes on from there too). The batch that finds
/// fewer rows than that ends the move, in the same transaction. Returns whether more are left;
/// `false` as well when `kind` is no longer the move recorded (a restart
/// or a later status change took over).
pub fn move_batch(
    db: &mut Db,
    endpoint_id: &str,
    kind: BacklogMove,
    limit: usize,
    now: i64,
) -> Result<bool, StoreError> {
    let Some((recorded, due_at)) = endpoints::backlog_move(db, endpoint_id)? else {
        return Ok(false);
    };
    if recorded != kind {
        return Ok(false);
    }
    let after = endpoints::backlog_move_after(db, endpoint_id)?;
    let batch =
        delivery_rows::move_batch(db, endpoint_id, kind, limit, due_at, after.as_ref(), now)?;
    if batch.moved < limit {
        endpoints::set_backlog_move(db, endpoint_id, None)?;
        return Ok(false);
    }
    if let Some(last) = &batch.last {
        endpoints::set_backlog_move_after(db, endpoint_id, last)?;
    }
    Ok(true)
}

/// Event bodies held in memory, shared by every delivery that needs one:
/// a page reuses a body another actor already holds instead of reading a
/// second copy. Entries die with the last delivery that holds the body.
#[derive(Clone, Default)]
pub struct BodyCache {
    bodies: Arc<Mutex<HashMap<EventKey, Weak<str>>>>,
}

/// Tenant id and event id.
type EventKey = (String, String);

/// Entries (mostly dead) beyond which the cache is swept.
const CACHE_SWEEP_AT: usize = 4096;

impl BodyCache {
    fn get(&self, tenant_id: &str, event_id: &str) -> Option<Arc<str>> {
        let bodies = self.bodies.lock().ok()?;
        bodies
            .get(&(tenant_id.to_owned(), event_id.to_owned()))
            .and_then(Weak::upgrade)
    }

    fn put(&self, tenant_id: &str, event_id: &str, body: &Arc<str>) {
        let Ok(mut bodies) = self.bodies.lock() else {
            return;
        };
        if bodies.len() >= CACHE_SWEEP_AT {
            bodies.retain(|_, body| body.strong_count() > 0);
            let live = bodies.len();
            bodies.shrink_to(live * 2);
        }
        bodies.insert(
            (tenant_id.to_owned(), event_id.to_owned()),
            Arc::downgrade(body),
        );
    }
}

type PageRow = (String, String, String, i32, Option<i64>, i64, String, i32);

/// Pending deliveries joined to their events: what a page and a hand-over
/// read. A macro, as diesel types a query by its every clause.
macro_rules! pending_with_events {
    () => {
        deliveries::table
            .inner_join(
                events::table.on(events::tenant_id
                    .eq(deliveries::tenant_id)
                    .and(events::id.eq(deliveries::event_id))),
            )
            .filter(delivery_rows::state_is(DeliveryState::Pending))
    };
}

/// The columns of a [`PageRow`], `$size` the body's size in SQL.
macro_rules! page_columns {
    ($size:expr) => {
        (
            deliveries::id,
            deliveries::tenant_id,
            deliveries::event_id,
            deliveries::attempt_count,
            deliveries::next_attempt_at,
            deliveries::seq,
            events::event_type,
            diesel::dsl::sql::<diesel::sql_types::Integer>($size),
        )
    };
}

/// The next page of the endpoint's pending deliveries in `order` (earliest
/// due first, or in event order): at most `limit` deliveries and
/// `byte_budget` bytes of bodies, skipping the ids in `exclude` (already in
/// memory). Bodies come from `cache` when another delivery holds them, else
/// from one query for the whole page.
pub fn next_page(
    db: &mut Db,
    endpoint_id: &str,
    order: PageOrder,
    limit: usize,
    byte_budget: usize,
    exclude: &HashSet<String>,
    cache: &BodyCache,
) -> Result<Page, StoreError> {
    let wanted = limit.saturating_add(exclude.len());
    let pending = pending_with_events!()
        .filter(deliveries::endpoint_id.eq(endpoint_id))
        .select(page_columns!("CAST(LENGTH(events.body) AS INTEGER)"))
        .limit(i64::try_from(wanted).unwrap_or(i64::MAX));
    // The indexes (endpoint_id, state, next_attempt_at, id) and
    // (endpoint_id, state, seq) serve these.
    let rows: Vec<PageRow> = match order {
        PageOrder::Due => dispatch!(db, c => pending
            .order((deliveries::next_attempt_at, deliveries::id))
            .load(c))?,
        PageOrder::Line => dispatch!(db, c => pending
            .order((deliveries::seq, deliveries::id))
            .load(c))?,
    };
    let sizes: Vec<(String, i64, usize)> = rows
        .iter()
        .map(|(id, _, _, _, due_at, seq, _, size)| {
            let key = match order {
                PageOrder::Due => due_at.unwrap_or_default(),
                PageOrder::Line => *seq,
            };
            (id.clone(), key, usize::try_from(*size).unwrap_or_default())
        })
        .collect();
    let (taken, mut more_from) = select_page(&sizes, exclude, limit, byte_budget);
    if more_from.is_none() && rows.len() >= wanted {
        // The page ended at the query's limit: more may follow on disk.
        more_from = sizes.last().map(|(_, key, _)| *key);
    }
    let taken: Vec<&PageRow> = taken.iter().filter_map(|&i| rows.get(i)).collect();
    let bodies = bodies_of(db, &taken, cache)?;
    let deliveries = taken
        .into_iter()
        .filter_map(|row| queued(row, &bodies))
        .collect();
    Ok(Page {
        deliveries,
        more_from,
    })
}

/// Those of the deliveries `ids` still pending, by endpoint, as an actor
/// takes them in a hand-over: deliveries another instance published for
/// endpoints this one owns. One look by primary key each; bodies as in
/// [`next_page`].
pub fn pending_by_ids(
    db: &mut Db,
    ids: &[String],
    cache: &BodyCache,
) -> Result<Vec<(String, QueuedDelivery)>, StoreError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        // The size is not needed: a hand-over is not budgeted as a page is.
        let rows: Vec<(String, PageRow)> = dispatch!(db, c => pending_with_events!()
            .filter(deliveries::id.eq_any(chunk))
            .select((deliveries::endpoint_id, page_columns!("0")))
            .load(c))?;
        let pages: Vec<&PageRow> = rows.iter().map(|(_, row)| row).collect();
        let bodies = bodies_of(db, &pages, cache)?;
        found.extend(
            rows.iter()
                .filter_map(|(endpoint, row)| Some((endpoint.clone(), queued(row, &bodies)?))),
        );
    }
    Ok(found)
}

/// A page's row as the window holds it, with its body.
fn queued(row: &PageRow, bodies: &HashMap<EventKey, Arc<str>>) -> Option<QueuedDelivery> {
    let (id, tenant_id, event_id, attempt_count, due_at, seq, event_type, _) = row;
    let body = bodies.get(&(tenant_id.clone(), event_id.clone()))?;
    Some(QueuedDelivery {
        id: id.clone(),
        event_id: event_id.clone(),
        body: Arc::clone(body),
        attempt_count: u32::try_from(*attempt_count).unwrap_or_default(),
        due_at: due_at.unwrap_or_default(),
        seq: *seq,
        event_type: Arc::from(event_type.as_str()),
    })
}

/// The bodies of the page's events: from the cache, else read once each.
fn bodies_of(
    db: &mut Db,
    rows: &[&PageRow],
    cache: &BodyCache,
) -> Result<HashMap<EventKey, Arc<str>>, StoreError> {
    let mut bodies = HashMap::new();
    let mut missing: HashMap<String, Vec<String>> = HashMap::new();
    for (_, tenant_id, event_id, ..) in rows {
        let key = (tenant_id.clone(), event_id.clone());
        if bodies.contains_key(&key) {
            continue;
        }
        match cache.get(tenant_id, event_id) {
            Some(body) => {
                bodies.insert(key, body);
            }
            None => missing
                .entry(tenant_id.clone())
                .or_default()
                .push(event_id.clone()),
        }
    }
    for (tenant_id, mut event_ids) in missing {
        event_ids.sort_unstable();
        event_ids.dedup();
        let read: Vec<(String, String)> = dispatch!(db, c => events::table
            .filter(events::tenant_id.eq(&tenant_id))
            .filter(events::id.eq_any(&event_ids))
            .select((events::id, events::body))
            .load(c))?;
        for (event_id, body) in read {
            let body: Arc<str> = Arc::from(body);
            cache.put(&tenant_id, &event_id, &body);
            bodies.insert((tenant_id.clone(), event_id), body);
        }
    }
    Ok(bodies)
}

/// Those of `ids` that have deliveries waiting (pending, or held and maybe
/// stranded): their actors start at once, the others when first needed.
/// One look into the waiting deliveries' index per endpoint, whatever the
/// backlogs.
pub fn with_work_among(db: &mut Db, ids: &[&str]) -> Result<Vec<String>, StoreError> {
    use super::schema::endpoints as endpoint_table;
    let waiting = diesel::dsl::sql::<diesel::sql_types::Bool>(
        "EXISTS (SELECT 1 FROM deliveries WHERE deliveries.endpoint_id = endpoints.id \
         AND (deliveries.state = 'pending' OR deliveries.state = 'held'))",
    );
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        let some: Vec<String> = dispatch!(db, c => endpoint_table::table
            .filter(endpoint_table::id.eq_any(chunk))
            .filter(waiting.clone())
            .select(endpoint_table::id)
            .load(c))?;
        found.extend(some);
    }
    Ok(found)
}

/// What the rescue sweep reads of each endpoint after `after` (by id), at
/// most `limit` of them: its status, whether a backlog move is under way,
/// whether a `pending` delivery was due before `due_before`, and whether a
/// `held` one waits. Each probe is one look into the waiting deliveries'
/// index, so a batch costs the same whatever the backlogs.
pub fn rescue_batch(
    db: &mut Db,
    after: &str,
    limit: i64,
    due_before: i64,
) -> Result<Vec<(String, OnDisk)>, StoreError> {
    use super::schema::endpoints as endpoint_table;
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool};
    let due_pending = sql::<Bool>(
        "EXISTS (SELECT 1 FROM deliveries WHERE deliveries.endpoint_id = endpoints.id \
         AND deliveries.state = 'pending' AND deliveries.next_attempt_at < ",
    )
    .bind::<BigInt, _>(due_before)
    .sql(")");
    let held = sql::<Bool>(
        "EXISTS (SELECT 1 FROM deliveries WHERE deliveries.endpoint_id = endpoints.id \
         AND deliveries.state = 'held')",
    );
    let rows: Vec<(String, String, Option<String>, bool, bool)> = dispatch!(db, c => endpoint_table::table
            .filter(endpoint_table::id.gt(after))
            .order(endpoint_table::id)
            .limit(limit)
            .select((
                endpoint_table::id,
                endpoint_table::status,
                endpoint_table::backlog_move,
                due_pending.clone(),
                held.clone(),
            ))
            .load(c))?;
    Ok(rows
        .into_iter()
        .map(|(id, status, backlog_move, due_pending, held)| {
            let on_disk = OnDisk {
                active: status == endpoints::ACTIVE,
                moving: backlog_move.is_some(),
                due_pending,
                held,
            };
            (id, on_disk)
        })
        .collect())
}

/// Whether the endpoint is active as committed (`None`: it is gone).
pub fn is_active(db: &mut Db, endpoint_id: &str) -> Result<Option<bool>, StoreError> {
    use super::schema::endpoints as endpoint_table;
    let status: Option<String> = dispatch!(db, c => endpoint_table::table
        .find(endpoint_id)
        .select(endpoint_table::status)
        .first(c)
        .optional())?;
    Ok(status.map(|status| status == endpoints::ACTIVE))
}
