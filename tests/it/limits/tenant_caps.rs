//! A tenant's caps: at most a thousand endpoints, and a timeout and an
//! in-flight total its own key cannot pass (the admin key can), even with
//! racing creates.

use super::{app_with_idle_endpoint, assert_refused_on_create_and_update, count_rows, database_of};
use crate::common::{id_of, spawn_app_with, TestApp, TestDb};
use serde_json::json;

backend_tests!(
    a_tenant_has_at_most_a_thousand_endpoints,
    a_tenant_key_is_held_to_the_timeout_and_in_flight_caps_and_the_admin_key_is_not,
    racing_creates_never_take_a_tenant_past_its_in_flight_cap,
);

async fn a_tenant_has_at_most_a_thousand_endpoints(db: TestDb) {
    let (app, tenant, key, template) = app_with_idle_endpoint(db).await;
    let template = template["id"].as_str().expect("endpoint id");
    // 998 copies in the database make 999; the API adds the thousandth.
    let db = database_of(&app);
    db.execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 998) \
             INSERT INTO endpoints (id, tenant_id, url, description, event_types, headers, \
             secret, timeout_seconds, max_in_flight, retry_schedule, status, created_at, \
             updated_at, signature_scheme, signature_header, signature_sha256_prefix) \
             SELECT 'ep_fill_' || CAST(n.i AS TEXT), e.tenant_id, e.url, e.description, \
             e.event_types, e.headers, e.secret, e.timeout_seconds, e.max_in_flight, \
             e.retry_schedule, e.status, e.created_at, e.updated_at, e.signature_scheme, \
             e.signature_header, e.signature_sha256_prefix \
             FROM n, endpoints e WHERE e.id = '{template}'"
    ));
    assert_eq!(count_rows(db, "endpoints"), 999);
    let path = format!("/v1/tenants/{tenant}/endpoints");
    let body = json!({"url": "http://127.0.0.1:9/hook"});
    // Racing creates for the last place: exactly one gets it.
    let answers =
        futures_util::future::join_all((0..5).map(|_| app.post(&key, &path, &body))).await;
    let created = answers.iter().filter(|a| a.status.as_u16() == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    for refused in answers.iter().filter(|a| a.status.as_u16() != 201) {
        refused.assert_invalid_field("endpoints", "an endpoint past the thousandth");
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("1000"), "{}", refused.body);
    }
    assert_eq!(count_rows(db, "endpoints"), 1000);

    // Another tenant is not affected.
    let (other, other_key) = app.create_tenant("other").await;
    app.create_endpoint(&other_key, &other, body).await;
}

/// The in-flight cap of the two scenarios below: two endpoints at the
/// default `max_in_flight` (16) fit, a third does not.
const IN_FLIGHT_CAP: u64 = 40;

async fn app_with_tenant_caps(db: TestDb) -> TestApp {
    spawn_app_with(db, |settings| {
        settings.tenant_max_in_flight_total = IN_FLIGHT_CAP;
    })
    .await
}

fn in_flight_sum(app: &TestApp, tenant: &str) -> i64 {
    database_of(app).count_sql(&format!(
        "SELECT COALESCE(SUM(max_in_flight), 0) AS n FROM endpoints WHERE tenant_id = '{tenant}'"
    ))
}

async fn a_tenant_key_is_held_to_the_timeout_and_in_flight_caps_and_the_admin_key_is_not(
    db: TestDb,
) {
    let app = app_with_tenant_caps(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoints = format!("/v1/tenants/{tenant}/endpoints");
    let first = id_of(
        &app.create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
            .await,
    );
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 8, "timeout_seconds": 60}),
    )
    .await;
    // 16 + 8: a third endpoint at 16 would make 40, the cap; 17 passes it.
    assert_eq!(in_flight_sum(&app, &tenant), 24);

    // Refused on create and update, changing nothing: a timeout over the
    // tenant cap (60 s), and a max_in_flight that takes the tenant past 40.
    // (33: 24 + 33 on create, 8 + 33 when the first endpoint's 16 becomes 33.)
    let cases = [
        (json!({"timeout_seconds": 61}), "timeout_seconds"),
        (json!({"max_in_flight": 33}), "max_in_flight"),
    ];
    assert_refused_on_create_and_update(&app, &key, &tenant, &first, &cases).await;
    let refused = app
        .post(
            &key,
            &endpoints,
            &json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 17}),
        )
        .await;
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("41") && detail.contains("40"),
        "the detail says the tenant's total and the cap: {}",
        refused.body
    );
    let refused = app
        .post(
            &key,
            &endpoints,
            &json!({"url": "http://127.0.0.1:9/hook", "timeout_seconds": 300}),
        )
        .await;
    refused.assert_invalid_field("timeout_seconds", "a tenant's 300 s timeout");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("60")),
        "the detail says the cap: {}",
        refused.body
    );
    assert_eq!(in_flight_sum(&app, &tenant), 24);

    // Up to the caps is allowed.
    let first_path = format!("{endpoints}/{first}");
    app.patch_json(
        &key,
        &first_path,
        &json!({"max_in_flight": 32, "timeout_seconds": 60}),
    )
    .await;
    assert_eq!(in_flight_sum(&app, &tenant), 40);

    // The admin key (the operator) may go past both, up to the API's bounds.
    let operator_set = id_of(
        &app.create_endpoint(
            &app.admin_key,
            &tenant,
            json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 256, "timeout_seconds": 300}),
        )
        .await,
    );
    app.patch_json(&app.admin_key, &first_path, &json!({"max_in_flight": 100}))
        .await;
    assert_eq!(in_flight_sum(&app, &tenant), 8 + 100 + 256);

    // Over the cap now, the tenant key may still change other fields, and
    // keep or lower what the operator set, never raise it.
    let operator_path = format!("{endpoints}/{operator_set}");
    app.patch_json(
        &key,
        &operator_path,
        &json!({"description": "kept", "max_in_flight": 256, "timeout_seconds": 300}),
    )
    .await;
    app.patch_json(
        &key,
        &operator_path,
        &json!({"max_in_flight": 200, "timeout_seconds": 120}),
    )
    .await;
    app.patch(&key, &operator_path, &json!({"max_in_flight": 201}))
        .await
        .assert_invalid_field("max_in_flight", "raising past the cap");
    app.patch(&key, &operator_path, &json!({"timeout_seconds": 121}))
        .await
        .assert_invalid_field("timeout_seconds", "raising past the cap");
    let view = app.get_json(&key, &operator_path).await;
    assert_eq!(
        (&view["max_in_flight"], &view["timeout_seconds"]),
        (&json!(200), &json!(120)),
        "{view}"
    );
    assert_eq!(in_flight_sum(&app, &tenant), 8 + 100 + 200);

    // The cap is the tenant's own: another tenant is not affected.
    let (other, other_key) = app.create_tenant("other").await;
    app.create_endpoint(
        &other_key,
        &other,
        json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 40}),
    )
    .await;
}

async fn racing_creates_never_take_a_tenant_past_its_in_flight_cap(db: TestDb) {
    let app = app_with_tenant_caps(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/endpoints");
    let body = json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 16});
    let answers =
        futures_util::future::join_all((0..5).map(|_| app.post(&key, &path, &body))).await;
    let created = answers.iter().filter(|a| a.status.as_u16() == 201).count();
    assert_eq!(created, 2, "{answers:?}");
    for refused in answers.iter().filter(|a| a.status.as_u16() != 201) {
        refused.assert_invalid_field("max_in_flight", "an endpoint past the cap");
    }
    assert_eq!(in_flight_sum(&app, &tenant), 32);
}
