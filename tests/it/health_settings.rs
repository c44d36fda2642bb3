//! Endpoint health (issue 3), its settings: invalid global settings stop
//! the start-up and invalid endpoint overrides are refused naming the
//! field, an override set to null goes back to the global setting, and the
//! `hookrelay.` event types are reserved for operational events.

use std::time::Duration;

use crate::common::{
    id_of, operational_events, spawn_app, spawn_app_with, spawn_app_with_endpoint, try_build_app,
    with, Receiver, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    invalid_health_settings_are_refused_at_start_up_and_on_the_api,
    an_override_set_to_null_goes_back_to_the_global_setting,
    publishing_a_hookrelay_event_type_is_refused,
);

async fn invalid_health_settings_are_refused_at_start_up_and_on_the_api(db: TestDb) {
    type Configure = fn(&mut hookrelay::config::Settings);
    let invalid: [(&str, Configure); 6] = [
        ("alert_thresholds", |s| s.alert_thresholds = vec![0, 5]),
        ("alert_thresholds", |s| s.alert_thresholds = vec![5, 3]),
        ("alert_thresholds", |s| s.alert_thresholds = vec![3, 3, 10]),
        ("breaker_cooldown_seconds", |s| {
            s.breaker_cooldown_seconds = 700;
            s.breaker_max_cooldown_seconds = 600;
        }),
        ("breaker_failures", |s| s.breaker_failures = 0),
        ("disable_after_failures", |s| s.disable_after_failures = 0),
    ];
    for (field, configure) in invalid {
        let error = try_build_app(db.url(), configure)
            .await
            .err()
            .unwrap_or_else(|| panic!("Application::build must refuse an invalid {field}"));
        assert!(
            error.contains("Settings"),
            "invalid {field}: expected StartupError::Settings, got {error}"
        );
        let normalized = error.to_ascii_lowercase().replace('-', "_");
        let named = normalized.contains(field)
            || (field == "breaker_cooldown_seconds"
                && normalized.contains("breaker_max_cooldown_seconds"));
        assert!(named, "the start-up error must name {field}: {error}");
    }
    // Edge values that are valid.
    try_build_app(db.url(), |s| {
        s.alert_thresholds = vec![1];
        s.breaker_cooldown_seconds = 600;
        s.breaker_max_cooldown_seconds = 600;
        s.disable_after_seconds = 0;
    })
    .await
    .unwrap_or_else(|e| panic!("valid edge settings refused: {e}"));

    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/endpoints");
    let url = receiver.url();
    // Each a valid URL with one invalid setting.
    let invalid_endpoints = [
        (json!({"alert_thresholds": [0]}), "alert_thresholds"),
        (json!({"alert_thresholds": [5, 3]}), "alert_thresholds"),
        (json!({"alert_thresholds": [3, 3]}), "alert_thresholds"),
        (json!({"breaker_failures": 0}), "breaker_failures"),
        (
            json!({"disable_after_failures": 0}),
            "disable_after_failures",
        ),
        // Checked against the global maximum (600 s) and cool-down (30 s).
        (
            json!({"breaker_cooldown_seconds": 601}),
            "breaker_cooldown_seconds",
        ),
        (
            json!({"breaker_max_cooldown_seconds": 10}),
            "breaker_max_cooldown_seconds",
        ),
        (json!({"breaker_failures": -1}), "breaker_failures"),
        (json!({"alert_thresholds": "3,5"}), "alert_thresholds"),
    ];
    for (settings, field) in invalid_endpoints {
        let body = with(json!({"url": url}), settings);
        app.post(&key, &path, &body)
            .await
            .assert_invalid_field(field, &format!("POST {path} {body}"));
    }
    let endpoints = app.get_json(&key, &path).await;
    assert_eq!(endpoints["data"], json!([]), "nothing created: {endpoints}");

    let created = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": url, "breaker_failures": 7, "alert_thresholds": [1, 4]}),
        )
        .await;
    let ep = id_of(&created);
    assert_eq!(created["status"], json!("active"), "{created}");
    assert_eq!(created["disabled_at"], Value::Null, "{created}");
    assert_eq!(created["disabled_reason"], Value::Null, "{created}");
    assert_eq!(created["breaker_failures"], json!(7), "{created}");
    assert_eq!(created["alert_thresholds"], json!([1, 4]), "{created}");
    assert_eq!(
        created["overrides"],
        json!({
            "breaker_failures": 7,
            "breaker_cooldown_seconds": null,
            "breaker_max_cooldown_seconds": null,
            "alert_thresholds": [1, 4],
            "disable_after_failures": null,
            "disable_after_seconds": null,
        }),
        "{created}"
    );
    for field in [
        "breaker_cooldown_seconds",
        "breaker_max_cooldown_seconds",
        "disable_after_failures",
        "disable_after_seconds",
    ] {
        assert_eq!(
            created[field],
            Value::Null,
            "{field} not overridden: {created}"
        );
    }

    let endpoint_path = format!("{path}/{ep}");
    for (body, field, what) in [
        (
            json!({"alert_thresholds": [4, 1]}),
            "alert_thresholds",
            "PATCH unsorted thresholds",
        ),
        (
            json!({"breaker_max_cooldown_seconds": 20}),
            "breaker_max_cooldown_seconds",
            "PATCH a maximum below the global cool-down (30 s)",
        ),
        (
            json!({"breaker_failures": 0, "description": "changed"}),
            "breaker_failures",
            "PATCH breaker_failures 0",
        ),
    ] {
        app.patch(&key, &endpoint_path, &body)
            .await
            .assert_invalid_field(field, what);
    }
    let unchanged = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(unchanged["alert_thresholds"], json!([1, 4]), "{unchanged}");
    assert_eq!(unchanged["breaker_failures"], json!(7), "{unchanged}");
    assert_eq!(
        unchanged["breaker_max_cooldown_seconds"],
        Value::Null,
        "{unchanged}"
    );
    assert_ne!(unchanged["description"], json!("changed"), "{unchanged}");

    let patched = app
        .patch_json(
            &key,
            &endpoint_path,
            &json!({"breaker_cooldown_seconds": 5, "breaker_max_cooldown_seconds": 20, "disable_after_seconds": 0}),
        )
        .await;
    assert_eq!(patched["breaker_cooldown_seconds"], json!(5), "{}", patched);
    assert_eq!(
        patched["overrides"]["breaker_max_cooldown_seconds"],
        json!(20),
        "{}",
        patched
    );
    assert_eq!(patched["disable_after_seconds"], json!(0), "{}", patched);
    assert_eq!(patched["breaker_failures"], json!(7), "{}", patched);

    // With the per-endpoint maximum of 20 s, a 25 s cool-down is too long.
    app.patch(
        &key,
        &endpoint_path,
        &json!({"breaker_cooldown_seconds": 25}),
    )
    .await
    .assert_invalid_field(
        "breaker_cooldown_seconds",
        "cool-down above the endpoint's maximum",
    );
}

