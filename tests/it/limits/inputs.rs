//! Every input out of bounds is refused, not clamped, with a problem naming
//! it, on create and on update: retry schedules and counts, oversized and
//! reserved endpoint fields, tenants and events, and bodies over the
//! payload limit (413).

use super::{app_with_idle_endpoint, assert_refused_on_create_and_update, row_counts};
use crate::common::{spawn_app_with, to_bytes, ApiResponse, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    retry_delays_and_counts_out_of_range_are_refused_not_clamped,
    oversized_and_reserved_endpoint_inputs_are_refused,
    other_inputs_are_bounded_and_the_reserved_type_prefix_ignores_case,
    bodies_over_the_payload_limit_are_refused_with_413,
);

async fn retry_delays_and_counts_out_of_range_are_refused_not_clamped(db: TestDb) {
    let (app, tenant, key, endpoint) = app_with_idle_endpoint(db).await;
    let id = endpoint["id"].as_str().expect("endpoint id");
    let too_big = u64::from(u32::MAX);
    let past_i32 = 1_u64 << 31;
    let cases = [
        (json!({"retry_schedule": [0]}), "retry_schedule[0]"),
        (json!({"retry_schedule": [5, 5, 0]}), "retry_schedule[2]"),
        (json!({"retry_schedule": vec![0; 50]}), "retry_schedule[0]"),
        (json!({"retry_schedule": [5, 86401]}), "retry_schedule[1]"),
        (json!({"retry_schedule": [-1]}), "retry_schedule[0]"),
        (json!({"retry_schedule": vec![1; 51]}), "retry_schedule"),
        (json!({"breaker_failures": too_big}), "breaker_failures"),
        (json!({"breaker_failures": past_i32}), "breaker_failures"),
        (json!({"breaker_failures": too_big + 1}), "breaker_failures"),
        (json!({"breaker_failures": -1}), "breaker_failures"),
        (json!({"breaker_failures": 0}), "breaker_failures"),
        (
            json!({"disable_after_failures": past_i32}),
            "disable_after_failures",
        ),
        (
            json!({"alert_thresholds": [1, past_i32]}),
            "alert_thresholds[1]",
        ),
        (json!({"timeout_seconds": 301}), "timeout_seconds"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
        (json!({"max_in_flight": 257}), "max_in_flight"),
        (
            json!({"breaker_cooldown_seconds": u64::MAX}),
            "breaker_cooldown_seconds",
        ),
        (
            json!({"disable_after_seconds": 30 * 24 * 3600 + 1}),
            "disable_after_seconds",
        ),
    ];
    assert_refused_on_create_and_update(&app, &key, &tenant, id, &cases).await;

    // The largest values that fit are kept as given.
    let path = format!("/v1/tenants/{tenant}/endpoints/{id}");
    let largest = i64::from(i32::MAX);
    app.patch_json(
        &key,
        &path,
        &json!({
            "breaker_failures": largest,
            "disable_after_failures": largest,
            "retry_schedule": [1, 86400],
        }),
    )
    .await;
    let view = app.get_json(&key, &path).await;
    assert_eq!(view["breaker_failures"], json!(largest), "{view}");
    assert_eq!(view["disable_after_failures"], json!(largest), "{view}");
    assert_eq!(view["retry_schedule"], json!([1, 86400]), "{view}");
}

async fn oversized_and_reserved_endpoint_inputs_are_refused(db: TestDb) {
    let (app, tenant, key, endpoint) = app_with_idle_endpoint(db).await;
    let id = endpoint["id"].as_str().expect("endpoint id");
    let base = "http://127.0.0.1:9/";
    let long_url = format!("{base}{}", "a".repeat(2049 - base.len()));
    let many_headers: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("X-Custom-{i}"), json!("v")))
        .collect();
    let mut cases = vec![
        (json!({"url": long_url}), "url".to_owned()),
        (json!({"headers": many_headers}), "headers".to_owned()),
        (
            json!({"headers": {"X-Big": "v".repeat(4097)}}),
            "headers.X-Big".to_owned(),
        ),
        (
            json!({"headers": {"X Bad": "v"}}),
            "headers.X Bad".to_owned(),
        ),
        (
            json!({"description": "d".repeat(1025)}),
            "description".to_owned(),
        ),
        (
            json!({"event_types": [format!("a.{}", "b".repeat(254))]}),
            "event_types[0]".to_owned(),
        ),
        (
            json!({"signature_scheme": "hex", "signature_header": "x".repeat(129)}),
            "signature_header".to_owned(),
        ),
    ];
    // The headers a sender sets itself, whatever their case.
    let reserved_headers = "connection Keep-Alive proxy-connection TE trailer transfer-encoding \
                            upgrade Host content-length content-type webhook-id Webhook-Anything";
    for reserved in reserved_headers.split_whitespace() {
        cases.push((
            json!({"headers": {reserved: "x"}}),
            format!("headers.{reserved}"),
        ));
    }
    let cases: Vec<(Value, &str)> = cases
        .iter()
        .map(|(fields, field)| (fields.clone(), field.as_str()))
        .collect();
    assert_refused_on_create_and_update(&app, &key, &tenant, id, &cases).await;

    // At the limits, accepted.
    let url = format!("{base}{}", "a".repeat(2048 - base.len()));
    let headers: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("X-Custom-{i}"), json!("v".repeat(4096))))
        .collect();
    app.patch_json(
        &key,
        &format!("/v1/tenants/{tenant}/endpoints/{id}"),
        &json!({"url": url, "headers": headers}),
    )
    .await;
}

