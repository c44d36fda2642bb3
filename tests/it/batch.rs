//! The writer's batches against a real database: a group commit of
//! ingestions and attempt results must answer and store exactly what the
//! same work done one job at a time would, groups in flight together (on
//! PostgreSQL's writer lanes) must keep every answer true and every call in
//! its place, a recovery moves its window in batches, and the lanes end
//! with the application even while handles to them remain.

use crate::common::{wait_until, TestDb, DELIVERY_TIMEOUT};
use diesel::prelude::*;
use futures_util::future::join_all;
use hookrelay::core::delivery::lifecycle::{BacklogMove, DeliveryState};
use hookrelay::core::health::failure_policy::{AlertKind, DisableReason};
use hookrelay::store::batch::{self, IngestInput};
use hookrelay::store::deliveries::{self, AttemptRecord, AttemptWrite};
use hookrelay::store::events::{Ingested, WrittenDelivery};
use hookrelay::store::models::{
    AlertRow, ApiKeyRow, AttemptRow, DeliveryRow, EndpointRow, EventRow, TenantRow,
};
use hookrelay::store::replay::{self, ManualWrite, TimeWindow, RECOVERABLE};
use hookrelay::store::schema::{deliveries as delivery_table, events as event_table};
use hookrelay::store::writer::{Writer, MAX_LANES};
use hookrelay::store::{alerts, endpoint_state, endpoints, tenants, Db, Store, StoreError};

backend_tests!(
    a_batch_of_ingestions_answers_as_one_by_one,
    a_batch_of_attempts_keeps_settled_deliveries_settled,
    a_waiting_delivery_is_stored_by_the_status_its_endpoint_has_at_the_commit,
    attempts_of_a_deleted_endpoint_spoil_no_other_write_of_their_batch,
    a_loaded_endpoint_recalls_the_alerts_it_raised_lately,
    a_recovery_moves_its_window_batch_by_batch,
    a_backlog_move_goes_on_where_its_last_batch_ended,
    groups_in_flight_together_keep_every_answer_and_the_order_of_calls,
    closed_lanes_write_what_was_queued_and_end_while_handles_remain,
    lanes_dropped_with_the_application_end_while_handles_remain,
);

const TENANT: &str = "acme";
const NOW: i64 = 1_700_000_000_000;

fn ids_written(written: Vec<WrittenDelivery>) -> Vec<String> {
    written.into_iter().map(|d| d.id).collect()
}

async fn a_batch_of_ingestions_answers_as_one_by_one(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_a", "ep_b", "ep_gone"]);
    let stored = Input::new("evt_stored", Some("key_stored"), &["ep_a"]);
    let first = ingest(&mut db, &[&stored]);
    assert!(matches!(&first[0], Ingested::New { deliveries } if deliveries.len() == 1));
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
    let (outcomes, numbers) = numbers_taken_out(outcomes);
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "numbered in the order written: {numbers:?}"
    );
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

