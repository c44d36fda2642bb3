//! The writer's batches against a real database: a group commit of
//! ingestions and attempt results must answer and store exactly what the
//! same work done one job at a time would.

use crate::common::TestDb;
use hookrelay::core::delivery::{BacklogMove, DeliveryState};
use hookrelay::store::batch::{self, IngestInput};
use hookrelay::store::deliveries::{self, AttemptRecord, AttemptWrite};
use hookrelay::store::events::Ingested;
use hookrelay::store::models::{AttemptRow, DeliveryRow, EndpointRow, EventRow, TenantRow};
use hookrelay::store::{endpoints, tenants, Db, Store};

backend_tests!(
    a_batch_of_ingestions_answers_as_one_by_one,
    a_batch_of_attempts_keeps_cancelled_deliveries_cancelled,
);

const TENANT: &str = "acme";
const NOW: i64 = 1_700_000_000_000;

async fn a_batch_of_ingestions_answers_as_one_by_one(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_a", "ep_b", "ep_gone"]);
    let stored = Input::new("evt_stored", Some("key_stored"), &["ep_a"]);
    let first = ingest(&mut db, &[&stored]);
    assert!(matches!(&first[0], Ingested::New { delivery_ids } if delivery_ids.len() == 1));
    // Deleted after the router computed the fan-out, before the write.
    assert!(endpoints::delete(&mut db, TENANT, "ep_gone").expect("delete endpoint"));

    let new = Input::new("evt_new", None, &["ep_a", "ep_b"]);
    let same_id = Input::new("evt_new", None, &["ep_a"]);
    let stored_key = Input::new("evt_other", Some("key_stored"), &["ep_a"]);
    let stored_id = Input::new("evt_stored", Some("key_fresh"), &["ep_b"]);
    let keyed = Input::new("evt_keyed", Some("key_batch"), &["ep_b"]);
    let same_key = Input::new("evt_keyed_again", Some("key_batch"), &["ep_a"]);
    // Refused for its key, so the next input with its id is not a duplicate.
    let refused = Input::new("evt_late", Some("key_stored"), &["ep_a"]);
    let after_refused = Input::new("evt_late", None, &["ep_b"]);
    let to_gone = Input::new("evt_gone", None, &["ep_a", "ep_gone"]);
    let outcomes = ingest(
        &mut db,
        &[
            &new,
            &same_id,
            &stored_key,
            &stored_id,
            &keyed,
            &same_key,
            &refused,
            &after_refused,
            &to_gone,
        ],
    );

    let duplicate = |event_id: &str, deliveries: usize| Ingested::Duplicate {
        event_id: event_id.to_owned(),
        deliveries,
    };
    assert_eq!(
        outcomes,
        vec![
            new.written(&[0, 1]),
            duplicate("evt_new", 2),
            duplicate("evt_stored", 1),
            duplicate("evt_stored", 1),
            keyed.written(&[0]),
            duplicate("evt_keyed", 1),
            duplicate("evt_stored", 1),
            after_refused.written(&[0]),
            to_gone.written(&[0]),
        ],
        "on {}",
        test_db.backend()
    );
    for (event, endpoints) in [
        ("evt_stored", vec!["ep_a"]),
        ("evt_new", vec!["ep_a", "ep_b"]),
        ("evt_keyed", vec!["ep_b"]),
        ("evt_keyed_again", vec![]),
        ("evt_late", vec!["ep_b"]),
        ("evt_gone", vec!["ep_a"]),
    ] {
        let stored = deliveries::for_event(&mut db, TENANT, event).expect("deliveries of event");
        let mut found: Vec<&str> = stored.iter().map(|d| d.endpoint_id.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, endpoints, "deliveries stored for {event}");
    }
}

async fn a_batch_of_attempts_keeps_cancelled_deliveries_cancelled(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_live", "ep_off"]);
    let retried = Input::new("evt_retried", None, &["ep_live"]);
    let failing = Input::new("evt_failing", None, &["ep_live"]);
    let mut cancelled = Input::new("evt_cancelled", None, &["ep_off"]);
    cancelled.deliveries[0].state = DeliveryState::Held.as_str().to_owned();
    ingest(&mut db, &[&retried, &failing, &cancelled]);
    // The operator re-enables without replay while an attempt is in flight.
    assert_eq!(
        deliveries::move_batch(&mut db, "ep_off", BacklogMove::Cancel, 100, NOW, NOW)
            .expect("cancel held"),
        1
    );

    let retried_id = &retried.deliveries[0].id;
    let failing_id = &failing.deliveries[0].id;
    let cancelled_id = &cancelled.deliveries[0].id;
    let writes = [
        attempt(retried_id, 1, DeliveryState::Pending, Some(NOW + 5_000)),
        attempt(failing_id, 1, DeliveryState::Pending, Some(NOW + 5_000)),
        attempt(cancelled_id, 1, DeliveryState::Succeeded, None),
        // The same delivery twice in one batch: its last attempt decides.
        attempt(retried_id, 2, DeliveryState::Succeeded, None),
        attempt(failing_id, 2, DeliveryState::Failed, None),
    ];
    let later = NOW + 10_000;
    db.transaction(|db| batch::record_attempts(db, &writes.iter().collect::<Vec<_>>(), later))
        .expect("record attempts");

    let state = |db: &mut Db, id: &str| {
        let row = deliveries::find(db, TENANT, id)
            .expect("find delivery")
            .expect("delivery exists");
        (row.state, row.attempt_count, row.next_attempt_at)
    };
    let backend = test_db.backend();
    assert_eq!(
        state(&mut db, retried_id),
        ("succeeded".to_owned(), 2, None),
        "on {backend}"
    );
    assert_eq!(
        state(&mut db, failing_id),
        ("failed".to_owned(), 2, None),
        "on {backend}"
    );
    assert_eq!(
        state(&mut db, cancelled_id),
        ("cancelled".to_owned(), 0, None),
        "a cancelled delivery stays cancelled on {backend}"
    );
    let updated = deliveries::find(&mut db, TENANT, retried_id)
        .expect("find delivery")
        .expect("delivery exists")
        .updated_at;
    assert_eq!(updated, later);
    for (id, count) in [(retried_id, 2), (failing_id, 2), (cancelled_id, 1)] {
        let attempts = deliveries::attempts_of(&mut db, id).expect("attempts");
        assert_eq!(attempts.len(), count, "attempt rows of {id} on {backend}");
    }
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

    /// Written, with the deliveries at these positions of its fan-out.
    fn written(&self, positions: &[usize]) -> Ingested {
        Ingested::New {
            delivery_ids: positions
                .iter()
                .map(|&i| self.deliveries[i].id.clone())
                .collect(),
        }
    }
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
            },
            state,
            next_attempt_at,
        },
        health: None,
        alerts: Vec::new(),
        disable: None,
    }
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
    assert!(tenants::create(&mut db, &tenant, "key_hash_of_acme").expect("create tenant"));
    for id in ids {
        endpoints::insert(&mut db, &endpoint(id)).expect("insert endpoint");
    }
    (store, db)
}

fn endpoint(id: &str) -> EndpointRow {
    EndpointRow {
        url: "http://127.0.0.1:9/hook".to_owned(),
        ..EndpointRow::with_defaults(id, TENANT, NOW)
    }
}
