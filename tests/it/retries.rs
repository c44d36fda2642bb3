//! Failed attempts: retry after an error status, redirects are not followed,
//! Retry-After lengthens the wait.

use std::time::Duration;

use crate::common::{attempts_of, spawn_app, Receiver, TestDb, DELIVERY_TIMEOUT};
use serde_json::{json, Value};

backend_tests!(
    a_failed_attempt_is_retried_until_the_receiver_accepts,
    redirects_are_not_followed_and_count_as_failures,
    retry_after_from_the_receiver_delays_the_next_attempt,
);

async fn a_failed_attempt_is_retried_until_the_receiver_accepts(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "retry_schedule": [1]}),
    )
    .await;

    let (event_id, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": 1}}),
        )
        .await;
    let delivery_id = app.single_delivery_id(&key, &tenant, &event_id).await;
    let delivery = app
        .wait_for_delivery_state(&key, &tenant, &delivery_id, "succeeded", DELIVERY_TIMEOUT)
        .await;

    assert_eq!(delivery["attempt_count"], json!(2), "{delivery}");
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert_eq!(attempts[0]["status_code"], json!(500), "{delivery}");
    assert_eq!(
        attempts[0]["error_kind"],
        json!("http_status"),
        "{delivery}"
    );
    assert_eq!(attempts[1]["status_code"], json!(200), "{delivery}");
    assert_eq!(attempts[1]["error_kind"], Value::Null, "{delivery}");
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
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": redirecting.url(), "retry_schedule": []}),
    )
    .await;

    let (event_id, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": 1}}),
        )
        .await;
    let delivery_id = app.single_delivery_id(&key, &tenant, &event_id).await;
    let delivery = app
        .wait_for_delivery_state(&key, &tenant, &delivery_id, "failed", DELIVERY_TIMEOUT)
        .await;

    assert_eq!(delivery["attempt_count"], json!(1), "{delivery}");
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 1, "{delivery}");
    assert_eq!(attempts[0]["status_code"], json!(302), "{delivery}");
    assert_eq!(
        attempts[0]["error_kind"],
        json!("http_status"),
        "{delivery}"
    );
    assert_eq!(redirecting.count(), 1);
    assert_eq!(target.count(), 0, "the redirect must not be followed");
}

async fn retry_after_from_the_receiver_delays_the_next_attempt(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[429]);
    receiver.set_retry_after(Some("2".to_string()));
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "retry_schedule": [1]}),
    )
    .await;

    let (event_id, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": 1}}),
        )
        .await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let waited = requests[1].at - requests[0].at;
    // Retry-After: 2 lengthens the scheduled 1 s delay; it may never shorten
    // it, so the wait is at least two seconds (less a little measuring slack).
    assert!(
        waited >= Duration::from_millis(1900),
        "second attempt came {waited:?} after a 429 with Retry-After: 2"
    );

    let delivery_id = app.single_delivery_id(&key, &tenant, &event_id).await;
    let delivery = app
        .wait_for_delivery_state(&key, &tenant, &delivery_id, "succeeded", DELIVERY_TIMEOUT)
        .await;
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert_eq!(attempts[0]["status_code"], json!(429), "{delivery}");
    assert_eq!(
        attempts[0]["error_kind"],
        json!("http_status"),
        "{delivery}"
    );
    assert_eq!(attempts[1]["status_code"], json!(200), "{delivery}");
}
