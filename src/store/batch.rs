//! The writer's batches: every ingestion and every attempt result of one
//! group commit, written together.
//!
//! On PostgreSQL each statement costs a network round trip, so a batch is
//! written with a few set-based statements whatever its size. SQLite runs
//! in-process, where a statement costs no round trip, so it keeps the
//! per-row functions ([`events::ingest`], [`deliveries::record_attempt`]).

use super::deliveries::{self, AttemptWrite};
use super::events::{self, Ingested, WrittenDelivery};
use super::models::{AttemptRow, DeliveryRow, EventRow};
use super::schema::{deliveries as delivery_table, events as event_table};
use super::{alerts, endpoints, leases, sequence, Db, StoreError};
use crate::core::delivery::lifecycle::{BacklogMove, DeliveryState};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use diesel::PgConnection;
use std::collections::{HashMap, HashSet};

/// PostgreSQL takes at most 65,535 bind parameters a statement; this many
/// events (6 columns each) stay under it. Deliveries and attempts go as one
/// array a column, which has no such bound.
const EVENTS_PER_INSERT: usize = 65_535 / 6;

/// One ingestion of a batch: the event and the deliveries of its fan-out.
pub struct IngestInput<'a> {
    pub event: &'a EventRow,
    pub deliveries: &'a [DeliveryRow],
}

