//! The writer's batches against a real database, one module a concern: a
//! group commit of ingestions ([`ingestions`]) and of attempt results
//! ([`attempts`]) must answer and store exactly what the same work done one
//! job at a time would; a recovery and a backlog move go through their
//! rows in batches ([`backlog_and_recovery`]); groups in flight together
//! (on PostgreSQL's writer lanes) keep every answer true and every call in
//! its place, and the lanes end with the application even while handles to
//! them remain ([`lanes`]). Below, the rows and calls they share.

mod attempts;
mod backlog_and_recovery;
mod ingestions;
mod lanes;

use crate::common::TestDb;
use diesel::prelude::*;
use hookrelay::core::delivery::lifecycle::DeliveryState;
use hookrelay::core::health::failure_policy::DisableReason;
use hookrelay::store::batch::{self, IngestInput};
use hookrelay::store::deliveries::{self, AttemptRecord, AttemptWrite};
use hookrelay::store::events::{Ingested, WrittenDelivery};
use hookrelay::store::models::{
    ApiKeyRow, AttemptRow, DeliveryRow, EndpointRow, EventRow, TenantRow,
};
use hookrelay::store::schema::events as event_table;
use hookrelay::store::{endpoints, tenants, Db, Store, StoreError};

const TENANT: &str = "acme";
const NOW: i64 = 1_700_000_000_000;

fn ids_written(written: Vec<WrittenDelivery>) -> Vec<String> {
    written.into_iter().map(|d| d.id).collect()
}

fn ids_of(input: &Input) -> Vec<String> {
    input.deliveries.iter().map(|d| d.id.clone()).collect()
}

fn count_events(db: &mut Db) -> Result<i64, StoreError> {
    Ok(hookrelay::dispatch!(db, c => event_table::table.count().get_result(c))?)
}

/// One ingestion to batch: an event of [`TENANT`] and its fan-out.
struct Input {
    event: EventRow,
    deliveries: Vec<DeliveryRow>,
}

impl Input {
    fn new(id: &str, idempotency_key: Option<&str>, endpoints: &[&str]) -> Input {
        let deliveries = endpoints
            .iter()
            .map(|endpoint| DeliveryRow {
                id: hookrelay::ids::time_ordered("dlv"),
                tenant_id: TENANT.to_owned(),
                event_id: id.to_owned(),
                endpoint_id: (*endpoint).to_owned(),
                state: DeliveryState::Pending.as_str().to_owned(),
                attempt_count: 0,
                next_attempt_at: Some(NOW),
                created_at: NOW,
                updated_at: NOW,
                seq: 0,
            })
            .collect();
        Input {
            event: EventRow {
                tenant_id: TENANT.to_owned(),
                id: id.to_owned(),
                event_type: "order.created".to_owned(),
                body: format!("{{\"id\":\"{id}\"}}"),
                idempotency_key: idempotency_key.map(str::to_owned),
                created_at: NOW,
            },
            deliveries,
        }
    }

    /// Written, with the deliveries at these positions of its fan-out
    /// (numbered 0: see [`numbers_taken_out`]).
    fn written(&self, positions: &[usize]) -> Ingested {
        Ingested::New {
            deliveries: positions
                .iter()
                .map(|&i| WrittenDelivery {
                    id: self.deliveries[i].id.clone(),
                    seq: 0,
                    held: false,
                })
                .collect(),
        }
    }
}

/// The outcomes with every delivery numbered 0, and the numbers they had,
/// in order.
fn numbers_taken_out(mut outcomes: Vec<Ingested>) -> (Vec<Ingested>, Vec<i64>) {
    let mut numbers = Vec::new();
    for outcome in &mut outcomes {
        if let Ingested::New { deliveries } = outcome {
            for delivery in deliveries {
                numbers.push(std::mem::take(&mut delivery.seq));
            }
        }
    }
    (outcomes, numbers)
}

fn ingest(db: &mut Db, inputs: &[&Input]) -> Vec<Ingested> {
    let inputs: Vec<IngestInput<'_>> = inputs
        .iter()
        .map(|input| IngestInput {
            event: &input.event,
            deliveries: &input.deliveries,
        })
        .collect();
    db.transaction(|db| batch::ingest(db, &inputs))
        .expect("ingest batch")
}

fn attempt(
    delivery_id: &str,
    attempt: i32,
    state: DeliveryState,
    next_attempt_at: Option<i64>,
) -> AttemptWrite {
    AttemptWrite {
        record: AttemptRecord {
            attempt: AttemptRow {
                id: hookrelay::ids::time_ordered("atm"),
                delivery_id: delivery_id.to_owned(),
                attempt,
                started_at: NOW + i64::from(attempt),
                duration_ms: 3,
                status_code: Some(if state == DeliveryState::Succeeded {
                    200
                } else {
                    500
                }),
                response_headers: None,
                response_body: None,
                error_kind: None,
                error_message: None,
                endpoint_id: None,
                instance: Some("batch-test".to_owned()),
            },
            state,
            next_attempt_at,
        },
        health: None,
        alerts: Vec::new(),
        disable: None,
        fence: None,
    }
}

/// The delivery `id` of [`TENANT`] as stored (it must exist).
fn stored_delivery(db: &mut Db, id: &str) -> DeliveryRow {
    deliveries::find(db, TENANT, id)
        .expect("find delivery")
        .expect("delivery exists")
}

/// Records `writes` as one batch in one transaction at `at`.
fn record_attempts(db: &mut Db, writes: &[AttemptWrite], at: i64) -> Result<(), StoreError> {
    db.transaction(|db| {
        batch::record_attempts(db, &writes.iter().collect::<Vec<_>>(), at).map(drop)
    })
}

/// The migrated database with [`TENANT`] and these endpoints.
fn open_with_endpoints(test_db: &TestDb, ids: &[&str]) -> (Store, Db) {
    let store = Store::open(test_db.url()).expect("open store");
    let mut db = store.get().expect("connection");
    let tenant = TenantRow {
        id: TENANT.to_owned(),
        name: TENANT.to_owned(),
        created_at: NOW,
    };
    assert!(tenants::create(
        &mut db,
        &tenant,
        &ApiKeyRow::new("key_of_acme", Some(TENANT), None, NOW)
    )
    .expect("create tenant"));
    for id in ids {
        endpoints::insert(&mut db, &endpoint(id)).expect("insert endpoint");
        // Held deliveries are stored held only for a disabled endpoint.
        if id.starts_with("ep_off") {
            endpoints::set_status(&mut db, id, Some(DisableReason::Manual), NOW).expect("disable");
        }
    }
    (store, db)
}

fn endpoint(id: &str) -> EndpointRow {
    EndpointRow {
        url: "http://127.0.0.1:9/hook".to_owned(),
        ..EndpointRow::with_defaults(id, TENANT, NOW)
    }
}
