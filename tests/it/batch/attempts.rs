//! A group commit of attempt results: settled deliveries stay settled, a
//! deleted endpoint spoils no other write of the batch, and what an
//! endpoint's actor reads back when it loads.

use super::{
    attempt, ingest, open_with_endpoints, record_attempts, stored_delivery, Input, NOW, TENANT,
};
use crate::common::TestDb;
use hookrelay::core::delivery::lifecycle::{BacklogMove, DeliveryState};
use hookrelay::core::health::failure_policy::{AlertKind, DisableReason};
use hookrelay::store::models::AlertRow;
use hookrelay::store::replay::{self, ManualWrite};
use hookrelay::store::{alerts, deliveries, endpoint_state, endpoints};

backend_tests!(
    a_batch_of_attempts_keeps_settled_deliveries_settled,
    attempts_of_a_deleted_endpoint_spoil_no_other_write_of_their_batch,
    a_loaded_endpoint_recalls_the_alerts_it_raised_lately,
);

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
    record_attempts(&mut db, &writes, later).expect("record attempts");

    let backend = test_db.backend();
    for (id, state, attempt_count, why) in [
        (retried_id, "succeeded", 2, "its last attempt decides"),
        (failing_id, "failed", 2, "its last attempt decides"),
        (
            cancelled_id,
            "cancelled",
            0,
            "a cancelled delivery stays cancelled",
        ),
        (
            resent_id,
            "succeeded",
            1,
            "a delivery settled by a manual attempt stays settled",
        ),
    ] {
        let row = stored_delivery(&mut db, id);
        assert_eq!(
            (row.state.as_str(), row.attempt_count, row.next_attempt_at),
            (state, attempt_count, None),
            "{why} on {backend}"
        );
    }
    let updated = stored_delivery(&mut db, retried_id).updated_at;
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
    record_attempts(&mut db, &writes, NOW)
        .unwrap_or_else(|error| panic!("record attempts on {backend}: {error}"));
    let row = stored_delivery(&mut db, kept_id);
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
