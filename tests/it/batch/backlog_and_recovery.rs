//! Moves through many rows, a batch at a time: a backlog move goes on
//! where its last batch ended, and a recovery moves its time window.

use super::{ingest, open_with_endpoints, stored_delivery, Input, NOW};
use crate::common::TestDb;
use hookrelay::core::delivery::lifecycle::{BacklogMove, DeliveryState};
use hookrelay::core::health::failure_policy::DisableReason;
use hookrelay::store::replay::{self, TimeWindow, RECOVERABLE};
use hookrelay::store::{deliveries, endpoint_state, endpoints};

backend_tests!(
    a_recovery_moves_its_window_batch_by_batch,
    a_backlog_move_goes_on_where_its_last_batch_ended,
);

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
        let row = stored_delivery(&mut db, &input.deliveries[0].id);
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
    let row = stored_delivery(&mut db, &off.deliveries[0].id);
    assert_eq!(
        (row.state.as_str(), row.next_attempt_at),
        ("held", None),
        "on {backend}"
    );
}