async fn a_batch_of_attempts_keeps_settled_deliveries_settled(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_live", "ep_off"]);
    let retried = Input::new("evt_retried", None, &["ep_live"]);
    let failing = Input::new("evt_failing", None, &["ep_live"]);
    let mut cancelled = Input::new("evt_cancelled", None, &["ep_off"]);
    cancelled.deliveries[0].state = DeliveryState::Held.as_str().to_owned();
    let resent = Input::new("evt_resent", None, &["ep_live"]);
    ingest(&mut db, &[&retried, &failing, &cancelled, &resent]);
    // The operator re-enables without replay while an attempt is in flight.
    assert_eq!(
        deliveries::move_batch(&mut db, "ep_off", BacklogMove::Cancel, 100, NOW, None, NOW)
            .expect("cancel held")
            .moved,
        1
    );
    // An operator's retry succeeds while the actor's attempt is in flight.
    let resent_id = &resent.deliveries[0].id;
    let manual = ManualWrite {
        attempt: attempt(resent_id, 1, DeliveryState::Succeeded, None)
            .record
            .attempt,
        former: DeliveryState::Pending,
        after: DeliveryState::Succeeded,
    };
    let settled = replay::record_manual_attempt(&mut db, &manual, NOW)
        .expect("record manual attempt")
        .expect("delivery exists");
    assert_eq!(settled.state, "succeeded");

    let retried_id = &retried.deliveries[0].id;
    let failing_id = &failing.deliveries[0].id;
    let cancelled_id = &cancelled.deliveries[0].id;
    let writes = [
        attempt(retried_id, 1, DeliveryState::Pending, Some(NOW + 5_000)),
        attempt(failing_id, 1, DeliveryState::Pending, Some(NOW + 5_000)),
        attempt(cancelled_id, 1, DeliveryState::Succeeded, None),
        attempt(resent_id, 2, DeliveryState::Pending, Some(NOW + 5_000)),
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
    assert_eq!(
        state(&mut db, resent_id),
        ("succeeded".to_owned(), 1, None),
        "a delivery settled by a manual attempt stays settled on {backend}"
    );
    let updated = deliveries::find(&mut db, TENANT, retried_id)
        .expect("find delivery")
        .expect("delivery exists")
        .updated_at;
    assert_eq!(updated, later);
    for (id, count) in [
        (retried_id, 2),
        (failing_id, 2),
        (cancelled_id, 1),
        (resent_id, 2),
    ] {
        let attempts = deliveries::attempts_of(&mut db, id).expect("attempts");
        assert_eq!(attempts.len(), count, "attempt rows of {id} on {backend}");
    }
}

/// An endpoint deleted while its attempt was in flight: the attempt has
/// nothing left to record, and the rest of its batch is written.
async fn attempts_of_a_deleted_endpoint_spoil_no_other_write_of_their_batch(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_kept", "ep_gone"]);
    let kept = Input::new("evt_kept", None, &["ep_kept"]);
    let gone = Input::new("evt_gone", None, &["ep_gone"]);
    ingest(&mut db, &[&kept, &gone]);
    assert!(endpoints::delete(&mut db, TENANT, "ep_gone").expect("delete endpoint"));
    let of_endpoint = |delivery_id: &str, endpoint_id: &str| {
        let mut write = attempt(delivery_id, 1, DeliveryState::Succeeded, None);
        write.record.attempt.endpoint_id = Some(endpoint_id.to_owned());
        write
    };
    let kept_id = &kept.deliveries[0].id;
    let writes = [
        of_endpoint(&gone.deliveries[0].id, "ep_gone"),
        of_endpoint(kept_id, "ep_kept"),
    ];
    let backend = test_db.backend();
    db.transaction(|db| batch::record_attempts(db, &writes.iter().collect::<Vec<_>>(), NOW))
        .unwrap_or_else(|error| panic!("record attempts on {backend}: {error}"));
    let row = deliveries::find(&mut db, TENANT, kept_id)
        .expect("find delivery")
        .expect("delivery exists");
    assert_eq!(row.state, "succeeded", "on {backend}");
    let attempts = deliveries::attempts_of(&mut db, kept_id).expect("attempts");
    assert_eq!(attempts.len(), 1, "on {backend}");
}

/// What an endpoint's actor reads when it loads: when each threshold last
/// raised `endpoint.failing` within the bound's interval, so that a reload
/// keeps the bound.
async fn a_loaded_endpoint_recalls_the_alerts_it_raised_lately(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_alerting", "ep_other"]);
    let alert =
        |n: u32, endpoint_id: &str, kind: AlertKind, threshold: Option<i32>, at: i64| AlertRow {
            id: format!("alr_{n:03}"),
            tenant_id: TENANT.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            endpoint_url: "http://127.0.0.1:9/hook".to_owned(),
            kind: kind.as_str().to_owned(),
            consecutive_failures: threshold.unwrap_or(10),
            failing_since: None,
            status_code: None,
            error: None,
            disabled_reason: None,
            created_at: at,
            dispatched_at: None,
            threshold,
        };
    let failing = AlertKind::Failing;
    let rows = [
        alert(1, "ep_alerting", failing, Some(3), NOW - 900_000),
        alert(2, "ep_alerting", failing, Some(3), NOW - 200_000),
        alert(3, "ep_alerting", failing, Some(3), NOW - 100_000),
        alert(4, "ep_alerting", failing, Some(5), NOW - 90_000),
        alert(5, "ep_alerting", failing, Some(10), NOW - 600_000),
        alert(6, "ep_other", failing, Some(3), NOW - 1_000),
        // Other kinds are not bounded by the interval.
        alert(7, "ep_alerting", AlertKind::Recovered, None, NOW - 80_000),
        AlertRow {
            disabled_reason: Some(DisableReason::Gone.as_str().to_owned()),
            ..alert(8, "ep_alerting", AlertKind::Disabled, None, NOW - 30_000)
        },
        alert(9, "ep_alerting", AlertKind::Enabled, None, NOW - 20_000),
    ];
    alerts::insert(&mut db, &rows).expect("insert alerts");
    let saved = endpoint_state::load(&mut db, "ep_alerting", NOW - 300_000, NOW)
        .expect("load endpoint state");
    let mut recalled = saved.failing_alerts.clone();
    recalled.sort_unstable();
    assert_eq!(
        recalled,
        vec![(3, NOW - 100_000), (5, NOW - 90_000)],
        "on {}",
        test_db.backend()
    );
}

/// The writer at its most lanes (one on SQLite) under a queue filled at
/// once: rounds of new events, each queued twice (the copy later in the
/// round, so original and copy may sit in groups in flight together), each
/// round followed by a call that counts the stored events.
async fn groups_in_flight_together_keep_every_answer_and_the_order_of_calls(test_db: TestDb) {
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 120;
    let (store, mut db) = open_with_endpoints(&test_db, &["ep_a", "ep_b"]);
    let (writer, _lanes) = Writer::start(&store, MAX_LANES).expect("start the writer");
    let backend = test_db.backend();

    let mut pairs = Vec::new();
    let mut counts = Vec::new();
    for round in 0..ROUNDS {
        let inputs: Vec<Input> = (0..PER_ROUND)
            .map(|n| Input::new(&format!("evt_{round}_{n}"), None, &["ep_a", "ep_b"]))
            .collect();
        let copies: Vec<Input> = (0..PER_ROUND)
            .map(|n| Input::new(&format!("evt_{round}_{n}"), None, &["ep_a"]))
            .collect();
        let mut originals = Vec::new();
        let mut duplicates = Vec::new();
        // The copy of event n is queued after the original of n + PER_ROUND / 2.
        for (n, input) in inputs.iter().enumerate() {
            originals.push(writer.ingest(input.event.clone(), input.deliveries.clone()));
            if let Some(copy) = n.checked_sub(PER_ROUND / 2).map(|m| &copies[m]) {
                duplicates.push(writer.ingest(copy.event.clone(), copy.deliveries.clone()));
            }
        }
        for copy in &copies[PER_ROUND / 2..] {
            duplicates.push(writer.ingest(copy.event.clone(), copy.deliveries.clone()));
        }
        pairs.push((inputs, copies, originals, duplicates));
        counts.push(writer.call(count_events));
    }

    let mut stored_deliveries = Vec::new();
    for (round, (inputs, copies, originals, duplicates)) in pairs.into_iter().enumerate() {
        let originals = join_all(originals).await;
        let duplicates = join_all(duplicates).await;
        for ((input, copy), answers) in inputs
            .iter()
            .zip(&copies)
            .zip(originals.into_iter().zip(duplicates))
        {
            let id = &input.event.id;
            let answers = match answers {
                (Ok(original), Ok(duplicate)) => (original, duplicate),
                other => panic!("{id} on {backend}: an ingestion failed: {other:?}"),
            };
            // Either may come first: both were in flight together.
            let written = match answers {
                (
                    Ingested::New {
                        deliveries: written,
                    },
                    Ingested::Duplicate {
                        event_id,
                        deliveries,
                    },
                ) => {
                    let delivery_ids = ids_written(written);
                    assert_eq!(delivery_ids, ids_of(input), "{id} on {backend}");
                    assert_eq!(
                        (&event_id, deliveries),
                        (id, 2),
                        "copy of {id} on {backend}"
                    );
                    delivery_ids
                }
                (
                    Ingested::Duplicate {
                        event_id,
                        deliveries,
                    },
                    Ingested::New {
                        deliveries: written,
                    },
                ) => {
                    let delivery_ids = ids_written(written);
                    assert_eq!(delivery_ids, ids_of(copy), "copy of {id} on {backend}");
                    assert_eq!((&event_id, deliveries), (id, 1), "{id} on {backend}");
                    delivery_ids
                }
                other => panic!("{id} in round {round} on {backend}: {other:?}"),
            };
            stored_deliveries.extend(written);
        }
    }
    let counted: Vec<Result<i64, StoreError>> = join_all(counts).await;
    for (round, counted) in counted.into_iter().enumerate() {
        assert_eq!(
            counted.expect("count events"),
            i64::try_from((round + 1) * PER_ROUND).expect("a small count"),
            "the call after round {round} on {backend} sees exactly the events queued before it"
        );
    }

    let mut stored: Vec<String> =
        hookrelay::dispatch!(&mut db, c => delivery_table::table.select(delivery_table::id).load(c))
            .expect("stored deliveries");
    stored_deliveries.sort_unstable();
    stored.sort_unstable();
    assert_eq!(
        stored, stored_deliveries,
        "every answered delivery is stored, and only those, on {backend}"
    );
}

/// The router's flag may lag a status change that commits just before a
/// publish: the state comes from the endpoint row read in the transaction.
async fn a_waiting_delivery_is_stored_by_the_status_its_endpoint_has_at_the_commit(
    test_db: TestDb,
) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_live", "ep_off"]);
    let mut guessed_held = Input::new("evt_to_live", None, &["ep_live"]);
    guessed_held.deliveries[0].state = DeliveryState::Held.as_str().to_owned();
    guessed_held.deliveries[0].next_attempt_at = None;
    let guessed_pending = Input::new("evt_to_off", None, &["ep_off"]);
    let outcomes = ingest(&mut db, &[&guessed_held, &guessed_pending]);
    let backend = test_db.backend();
    let written: Vec<Vec<(String, bool)>> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ingested::New { deliveries } => {
                deliveries.into_iter().map(|d| (d.id, d.held)).collect()
            }
            Ingested::Duplicate { .. } => panic!("not a duplicate on {backend}"),
        })
        .collect();
    assert_eq!(
        written,
        vec![
            vec![(guessed_held.deliveries[0].id.clone(), false)],
            vec![(guessed_pending.deliveries[0].id.clone(), true)],
        ],
        "on {backend}"
    );
    let stored = |db: &mut Db, input: &Input| {
        let row = deliveries::find(db, TENANT, &input.deliveries[0].id)
            .expect("find")
            .expect("exists");
        (row.state, row.next_attempt_at)
    };
    assert_eq!(
        stored(&mut db, &guessed_held),
        ("pending".to_owned(), Some(NOW)),
        "on {backend}"
    );
    assert_eq!(
        stored(&mut db, &guessed_pending),
        ("held".to_owned(), None),
        "on {backend}"
    );
}

