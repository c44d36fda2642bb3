//! The writer's set-based statements: every ingestion and every plain
//! attempt result of one group commit written together.
//!
//! On PostgreSQL each statement costs a round trip, so a batch is written
//! with a few statements over arrays (`unnest`). SQLite runs in-process,
//! where a prepared statement per row is as fast, so it keeps those.

use super::deliveries::{self, AttemptWrite};
use super::events::{self, Ingested};
use super::models::{DeliveryRow, EventRow};
use super::{alerts, endpoints, Db, StoreError};

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
    inputs
        .iter()
        .map(|input| events::ingest(db, input.event, input.deliveries))
        .collect()
}

/// Writes every attempt: the attempt rows and the deliveries' new states
/// first, then, per attempt and in order, the health, alerts and disabling
/// it carries.
pub fn record_attempts(db: &mut Db, writes: &[&AttemptWrite], now: i64) -> Result<(), StoreError> {
    for write in writes {
        deliveries::record_attempt(db, &write.record, now)?;
    }
    for write in writes {
        extras(db, write, now)?;
    }
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
        deliveries::hold_pending(db, endpoint_id, now)?;
    }
    Ok(())
}
