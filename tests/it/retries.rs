//! Failed attempts: retry after an error status, redirects are not followed,
//! Retry-After lengthens the wait.

use std::time::Duration;

use crate::common::{attempts_of, spawn_app, Receiver, TestApp, TestDb, DELIVERY_TIMEOUT};
use serde_json::{json, Value};

backend_tests!(
    a_failed_attempt_is_retried_until_the_receiver_accepts,
    redirects_are_not_followed_and_count_as_failures,
    retry_after_from_the_receiver_delays_the_next_attempt,
);

/// The scenarios' start: hookrelay, tenant `acme` with one endpoint on
/// `url` retrying on `retry_schedule`, and one event published to it.
/// Returns the application, the tenant, its key and the event.
async fn publish_to_one_endpoint(
    db: TestDb,
    url: String,
    retry_schedule: Value,
) -> (TestApp, String, String, String) {
    let app = spawn_app(db).await;
    let body = json!({"url": url, "retry_schedule": retry_schedule});
    let (tenant, key, _) = app.create_tenant_with_endpoint(body).await;
    let event = app
        .publish_event(&key, &tenant, "invoice.paid", json!({"n": 1}))
        .await;
    (app, tenant, key, event)
}

/// Asserts the status code and error kind of attempt `n` (from 0) of a
/// delivery.
fn assert_attempt(delivery: &Value, n: usize, status: u16, error_kind: Value) {
    let attempts = attempts_of(delivery);
    assert_eq!(attempts[n]["status_code"], json!(status), "{delivery}");
    assert_eq!(attempts[n]["error_kind"], error_kind, "{delivery}");
}

async fn a_failed_attempt_is_retried_until_the_receiver_accepts(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let (app, tenant, key, event_id) =
        publish_to_one_endpoint(db, receiver.url(), json!([1])).await;
    let delivery = app
        .wait_for_single_delivery(&key, &tenant, &event_id, "succeeded")
        .await;

    assert_eq!(delivery["attempt_count"], json!(2), "{delivery}");
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert_attempt(&delivery, 0, 500, json!("http_status"));
    assert_attempt(&delivery, 1, 200, Value::Null);
    assert!(
        attempts[0]["attempt"].as_i64() < attempts[1]["attempt"].as_i64(),
        "attempts are numbered in order: {delivery}"
    );
    assert_eq!(receiver.count(), 2);
}

async fn redirects_are_not_followed_and_count_as_failures(db: TestDb) {
    let redirecting = Receiver::start();
    let target = Receiver::start();
    redirecting.set_status(302);
    redirecting.set_location(Some(target.url()));
    let (app, tenant, key, event_id) =
        publish_to_one_endpoint(db, redirecting.url(), json!([])).await;
    let delivery = app
        .wait_for_single_delivery(&key, &tenant, &event_id, "failed")
        .await;

    assert_eq!(delivery["attempt_count"], json!(1), "{delivery}");
    assert_eq!(attempts_of(&delivery).len(), 1, "{delivery}");
    assert_attempt(&delivery, 0, 302, json!("http_status"));
    assert_eq!(redirecting.count(), 1);
    assert_eq!(target.count(), 0, "the redirect must not be followed");
}

async fn retry_after_from_the_receiver_delays_the_next_attempt(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[429]);
    receiver.set_retry_after(Some("2".to_string()));
    let (app, tenant, key, event_id) =
        publish_to_one_endpoint(db, receiver.url(), json!([1])).await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let waited = requests[1].at - requests[0].at;
    // Retry-After: 2 lengthens the scheduled 1 s delay; it may never shorten
    // it, so the wait is at least two seconds (less a little measuring slack).
    assert!(
        waited >= Duration::from_millis(1900),
        "second attempt came {waited:?} after a 429 with Retry-After: 2"
    );

    let delivery = app
        .wait_for_single_delivery(&key, &tenant, &event_id, "succeeded")
        .await;
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert_attempt(&delivery, 0, 429, json!("http_status"));
    assert_eq!(attempts[1]["status_code"], json!(200), "{delivery}");
}