async fn other_inputs_are_bounded_and_the_reserved_type_prefix_ignores_case(db: TestDb) {
    let (app, tenant, key, _) = app_with_idle_endpoint(db).await;
    let before = row_counts(&app);
    let admin = app.admin_key.clone();
    let tenants: [(Value, &str); 2] = [
        (json!({"name": "n".repeat(257)}), "name"),
        (json!({"id": "i".repeat(65), "name": "x"}), "id"),
    ];
    for (body, field) in tenants {
        app.post(&admin, "/v1/tenants", &body)
            .await
            .assert_invalid_field(field, &format!("tenant {body}"));
    }
    let events_path = format!("/v1/tenants/{tenant}/events");
    let events: [(Value, &str); 5] = [
        (
            json!({"type": "Hookrelay.endpoint.failing", "payload": {}}),
            "type",
        ),
        (json!({"type": "HOOKRELAY.x", "payload": {}}), "type"),
        (json!({"type": "hookrelay.x", "payload": {}}), "type"),
        (
            json!({"type": format!("a.{}", "b".repeat(254)), "payload": {}}),
            "type",
        ),
        (
            json!({"type": "a.b", "id": "e".repeat(65), "payload": {}}),
            "id",
        ),
    ];
    for (body, field) in events {
        app.post(&key, &events_path, &body)
            .await
            .assert_invalid_field(field, &format!("event {body}"));
    }
    let long_key = "k".repeat(256);
    app.send(
        Method::POST,
        &events_path,
        Some(&key),
        &[("Idempotency-Key", long_key.as_str())],
        Some(to_bytes(&json!({"type": "a.b", "payload": {}}))),
    )
    .await
    .assert_invalid_field("Idempotency-Key", "a 256-character idempotency key");
    assert_eq!(row_counts(&app), before, "refused requests wrote rows");

    // A type that merely contains the word is the publisher's own.
    let response = app
        .post(
            &key,
            &events_path,
            &json!({"type": "myhookrelay.x", "payload": {}}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 202, "{}", response.body);
}

async fn bodies_over_the_payload_limit_are_refused_with_413(db: TestDb) {
    assert_eq!(
        hookrelay::config::Settings::new("sqlite://unused.db").max_payload_bytes,
        256 * 1024,
        "the default limit"
    );
    // A small limit, so that the whole body is written before the answer.
    let app = spawn_app_with(db, |settings| settings.max_payload_bytes = 4096).await;
    let (tenant, key, _) = app
        .create_tenant_with_endpoint(json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let before = row_counts(&app);
    let events_path = format!("/v1/tenants/{tenant}/events");
    let oversized = json!({"type": "a.b", "payload": {"fill": "x".repeat(5000)}});
    let answer: ApiResponse = app.post(&key, &events_path, &oversized).await;
    answer.assert_problem(413, "an event over the limit");
    app.post(
        &key,
        &format!("/v1/tenants/{tenant}/endpoints"),
        &json!({"url": "http://127.0.0.1:9/hook", "description": "d".repeat(5000)}),
    )
    .await
    .assert_problem(413, "an endpoint over the limit");
    assert_eq!(row_counts(&app), before, "an oversized body wrote rows");

    let fitting = json!({"type": "a.b", "payload": {"fill": "x".repeat(3000)}});
    let response = app.post(&key, &events_path, &fitting).await;
    assert_eq!(response.status.as_u16(), 202, "{}", response.body);
}