/// Ingests every input, in order, as [`events::ingest`] would one by one:
/// a later input with the id or idempotency key of an earlier one (or of a
/// stored event) is a duplicate; deliveries to endpoints that no longer
/// exist are skipped.
pub fn ingest(db: &mut Db, inputs: &[IngestInput<'_>]) -> Result<Vec<Ingested>, StoreError> {
    if let Db::Postgres(c) = db {
        return ingest_together(c, inputs);
    }
    inputs
        .iter()
        .map(|input| events::ingest(db, input.event, input.deliveries))
        .collect()
}

/// Writes every attempt: the attempt rows and the deliveries' new states
/// first, then, per attempt and in order, the health, alerts and disabling
/// it carries. Returns, for each write, whether it was fenced off: its
/// endpoint's lease is no longer its maker's (see [`leases::Fence`]), so it
/// changed nothing.
///
/// Attempts of an endpoint deleted while they were in flight are left out
/// too, but as written: their deliveries went with the endpoint, and their
/// rows would break a foreign key and so spoil every other write of the
/// group. An endpoint is deleted by a writer call, which never overlaps a
/// batch, so one that exists here still exists at the commit.
pub fn record_attempts(
    db: &mut Db,
    writes: &[&AttemptWrite],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let named: Vec<&str> = writes
        .iter()
        .filter_map(|write| write.record.attempt.endpoint_id.as_deref())
        .collect();
    let existing = endpoints::existing(db, &named)?;
    let fenced = fenced_off(db, writes)?;
    let kept: Vec<&AttemptWrite> = writes
        .iter()
        .zip(&fenced)
        .filter(|(_, fenced)| !**fenced)
        .map(|(write, _)| *write)
        .filter(|write| {
            write
                .record
                .attempt
                .endpoint_id
                .as_deref()
                .is_none_or(|id| existing.contains(id))
        })
        .collect();
    match db {
        Db::Postgres(c) => record_together(c, &kept, now)?,
        Db::Sqlite(_) => {
            for write in &kept {
                deliveries::record_attempt(db, &write.record, now)?;
            }
        }
    }
    for write in &kept {
        extras(db, write, now)?;
    }
    Ok(fenced)
}

/// For each write, whether its fence fails; the leases of the others stay
/// locked until the commit. Every fenced write of one batch names the same
/// owner, this instance.
fn fenced_off(db: &mut Db, writes: &[&AttemptWrite]) -> Result<Vec<bool>, StoreError> {
    let fences: Vec<&leases::Fence> = writes.iter().filter_map(|w| w.fence.as_ref()).collect();
    let Some(first) = fences.first() else {
        return Ok(vec![false; writes.len()]);
    };
    let wanted: Vec<(&str, i64)> = fences
        .iter()
        .map(|fence| (fence.endpoint_id.as_str(), fence.epoch))
        .collect();
    let held = leases::held(db, &first.owner, &wanted)?;
    Ok(writes
        .iter()
        .map(|write| {
            write
                .fence
                .as_ref()
                .is_some_and(|fence| !held.contains(&fence.endpoint_id))
        })
        .collect())
}

/// What identifies an inserted event among the inputs (see [`ingest_together`]).
type EventKey = (String, String, Option<String>);

fn key_of(event: &EventRow) -> EventKey {
    (
        event.tenant_id.clone(),
        event.id.clone(),
        event.idempotency_key.clone(),
    )
}

/// [`ingest`] on PostgreSQL: one insert of the events, one insert of the
/// deliveries (which locks their endpoints), and two lookups when some input
/// turned out a duplicate.
fn ingest_together(
    c: &mut PgConnection,
    inputs: &[IngestInput<'_>],
) -> Result<Vec<Ingested>, StoreError> {
    let events: Vec<&EventRow> = inputs.iter().map(|input| input.event).collect();
    // PostgreSQL inserts the rows in the order given and skips a row that
    // conflicts with one inserted before it, so the inputs written are those
    // one-by-one ingestion would write.
    let mut inserted: HashSet<EventKey> = HashSet::new();
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let keys: Vec<EventKey> = diesel::insert_into(event_table::table)
            .values(chunk.to_vec())
            .on_conflict_do_nothing()
            .returning((
                event_table::tenant_id,
                event_table::id,
                event_table::idempotency_key,
            ))
            .get_results(c)?;
        inserted.extend(keys);
    }
    // Of inputs alike in tenant, id and key, only the first can have been
    // inserted: each later one conflicts with it or with what it conflicted
    // with. Taking the key out gives it to that first one only.
    let is_new: Vec<bool> = events
        .iter()
        .map(|event| inserted.remove(&key_of(event)))
        .collect();

    let rows: Vec<&DeliveryRow> = inputs
        .iter()
        .zip(&is_new)
        .filter(|(_, new)| **new)
        .flat_map(|(input, _)| input.deliveries)
        .collect();
    let stored = insert_deliveries(c, &rows)?;

    // After the deliveries, so an original ingested earlier in this batch
    // is counted with its deliveries, as one by one.
    let mut originals = find_originals(c, &events, &is_new)?.into_iter();

    let mut outcomes = Vec::with_capacity(inputs.len());
    for (input, new) in inputs.iter().zip(is_new) {
        if new {
            let deliveries = input
                .deliveries
                .iter()
                .filter_map(|row| stored.get(&row.id).cloned())
                .collect();
            outcomes.push(Ingested::New { deliveries });
        } else {
            let (event_id, deliveries) = originals.next().ok_or_else(|| {
                StoreError::Corrupt("a duplicate event without its original".to_owned())
            })?;
            outcomes.push(Ingested::Duplicate {
                event_id,
                deliveries,
            });
        }
    }
    Ok(outcomes)
}

/// Inserts the deliveries whose endpoint still exists, in one statement
/// (a round trip, and one plan, whatever their number: columns go as
/// arrays), and returns them by id as they were written. The
/// endpoints are locked first (`FOR SHARE`), so one deleted meanwhile has
/// its deliveries skipped instead of failing the batch, and each waiting
/// delivery is stored `pending` or `held` by its endpoint's status as
/// committed (see [`super::events::stored_as`]), not by the fan-out's guess.
fn insert_deliveries(
    c: &mut PgConnection,
    rows: &[&DeliveryRow],
) -> Result<HashMap<String, WrittenDelivery>, StoreError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let mut endpoint_ids: Vec<&str> = rows.iter().map(|row| row.endpoint_id.as_str()).collect();
    // Before the status read's weaker lock (see `events::write`).
    let numbers = sequence::take_locking(c, &endpoint_ids, rows.len())?;
    endpoint_ids.sort_unstable();
    endpoint_ids.dedup();
    let stored: Vec<StoredDelivery> = diesel::sql_query(
        "WITH live AS (SELECT id, status = 'active' AS active FROM endpoints \
             WHERE id = ANY($10::text[]) FOR SHARE) \
         INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, state, attempt_count, \
             next_attempt_at, created_at, updated_at, seq) \
         SELECT new.id, new.tenant_id, new.event_id, new.endpoint_id, \
             CASE WHEN new.state NOT IN ('pending', 'held') THEN new.state \
                 WHEN live.active THEN 'pending' ELSE 'held' END, \
             new.attempt_count, \
             CASE WHEN new.state NOT IN ('pending', 'held') THEN new.next_attempt_at \
                 WHEN live.active THEN new.created_at END, \
             new.created_at, new.updated_at, new.seq \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::int4[], $7::int8[], $8::int8[], $9::int8[], $11::int8[]) \
             AS new (id, tenant_id, event_id, endpoint_id, state, attempt_count, \
                 next_attempt_at, created_at, updated_at, seq) \
         JOIN live ON live.id = new.endpoint_id \
         RETURNING id, state, seq",
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.tenant_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.endpoint_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.attempt_count).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(endpoint_ids)
    .bind::<Array<BigInt>, _>(numbers)
    .load(c)?;
    Ok(stored
        .into_iter()
        .map(|row| {
            let written = WrittenDelivery {
                held: row.state == DeliveryState::Held.as_str(),
                id: row.id,
                seq: row.seq,
            };
            (written.id.clone(), written)
        })
        .collect())
}

