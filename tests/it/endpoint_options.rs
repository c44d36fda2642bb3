//! Endpoint options that shape each request and its failure handling: the
//! HTTP method, client errors that end a delivery, user metadata, and
//! credential headers that are sent but never shown.

use crate::common::{spawn_app, wait_until, Receiver, TestDb, DELIVERY_TIMEOUT};
use crate::limits::assert_refused_on_create_and_update;
use serde_json::{json, Value};
use std::time::Duration;

backend_tests!(
    the_http_method_and_metadata_apply_and_can_be_changed,
    without_retry_client_errors_a_4xx_fails_the_delivery_at_once,
    credential_headers_are_sent_but_never_shown,
    bad_options_answer_422_naming_the_field_and_change_nothing,
    the_rate_limit_spaces_attempts_without_spending_retries,
);

async fn the_http_method_and_metadata_apply_and_can_be_changed(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(
            json!({"url": receiver.url(), "http_method": "put", "metadata": {"team": "billing"}}),
        )
        .await;
    assert_eq!(endpoint["http_method"], "PUT", "{endpoint}");
    assert_eq!(
        endpoint["metadata"],
        json!({"team": "billing"}),
        "{endpoint}"
    );
    assert_eq!(endpoint["retry_client_errors"], true, "{endpoint}");
    let id = endpoint["id"].as_str().expect("endpoint id");
    let event = json!({"type": "order.shipped", "payload": {"order": 1}});
    app.publish_accepted(&key, &tenant, &event).await;
    let requests = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    assert_eq!(requests[0].method, "PUT");

    let path = format!("/v1/tenants/{tenant}/endpoints/{id}");
    app.patch_json(
        &key,
        &path,
        &json!({"http_method": "PATCH", "metadata": {}}),
    )
    .await;
    let view = app.get_json(&key, &path).await;
    assert_eq!(view["http_method"], "PATCH", "{view}");
    assert_eq!(view["metadata"], json!({}), "{view}");
    app.publish_accepted(&key, &tenant, &event).await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_eq!(requests[1].method, "PATCH");
}

async fn without_retry_client_errors_a_4xx_fails_the_delivery_at_once(db: TestDb) {
    let refusing = Receiver::start();
    refusing.set_status(404);
    let throttling = Receiver::start();
    throttling.script(&[429]);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    for receiver in [&refusing, &throttling] {
        app.create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "retry_client_errors": false, "retry_schedule": [1, 1]}),
        )
        .await;
    }
    let (event_id, deliveries) = app
        .publish_accepted(&key, &tenant, &json!({"type": "a.b", "payload": {}}))
        .await;
    assert_eq!(deliveries, 2);

    // 404: failed after its first attempt, with retries left in its schedule.
    // 429 asks for another try, so that delivery is retried and succeeds.
    let event = wait_until(DELIVERY_TIMEOUT, || async {
        let event = app.get_event(&key, &tenant, &event_id).await;
        let states = delivery_states(&event);
        if states.contains(&"failed".to_owned()) && states.contains(&"succeeded".to_owned()) {
            Ok(event)
        } else {
            Err(format!(
                "one failed and one succeeded delivery, last seen {event}"
            ))
        }
    })
    .await;
    assert_eq!(throttling.count(), 2, "{event}");
    assert_eq!(refusing.count(), 1, "{event}");
    for delivery in event["deliveries"].as_array().into_iter().flatten() {
        let expected_attempts = if delivery["state"] == "failed" { 1 } else { 2 };
        assert_eq!(delivery["attempt_count"], expected_attempts, "{delivery}");
    }
}