async fn an_override_set_to_null_goes_back_to_the_global_setting(db: TestDb) {
    let (_receiver, app, ep) = spawn_app_with_endpoint(
        db,
        200,
        json!({"breaker_failures": 3, "alert_thresholds": [1, 2]}),
    )
    .await;
    let endpoint = &ep.created;
    assert_eq!(
        endpoint["overrides"]["breaker_failures"],
        json!(3),
        "{endpoint}"
    );

    // Absent keeps the override; null removes it.
    let patched = ep.patch(&app, json!({"description": "x"})).await;
    assert_eq!(
        patched.body["breaker_failures"],
        json!(3),
        "{}",
        patched.body
    );
    let patched = ep.patch(&app, json!({"breaker_failures": null})).await;
    patched.assert_ok_with(&[
        ("/breaker_failures", Value::Null),
        ("/overrides/alert_thresholds", json!([1, 2])),
    ]);
    let view = ep.view(&app).await;
    assert_eq!(view["overrides"]["breaker_failures"], Value::Null, "{view}");
    let health = ep.health(&app).await;
    assert_eq!(
        health["limits"],
        json!({
            "breaker_failures": 5,
            "breaker_cooldown_seconds": 30,
            "breaker_max_cooldown_seconds": 600,
            "alert_thresholds": [1, 2],
            "disable_after_failures": 10,
            "disable_after_seconds": 3600,
        }),
        "the global settings where no override remains: {health}"
    );

    let refused = ep.patch(&app, json!({"alert_thresholds": [0]})).await;
    refused.assert_invalid_field("alert_thresholds", "a zero threshold");
}

async fn publishing_a_hookrelay_event_type_is_refused(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app_with(db, |_| {}).await;
    let (tenant, key, _) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "event_types": ["*"]}))
        .await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "event_types": ["hookrelay.endpoint.*"]}),
    )
    .await;
    for event_type in [
        "hookrelay.endpoint.failing",
        "hookrelay.endpoint.disabled",
        "hookrelay.anything",
    ] {
        app.publish(&key, &tenant, &json!({"type": event_type, "payload": {}}))
            .await
            .assert_invalid_field("type", &format!("publishing {event_type}"));
    }
    let deliveries = app.list_deliveries(&key, &tenant, "").await;
    assert!(deliveries.is_empty(), "{deliveries:?}");
    // Only the reserved prefix is refused.
    let (_, n) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "hookrelayed.thing", "payload": {}}),
        )
        .await;
    assert_eq!(n, 1);
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    receiver
        .assert_nothing_more_arrives(
            1,
            Duration::from_millis(500),
            "the accepted event, and no operational event after it",
        )
        .await;
    assert!(operational_events(&receiver.requests()).is_empty());
}