/// A delivery as `RETURNING id, state, seq` gives it.
#[derive(QueryableByName)]
struct StoredDelivery {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// For each event not inserted (`is_new` false), in order: the id of the
/// event it repeats and that event's delivery count. As [`events::ingest`]
/// looks at its turn, the original is the event with its id, else the one
/// with its idempotency key, among those stored before it: an event this
/// batch inserted after it does not count.
fn find_originals(
    c: &mut PgConnection,
    events: &[&EventRow],
    is_new: &[bool],
) -> Result<Vec<(String, usize)>, StoreError> {
    let mut duplicates = Vec::new();
    let mut inserted_at = HashMap::new();
    for (position, (event, new)) in events.iter().zip(is_new).enumerate() {
        if *new {
            inserted_at.insert((event.tenant_id.as_str(), event.id.as_str()), position);
        } else {
            duplicates.push((position, *event));
        }
    }
    if duplicates.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = duplicates
        .iter()
        .map(|(_, e)| e.tenant_id.as_str())
        .collect();
    let ids: Vec<&str> = duplicates.iter().map(|(_, e)| e.id.as_str()).collect();
    let keys: Vec<&str> = duplicates
        .iter()
        .filter_map(|(_, e)| e.idempotency_key.as_deref())
        .collect();
    // Wider than needed (any tenant with any id); matched exactly below.
    let stored: Vec<EventKey> = event_table::table
        .filter(event_table::tenant_id.eq_any(&tenants))
        .filter(
            event_table::id
                .eq_any(&ids)
                .nullable()
                .or(event_table::idempotency_key.eq_any(&keys)),
        )
        .select((
            event_table::tenant_id,
            event_table::id,
            event_table::idempotency_key,
        ))
        .load(c)?;
    let mut by_id = HashMap::new();
    let mut by_key = HashMap::new();
    for (tenant, id, key) in &stored {
        by_id.insert((tenant.as_str(), id.as_str()), id.as_str());
        if let Some(key) = key {
            by_key.insert((tenant.as_str(), key.as_str()), id.as_str());
        }
    }
    let originals: Vec<(&str, &str)> = duplicates
        .iter()
        .map(|(position, event)| {
            let tenant = event.tenant_id.as_str();
            let id = (tenant, event.id.as_str());
            // An event with this id inserted after it did not exist at its
            // turn: it was refused for its key, so the key finds the original.
            let earlier = inserted_at.get(&id).is_none_or(|at| at < position);
            let by_id = by_id.get(&id).filter(|_| earlier);
            let found = by_id.or_else(|| {
                let key = event.idempotency_key.as_deref()?;
                by_key.get(&(tenant, key))
            });
            match found {
                Some(original) => Ok((tenant, *original)),
                None => Err(StoreError::Corrupt(format!(
                    "event {} was not inserted, yet no event before it has its id or key",
                    event.id
                ))),
            }
        })
        .collect::<Result<_, StoreError>>()?;

    let original_ids: Vec<&str> = originals.iter().map(|(_, id)| *id).collect();
    let counted: Vec<(String, String, i64)> = delivery_table::table
        .filter(delivery_table::tenant_id.eq_any(&tenants))
        .filter(delivery_table::event_id.eq_any(&original_ids))
        .group_by((delivery_table::tenant_id, delivery_table::event_id))
        .select((
            delivery_table::tenant_id,
            delivery_table::event_id,
            diesel::dsl::count_star(),
        ))
        .load(c)?;
    let counts: HashMap<(&str, &str), i64> = counted
        .iter()
        .map(|(tenant, event, count)| ((tenant.as_str(), event.as_str()), *count))
        .collect();
    Ok(originals
        .into_iter()
        .map(|(tenant, id)| {
            let count = counts.get(&(tenant, id)).copied().unwrap_or(0);
            (id.to_owned(), usize::try_from(count).unwrap_or_default())
        })
        .collect())
}

/// [`record_attempts`]' rows and states on PostgreSQL, in one statement:
/// the insert of the attempts and the update of the deliveries, under the
/// rule of [`deliveries::record_attempt`]: a delivery settled while its
/// attempt was in flight stays settled.
fn record_together(
    c: &mut PgConnection,
    writes: &[&AttemptWrite],
    now: i64,
) -> Result<(), StoreError> {
    let rows: Vec<&AttemptRow> = writes.iter().map(|w| &w.record.attempt).collect();
    // One by one, a delivery attempted twice in a batch ends with its last
    // attempt's state; `UPDATE … FROM` would apply either, so only the last
    // is kept.
    let mut last = HashMap::new();
    for write in writes {
        last.insert(write.record.attempt.delivery_id.as_str(), &write.record);
    }
    let mut ids = Vec::with_capacity(last.len());
    let mut states = Vec::with_capacity(last.len());
    let mut attempt_counts = Vec::with_capacity(last.len());
    let mut due = Vec::with_capacity(last.len());
    for (id, record) in last {
        ids.push(id);
        states.push(record.state.as_str());
        attempt_counts.push(record.attempt.attempt);
        due.push(record.next_attempt_at);
    }
    diesel::sql_query(
        "WITH recorded AS ( \
             INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, \
                 status_code, response_headers, response_body, error_kind, error_message, \
                 endpoint_id, instance) \
             SELECT * FROM unnest($7::text[], $8::text[], $9::int4[], $10::int8[], \
                 $11::int8[], $12::int4[], $13::text[], $14::text[], $15::text[], \
                 $16::text[], $17::text[], $18::text[])) \
         UPDATE deliveries SET state = new.state, attempt_count = new.attempt_count, \
             next_attempt_at = new.next_attempt_at, updated_at = $5 \
         FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[]) \
             AS new (id, state, attempt_count, next_attempt_at) \
         WHERE deliveries.id = new.id AND deliveries.state = ANY($6::text[])",
    )
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Text>, _>(states)
    .bind::<Array<Integer>, _>(attempt_counts)
    .bind::<Array<Nullable<BigInt>>, _>(due)
    .bind::<BigInt, _>(now)
    .bind::<Array<Text>, _>(deliveries::UNSETTLED.to_vec())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.delivery_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind::<Array<Nullable<Integer>>, _>(rows.iter().map(|r| r.status_code).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.response_headers.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.response_body.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.error_kind.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.error_message.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.endpoint_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.instance.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(c)?;
    Ok(())
}

/// What an attempt writes besides its own row and its delivery's state.
fn extras(db: &mut Db, write: &AttemptWrite, now: i64) -> Result<(), StoreError> {
    if let Some(health) = &write.health {
        endpoints::save_health(db, health)?;
    }
    alerts::insert(db, &write.alerts)?;
    if let Some(reason) = write.disable {
        let Some(endpoint_id) = write.record.attempt.endpoint_id.as_deref() else {
            return Err(StoreError::Corrupt(
                "an attempt that disables its endpoint names no endpoint".to_owned(),
            ));
        };
        endpoints::set_status(db, endpoint_id, Some(reason), now)?;
        // The endpoint's actor holds its pending deliveries in batches.
        endpoints::set_backlog_move(db, endpoint_id, Some((BacklogMove::Hold, now)))?;
    }
    Ok(())
}