async fn a_backlog_move_goes_on_where_its_last_batch_ended(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_off"]);
    let held = |n: i64| {
        let mut input = Input::new(&format!("evt_{n}"), None, &["ep_off"]);
        input.event.created_at = NOW + n;
        let delivery = &mut input.deliveries[0];
        delivery.id = format!("dlv_{n}");
        delivery.created_at = NOW + n;
        delivery.state = DeliveryState::Held.as_str().to_owned();
        delivery.next_attempt_at = None;
        input
    };
    let backlog: Vec<Input> = (1..=5).map(|n| held(n * 10)).collect();
    ingest(&mut db, &backlog.iter().collect::<Vec<_>>());
    endpoints::set_backlog_move(&mut db, "ep_off", Some((BacklogMove::Cancel, NOW)))
        .expect("record the move");
    let backend = test_db.backend();

    let more = endpoint_state::move_batch(&mut db, "ep_off", BacklogMove::Cancel, 2, NOW)
        .expect("first batch");
    assert!(more, "on {backend}");
    assert_eq!(
        endpoints::backlog_move_after(&mut db, "ep_off").expect("cursor"),
        Some((NOW + 20, "dlv_20".to_owned())),
        "the first batch's last row, on {backend}"
    );
    // A row entering the state behind the cursor (a fan-out that raced the
    // status change) is still moved before the move ends.
    let straggler = held(15);
    ingest(&mut db, &[&straggler]);
    let mut batches = 1;
    while endpoint_state::move_batch(&mut db, "ep_off", BacklogMove::Cancel, 2, NOW)
        .expect("next batch")
    {
        batches += 1;
        assert!(batches < 10, "the move ends, on {backend}");
    }
    assert_eq!(
        deliveries::count_in_state(&mut db, "ep_off", DeliveryState::Held).expect("count held"),
        0,
        "on {backend}"
    );
    assert_eq!(
        deliveries::count_in_state(&mut db, "ep_off", DeliveryState::Cancelled)
            .expect("count cancelled"),
        6,
        "on {backend}"
    );
    assert_eq!(
        endpoints::backlog_move(&mut db, "ep_off").expect("move"),
        None,
        "on {backend}"
    );
    assert_eq!(
        endpoints::backlog_move_after(&mut db, "ep_off").expect("cursor"),
        None,
        "an ended move leaves no cursor, on {backend}"
    );
}