fn delivery_states(event: &Value) -> Vec<String> {
    event["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["state"].as_str().map(str::to_owned))
        .collect()
}

async fn credential_headers_are_sent_but_never_shown(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({
            "url": receiver.url(),
            "headers": {"Authorization": "Bearer s3cret", "X-Team": "billing"},
        }))
        .await;
    let id = endpoint["id"].as_str().expect("endpoint id");
    let path = format!("/v1/tenants/{tenant}/endpoints/{id}");
    let list = app
        .get_json(&key, &format!("/v1/tenants/{tenant}/endpoints"))
        .await;
    let view = app.get_json(&key, &path).await;
    for shown in [&endpoint, &view, &list["data"][0]] {
        assert_eq!(shown["headers"]["Authorization"], "********", "{shown}");
        assert_eq!(shown["headers"]["X-Team"], "billing", "{shown}");
        assert!(!shown.to_string().contains("s3cret"), "{shown}");
    }

    // The view sent back with one change keeps the stored credential.
    let mut headers = view["headers"].clone();
    headers["X-Team"] = json!("payments");
    app.patch_json(&key, &path, &json!({"headers": headers}))
        .await;
    app.publish_event(&key, &tenant, "a.b", json!({})).await;
    let requests = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    assert_eq!(requests[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(requests[0].header("x-team"), Some("payments"));
}

async fn bad_options_answer_422_naming_the_field_and_change_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(
            json!({"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer x"}}),
        )
        .await;
    let id = endpoint["id"].as_str().expect("endpoint id");
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"http_method": "GET"}), "http_method"),
        (json!({"rate_limit": 0}), "rate_limit"),
        (json!({"rate_limit": 10_001}), "rate_limit"),
        (json!({"ordered": "yes"}), "ordered"),
        (json!({"http_method": ""}), "http_method"),
        (json!({"metadata": many}), "metadata"),
        (json!({"metadata": {"a b": "v"}}), "metadata"),
        (
            json!({"metadata": {"team": "x".repeat(513)}}),
            "metadata.team",
        ),
        (json!({"metadata": {"team": "a\nb"}}), "metadata.team"),
        (
            json!({"headers": {"X-Api-Key": "********"}}),
            "headers.X-Api-Key",
        ),
    ];
    assert_refused_on_create_and_update(&app, &key, &tenant, id, &cases).await;
}

async fn the_rate_limit_spaces_attempts_without_spending_retries(db: TestDb) {
    const EVENTS: usize = 6;
    const PER_SECOND: u64 = 2;
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "rate_limit": PER_SECOND}))
        .await;
    assert_eq!(endpoint["rate_limit"], PER_SECOND, "{endpoint}");
    let events = app.publish_events(&key, &tenant, "a.b", EVENTS).await;
    let requests = receiver
        .wait_for_count(EVENTS, DELIVERY_TIMEOUT + Duration::from_secs(5))
        .await;
    // A burst of one second's worth, then one every 1/PER_SECOND s: the
    // last of the six cannot leave before (6 - 2) / 2 s after the first.
    let spread = requests[EVENTS - 1].at - requests[0].at;
    let least = Duration::from_millis(1000 * (EVENTS as u64 - PER_SECOND) / PER_SECOND);
    assert!(
        spread + Duration::from_millis(50) >= least,
        "{EVENTS} attempts within {spread:?} at {PER_SECOND}/s"
    );
    // The receiver has the requests before their attempts are recorded.
    for id in &events {
        let event = app.get_event(&key, &tenant, id).await;
        let delivery_id = event["deliveries"][0]["id"].as_str().unwrap_or("");
        let delivery = app
            .wait_for_delivery_state(&key, &tenant, delivery_id, "succeeded", DELIVERY_TIMEOUT)
            .await;
        assert_eq!(delivery["attempt_count"], 1, "{delivery}");
    }
    let path = format!(
        "/v1/tenants/{tenant}/endpoints/{}",
        endpoint["id"].as_str().unwrap_or("")
    );
    app.patch_json(&key, &path, &json!({"rate_limit": null}))
        .await;
    assert_eq!(app.get_json(&key, &path).await["rate_limit"], Value::Null);
}
