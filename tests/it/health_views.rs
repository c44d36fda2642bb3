//! Endpoint health (issue 3), the health views: an endpoint's status,
//! circuit, queue, windows of history and recent attempts, and the
//! tenant's summary with its endpoints worst first.

use crate::common::{
    circuit_state, id_of, parse_time, quiet, spawn_app, spawn_app_with_endpoint, wait_until,
    wall_time, with, Receiver, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    health_view_reports_status_circuit_queue_and_history,
    tenant_health_lists_endpoints_worst_first,
);

async fn health_view_reports_status_circuit_queue_and_history(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_endpoint(
        db,
        200,
        json!({"retry_schedule": [3600], "event_types": ["invoice.*"]}),
    )
    .await;
    let idle_receiver = Receiver::start();
    let idle = ep
        .sibling(
            &app,
            json!({"url": idle_receiver.url(), "event_types": ["nothing.*"]}),
        )
        .await;

    // A new endpoint: nothing to report yet.
    let fresh = idle.health(&app).await;
    assert_eq!(fresh["endpoint_id"], json!(idle.id), "{fresh}");
    assert_eq!(fresh["url"], json!(idle_receiver.url()), "{fresh}");
    assert_eq!(
        fresh["status"],
        json!({"state": "active", "reason": null, "since": null}),
        "{fresh}"
    );
    assert_eq!(
        fresh["circuit"],
        json!({"state": "closed", "opened_at": null, "next_probe_at": null}),
        "{fresh}"
    );
    assert_eq!(fresh["consecutive_failures"], json!(0), "{fresh}");
    assert_eq!(fresh["failing_since"], Value::Null, "{fresh}");
    assert_eq!(
        fresh["queue"],
        json!({"pending": 0, "held": 0, "in_flight": 0, "waiting_for_slot": 0}),
        "{fresh}"
    );
    for window in ["last_hour", "last_day"] {
        assert_eq!(fresh[window]["attempts"], json!(0), "{fresh}");
        assert_eq!(fresh[window]["success_rate"], Value::Null, "{fresh}");
        assert_eq!(fresh[window]["latency_p50_ms"], Value::Null, "{fresh}");
    }
    assert_eq!(fresh["last_success_at"], Value::Null, "{fresh}");
    assert_eq!(fresh["last_failure"], Value::Null, "{fresh}");
    assert_eq!(fresh["recent_attempts"], json!([]), "{fresh}");

    // Two successes, then a failure that waits an hour for its retry.
    let ok = ep.publish_numbered(&app, "evt_view_ok", 2).await;
    ep.wait_for_deliveries_of(&app, &ok, "succeeded").await;
    receiver.set_status(500);
    let failing = ep.publish_numbered(&app, "evt_view_fail", 1).await;
    let failed_delivery = app
        .single_delivery_id(&ep.key, &ep.tenant, &failing[0])
        .await;
    let health = ep
        .wait_for_health(&app, DELIVERY_TIMEOUT, |h| {
            if h["consecutive_failures"] == json!(1) && h["last_hour"]["attempts"] == json!(3) {
                Ok(())
            } else {
                Err("one failure after two successes".into())
            }
        })
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);

    assert_eq!(health["endpoint_id"], json!(ep.id), "{health}");
    assert_eq!(health["url"], json!(receiver.url()), "{health}");
    assert_eq!(health["status"]["state"], json!("active"), "{health}");
    assert_eq!(health["circuit"]["state"], json!("closed"), "{health}");
    let failing_since = parse_time(&health["failing_since"], "failing_since");
    assert!(
        (failing_since - wall_time(&requests[2]))
            .num_milliseconds()
            .abs()
            < 2000,
        "failing_since is the time of the first failure of the streak: {health}"
    );
    assert_eq!(
        health["queue"],
        json!({"pending": 1, "held": 0, "in_flight": 0, "waiting_for_slot": 0}),
        "{health}"
    );
    for window in ["last_hour", "last_day"] {
        let w = &health[window];
        assert_eq!(w["attempts"], json!(3), "{window}: {health}");
        assert_eq!(w["succeeded"], json!(2), "{window}: {health}");
        assert_eq!(w["failed"], json!(1), "{window}: {health}");
        let rate = w["success_rate"]
            .as_f64()
            .unwrap_or_else(|| panic!("{window}.success_rate: {health}"));
        assert!(
            (rate - 2.0 / 3.0).abs() < 0.01,
            "{window}.success_rate {rate}"
        );
    }
    let p50 = health["last_hour"]["latency_p50_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_p50_ms: {health}"));
    let p95 = health["last_hour"]["latency_p95_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_p95_ms: {health}"));
    assert!(p50 >= 0.0 && p50 <= p95 && p95 < 30_000.0, "{health}");
    let last_success = parse_time(&health["last_success_at"], "last_success_at");
    assert!(
        last_success <= failing_since + chrono::Duration::milliseconds(1),
        "{health}"
    );
    let last_failure = &health["last_failure"];
    parse_time(&last_failure["at"], "last_failure.at");
    assert_eq!(last_failure["status_code"], json!(500), "{health}");
    assert_eq!(last_failure["error_kind"], json!("http_status"), "{health}");
    assert!(
        last_failure.get("error_message").is_some(),
        "last_failure.error_message present (may be null): {health}"
    );

    let recent = health["recent_attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("recent_attempts: {health}"));
    assert_eq!(recent.len(), 3, "{health}");
    assert_eq!(
        recent[0]["delivery_id"],
        json!(failed_delivery),
        "newest first: {health}"
    );
    assert_eq!(recent[0]["status_code"], json!(500), "{health}");
    assert_eq!(recent[0]["error_kind"], json!("http_status"), "{health}");
    assert_eq!(recent[1]["status_code"], json!(200), "{health}");
    assert_eq!(recent[2]["status_code"], json!(200), "{health}");
    for attempt in recent {
        for field in [
            "delivery_id",
            "attempt",
            "started_at",
            "duration_ms",
            "status_code",
            "error_kind",
            "error_message",
        ] {
            assert!(
                attempt.get(field).is_some(),
                "recent attempt without {field}: {health}"
            );
        }
        assert_eq!(attempt["attempt"], json!(1), "{health}");
    }
    let times: Vec<_> = recent
        .iter()
        .map(|a| parse_time(&a["started_at"], "started_at"))
        .collect();
    assert!(
        times[0] >= times[1] && times[1] >= times[2],
        "newest first: {health}"
    );
}
async fn tenant_health_lists_endpoints_worst_first(db: TestDb) {
    let receiver = Receiver::start();
    let failing_receiver = Receiver::start();
    failing_receiver.set_status(500);
    let mixed_receiver = Receiver::start();
    mixed_receiver.script(&[500]);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;

    // Each endpoint on `url` takes the event types `types` alone.
    let create = |url: String, types: &str, extra: Value| {
        let body = quiet(with(json!({"url": url, "event_types": [types]}), extra));
        app.create_endpoint(&key, &tenant, body)
    };
    // Created best first, so that creation order cannot pass for the ranking.
    let healthy = create(receiver.url(), "healthy.*", json!({})).await;
    let mixed = create(
        mixed_receiver.url(),
        "mixed.*",
        json!({"retry_schedule": [1]}),
    )
    .await;
    let failing_once = create(
        failing_receiver.url(),
        "once.*",
        json!({"retry_schedule": [3600]}),
    )
    .await;
    let failing_twice = create(
        failing_receiver.url(),
        "twice.*",
        json!({"retry_schedule": [1, 3600]}),
    )
    .await;
    let open = create(
        failing_receiver.url(),
        "open.*",
        json!({
            "retry_schedule": [3600],
            "breaker_failures": 1,
            "breaker_cooldown_seconds": 600,
            "breaker_max_cooldown_seconds": 600,
        }),
    )
    .await;
    let disabled = create(receiver.url(), "disabled.*", json!({})).await;

    for prefix in ["healthy", "mixed", "once", "twice", "open"] {
        app.publish_accepted(
            &key,
            &tenant,
            &json!({"type": format!("{prefix}.happened"), "payload": {}}),
        )
        .await;
    }
    let disabled_answer = app.disable_endpoint(&key, &tenant, &id_of(&disabled)).await;
    assert_eq!(
        disabled_answer.status,
        StatusCode::OK,
        "{}",
        disabled_answer.body
    );

    let expected: Vec<String> = [
        &disabled,
        &open,
        &failing_twice,
        &failing_once,
        &mixed,
        &healthy,
    ]
    .iter()
    .map(|e| id_of(e))
    .collect();
    let rows = wait_until(DELIVERY_TIMEOUT, || async {
        let rows = app.tenant_health(&key, &tenant).await;
        let order: Vec<String> = rows
            .iter()
            .map(|r| r["endpoint_id"].as_str().unwrap_or_default().to_string())
            .collect();
        let row = |endpoint: &Value| {
            rows.iter()
                .find(|r| r["endpoint_id"] == endpoint["id"])
                .cloned()
                .unwrap_or(Value::Null)
        };
        let rate = |endpoint: &Value| row(endpoint)["last_hour_success_rate"].as_f64();
        let failures = |endpoint: &Value| row(endpoint)["consecutive_failures"].as_i64();
        let settled = rate(&healthy) == Some(1.0)
            && rate(&mixed).is_some_and(|x| (x - 0.5).abs() < 0.01)
            && failures(&failing_twice) == Some(2)
            && failures(&failing_once) == Some(1)
            && row(&open)["circuit"] != Value::Null
            && circuit_state(&row(&open)) == "open";
        if settled && order == expected {
            Ok(rows)
        } else {
            Err(format!(
                "tenant health worst first (disabled, open, 2 failures, 1 failure, 50 %, healthy) = {expected:?}, got {order:?}: {rows:?}"
            ))
        }
    })
    .await;
    for row in &rows {
        for field in [
            "endpoint_id",
            "url",
            "status",
            "disabled_reason",
            "circuit",
            "consecutive_failures",
            "failing_since",
            "pending",
            "held",
            "last_hour_success_rate",
        ] {
            assert!(
                row.get(field).is_some(),
                "summary row without {field}: {row}"
            );
        }
    }
    assert_eq!(rows[0]["status"], json!("disabled"), "{:?}", rows[0]);
    assert_eq!(rows[0]["disabled_reason"], json!("manual"), "{:?}", rows[0]);
    assert_eq!(circuit_state(&rows[1]), "open", "{:?}", rows[1]);
    assert_eq!(rows[1]["status"], json!("active"), "{:?}", rows[1]);
    assert_eq!(rows[1]["pending"], json!(1), "{:?}", rows[1]);
    assert_eq!(rows[5]["consecutive_failures"], json!(0), "{:?}", rows[5]);
    assert_eq!(rows[5]["failing_since"], Value::Null, "{:?}", rows[5]);
    assert_eq!(circuit_state(&rows[5]), "closed", "{:?}", rows[5]);
}