fn ids_of(input: &Input) -> Vec<String> {
    input.deliveries.iter().map(|d| d.id.clone()).collect()
}

fn count_events(db: &mut Db) -> Result<i64, StoreError> {
    Ok(hookrelay::dispatch!(db, c => event_table::table.count().get_result(c))?)
}

async fn a_recovery_moves_its_window_batch_by_batch(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_live", "ep_off"]);
    // Events a millisecond apart; ids in reverse order of creation, so the
    // order can only come from the events' time.
    let mut inputs = Vec::new();
    for (n, state) in [
        "failed",
        "failed",
        "cancelled",
        "failed",
        "succeeded",
        "failed",
        "cancelled",
        "failed",
    ]
    .into_iter()
    .enumerate()
    {
        let mut input = Input::new(&format!("evt_{}", 9 - n), None, &["ep_live"]);
        let at = NOW + i64::try_from(n).expect("small");
        input.event.created_at = at;
        let delivery = &mut input.deliveries[0];
        delivery.id = format!("dlv_{}", 9 - n);
        delivery.created_at = at;
        delivery.state = state.to_owned();
        delivery.attempt_count = 10;
        delivery.next_attempt_at = None;
        inputs.push(input);
    }
    ingest(&mut db, &inputs.iter().collect::<Vec<_>>());
    // The window leaves out the first event and the last.
    let window = TimeWindow {
        since: NOW + 1,
        until: Some(NOW + 7),
    };
    let mut moved = 0;
    let mut batches = 0;
    for from in RECOVERABLE {
        let mut after = None;
        loop {
            let batch =
                replay::recover_batch(&mut db, "ep_live", from, window, after.as_ref(), 2, NOW)
                    .expect("recover batch");
            assert!(batch.moved <= 2);
            moved += batch.moved;
            batches += 1;
            match batch.last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    let backend = test_db.backend();
    // Failed: 3 in the window (2 batches and an empty one); cancelled: 2 (1 and an empty one).
    assert_eq!((moved, batches), (5, 5), "on {backend}");
    let mut pending: Vec<(i64, String)> = Vec::new();
    for input in &inputs {
        let row = deliveries::find(&mut db, TENANT, &input.deliveries[0].id)
            .expect("find")
            .expect("exists");
        let inside = (window.since..NOW + 7).contains(&row.created_at);
        match input.deliveries[0].state.as_str() {
            "succeeded" => assert_eq!(row.state, "succeeded", "on {backend}"),
            _ if inside => {
                assert_eq!(row.state, "pending", "{} on {backend}", row.id);
                assert_eq!(row.attempt_count, 0, "a fresh schedule on {backend}");
                assert_eq!(row.next_attempt_at, Some(row.created_at), "on {backend}");
                pending.push((row.next_attempt_at.unwrap_or_default(), row.id));
            }
            former => assert_eq!(row.state, former, "{} outside on {backend}", row.id),
        }
    }
    // Due in the order of their events.
    let mut by_due = pending.clone();
    by_due.sort();
    assert_eq!(by_due, pending, "on {backend}");

    // Disabled meanwhile: recovered deliveries are held, not queued.
    let mut off = Input::new("evt_off", None, &["ep_off"]);
    off.deliveries[0].state = DeliveryState::Failed.as_str().to_owned();
    off.deliveries[0].next_attempt_at = None;
    ingest(&mut db, &[&off]);
    endpoints::set_status(&mut db, "ep_off", Some(DisableReason::Manual), NOW).expect("disable");
    let batch = replay::recover_batch(
        &mut db,
        "ep_off",
        DeliveryState::Failed,
        TimeWindow {
            since: NOW,
            until: None,
        },
        None,
        2,
        NOW,
    )
    .expect("recover batch");
    assert_eq!(batch.moved, 1);
    let row = deliveries::find(&mut db, TENANT, &off.deliveries[0].id)
        .expect("find")
        .expect("exists");
    assert_eq!(
        (row.state.as_str(), row.next_attempt_at),
        ("held", None),
        "on {backend}"
    );
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
/// The lanes close at shutdown while handles remain (the HTTP server's
/// workers keep theirs): work queued before is written, then the lanes end
/// and later work is refused instead of waiting for ever.
async fn closed_lanes_write_what_was_queued_and_end_while_handles_remain(test_db: TestDb) {
    let (store, _db) = open_with_endpoints(&test_db, &[]);
    let (writer, lanes) = Writer::start(&store, MAX_LANES).expect("start the writer");
    let queued: Vec<_> = (0..50i32).map(|n| writer.call(move |_| Ok(n))).collect();
    // A guard against a hang, not a measure of speed.
    actix_rt::time::timeout(DELIVERY_TIMEOUT, lanes.close())
        .await
        .expect("the lanes end once closed");
    let answers: Vec<i32> = join_all(queued)
        .await
        .into_iter()
        .map(|answer| answer.expect("work queued before the close is written"))
        .collect();
    assert_eq!(answers, (0..50).collect::<Vec<_>>());
    assert!(!writer.is_healthy());
    let refused = writer.call(|_| Ok(())).await;
    assert!(
        matches!(refused, Err(StoreError::WriterGone)),
        "{refused:?}"
    );
}

/// An application dropped without a shutdown (as the tests drop theirs)
/// drops its lanes: they end although handles remain.
async fn lanes_dropped_with_the_application_end_while_handles_remain(test_db: TestDb) {
    let (store, _db) = open_with_endpoints(&test_db, &[]);
    let (writer, lanes) = Writer::start(&store, MAX_LANES).expect("start the writer");
    writer
        .call(|_| Ok(()))
        .await
        .expect("the writer works before");
    drop(lanes);
    wait_until(DELIVERY_TIMEOUT, || async {
        match writer.call(|_| Ok(())).await {
            Err(StoreError::WriterGone) => Ok(()),
            other => Err(format!("the lanes still answer: {other:?}")),
        }
    })
    .await;
    assert!(!writer.is_healthy());
}

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
