//! Limits with clear answers (issue 8): every input out of bounds is refused
//! with a problem naming it and changes nothing; the operator's tenant is
//! read-only and restored at every start.

use crate::common::{
    random_secret, spawn_app, spawn_app_with, ApiResponse, Receiver, RestartableApp, TestApp,
    TestDb,
};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    retry_delays_and_counts_out_of_range_are_refused_not_clamped,
    oversized_and_reserved_endpoint_inputs_are_refused,
    other_inputs_are_bounded_and_the_reserved_type_prefix_ignores_case,
    bodies_over_the_payload_limit_are_refused_with_413,
    a_tenant_has_at_most_a_thousand_endpoints,
    a_tenant_key_is_held_to_the_timeout_and_in_flight_caps_and_the_admin_key_is_not,
    racing_creates_never_take_a_tenant_past_its_in_flight_cap,
    the_operator_tenant_can_be_read_not_written,
    start_up_restores_the_operator_endpoint_whatever_happened_to_it,
);

const OPERATOR_TENANT: &str = "hookrelay:operator";
const OPERATOR_ENDPOINT: &str = "ep_operator_alerts";

// ---------------------------------------------------------------------------
// Direct database access: counting rows, and changes the API refuses
// ---------------------------------------------------------------------------

fn count_rows(db: &TestDb, table: &str) -> i64 {
    db.count_sql(&format!("SELECT COUNT(*) AS n FROM {table}"))
}

/// The rows of every table a refused request might have written.
fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let db = app
        .db
        .as_ref()
        .expect("an in-process app keeps its database");
    ["tenants", "endpoints", "events", "deliveries"]
        .into_iter()
        .map(|table| (table, count_rows(db, table)))
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// Each body is refused on create and on update, naming `field`; the
/// endpoint and every table stay as they were.
pub(crate) async fn assert_refused_on_create_and_update(
    app: &TestApp,
    key: &str,
    tenant: &str,
    endpoint_id: &str,
    cases: &[(Value, &str)],
) {
    let path = format!("/v1/tenants/{tenant}/endpoints/{endpoint_id}");
    let before_view = app.get_json(key, &path).await;
    let before_rows = row_counts(app);
    for (fields, field) in cases {
        let mut create = json!({"url": "http://127.0.0.1:9/hook"});
        if let (Some(body), Some(extra)) = (create.as_object_mut(), fields.as_object()) {
            body.extend(extra.clone());
        }
        app.post(key, &format!("/v1/tenants/{tenant}/endpoints"), &create)
            .await
            .assert_invalid_field(field, &format!("create with {fields}"));
        app.patch(key, &path, fields)
            .await
            .assert_invalid_field(field, &format!("update with {fields}"));
    }
    assert_eq!(row_counts(app), before_rows, "refused requests wrote rows");
    let mut after_view = app.get_json(key, &path).await;
    // The live statistics move on their own; the configuration must not.
    after_view["stats"] = before_view["stats"].clone();
    assert_eq!(
        after_view, before_view,
        "a refused update changed the endpoint"
    );
}

async fn retry_delays_and_counts_out_of_range_are_refused_not_clamped(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
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
    let response = app
        .patch(
            &key,
            &path,
            &json!({
                "breaker_failures": largest,
                "disable_after_failures": largest,
                "retry_schedule": [1, 86400],
            }),
        )
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    let view = app.get_json(&key, &path).await;
    assert_eq!(view["breaker_failures"], json!(largest), "{view}");
    assert_eq!(view["disable_after_failures"], json!(largest), "{view}");
    assert_eq!(view["retry_schedule"], json!([1, 86400]), "{view}");
}

async fn oversized_and_reserved_endpoint_inputs_are_refused(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
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
    for reserved in [
        "connection",
        "Keep-Alive",
        "proxy-connection",
        "TE",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "Host",
        "content-length",
        "content-type",
        "webhook-id",
        "Webhook-Anything",
    ] {
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
    let response = app
        .patch(
            &key,
            &format!("/v1/tenants/{tenant}/endpoints/{id}"),
            &json!({"url": url, "headers": headers}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
}

async fn other_inputs_are_bounded_and_the_reserved_type_prefix_ignores_case(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
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
        Some(crate::common::to_bytes(
            &json!({"type": "a.b", "payload": {}}),
        )),
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
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
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

async fn a_tenant_has_at_most_a_thousand_endpoints(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let template = app
        .create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let template = template["id"].as_str().expect("endpoint id");
    // 998 copies in the database make 999; the API adds the thousandth.
    let db = app
        .db
        .as_ref()
        .expect("an in-process app keeps its database");
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
    let db = app
        .db
        .as_ref()
        .expect("an in-process app keeps its database");
    db.count_sql(&format!(
        "SELECT COALESCE(SUM(max_in_flight), 0) AS n FROM endpoints WHERE tenant_id = '{tenant}'"
    ))
}

async fn a_tenant_key_is_held_to_the_timeout_and_in_flight_caps_and_the_admin_key_is_not(
    db: TestDb,
) {
    let app = app_with_tenant_caps(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoints = format!("/v1/tenants/{tenant}/endpoints");
    let first = app
        .create_endpoint(&key, &tenant, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let first = first["id"].as_str().expect("endpoint id").to_owned();
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
    let response = app
        .patch(
            &key,
            &first_path,
            &json!({"max_in_flight": 32, "timeout_seconds": 60}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    assert_eq!(in_flight_sum(&app, &tenant), 40);

    // The admin key (the operator) may go past both, up to the API's bounds.
    let operator_set = app
        .create_endpoint(
            &app.admin_key,
            &tenant,
            json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 256, "timeout_seconds": 300}),
        )
        .await;
    let operator_set = operator_set["id"].as_str().expect("endpoint id").to_owned();
    let response = app
        .patch(&app.admin_key, &first_path, &json!({"max_in_flight": 100}))
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    assert_eq!(in_flight_sum(&app, &tenant), 8 + 100 + 256);

    // Over the cap now, the tenant key may still change other fields, and
    // keep or lower what the operator set, never raise it.
    let operator_path = format!("{endpoints}/{operator_set}");
    let response = app
        .patch(
            &key,
            &operator_path,
            &json!({"description": "kept", "max_in_flight": 256, "timeout_seconds": 300}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    let response = app
        .patch(
            &key,
            &operator_path,
            &json!({"max_in_flight": 200, "timeout_seconds": 120}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
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

async fn app_with_operator_endpoint(db: TestDb, alerts: &Receiver) -> TestApp {
    let url = alerts.url();
    spawn_app_with(db, move |settings| {
        settings.alert_url = Some(url);
        settings.alert_secret = Some(random_secret());
    })
    .await
}

async fn the_operator_tenant_can_be_read_not_written(db: TestDb) {
    let alerts = Receiver::start();
    let app = app_with_operator_endpoint(db, &alerts).await;
    let admin = app.admin_key.clone();
    let tenant_path = format!("/v1/tenants/{OPERATOR_TENANT}");
    let endpoint_path = format!("{tenant_path}/endpoints/{OPERATOR_ENDPOINT}");
    let before_view = app.get_json(&admin, &endpoint_path).await;
    assert_eq!(before_view["url"], json!(alerts.url()), "{before_view}");
    app.get_json(&admin, &format!("{tenant_path}/endpoints"))
        .await;
    app.get_json(&admin, &format!("{endpoint_path}/health"))
        .await;
    let before_rows = row_counts(&app);

    let endpoint = json!({"url": "http://127.0.0.1:9/hook"});
    let writes: [(Method, String, Option<Value>); 9] = [
        (
            Method::POST,
            format!("{tenant_path}/endpoints"),
            Some(endpoint.clone()),
        ),
        (Method::PATCH, endpoint_path.clone(), Some(endpoint)),
        (Method::PATCH, endpoint_path.clone(), Some(json!({}))),
        (Method::POST, format!("{endpoint_path}/disable"), None),
        (Method::POST, format!("{endpoint_path}/enable"), None),
        (Method::POST, format!("{endpoint_path}/rotate-secret"), None),
        (Method::POST, format!("{tenant_path}/api-keys"), None),
        (
            Method::POST,
            format!("{tenant_path}/events"),
            Some(json!({"type": "a.b", "payload": {}})),
        ),
        (Method::DELETE, endpoint_path.clone(), None),
    ];
    for (method, path, body) in writes {
        let context = format!("{method} {path}");
        let answer = app
            .send(
                method,
                &path,
                Some(&admin),
                &[],
                body.as_ref().map(crate::common::to_bytes),
            )
            .await;
        answer.assert_problem(403, &context);
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(OPERATOR_TENANT) && detail.contains("HOOKRELAY_ALERT_URL"),
            "{context}: the detail must say why: {}",
            answer.body
        );
    }
    // Another tenant's key learns nothing about it.
    let (_, key) = app.create_tenant("acme").await;
    app.post(&key, &format!("{endpoint_path}/disable"), &json!({}))
        .await
        .assert_problem(404, "a tenant key");

    let mut after_view = app.get_json(&admin, &endpoint_path).await;
    after_view["stats"] = before_view["stats"].clone();
    assert_eq!(after_view, before_view, "the operator endpoint changed");
    let mut after_rows = row_counts(&app);
    after_rows.retain(|(table, _)| *table != "tenants");
    let mut expected = before_rows;
    expected.retain(|(table, _)| *table != "tenants");
    assert_eq!(after_rows, expected, "refused writes wrote rows");
}

async fn start_up_restores_the_operator_endpoint_whatever_happened_to_it(db: TestDb) {
    let alerts = Receiver::start();
    let secret = random_secret();
    let configure = |settings: &mut hookrelay::config::Settings| {
        settings.alert_url = Some(alerts.url());
        settings.alert_secret = Some(secret.clone());
    };
    let endpoint_path = format!("/v1/tenants/{OPERATOR_TENANT}/endpoints/{OPERATOR_ENDPOINT}");
    let first = RestartableApp::start(db.url(), configure).await;
    let configured = first
        .app
        .get_json(&first.app.admin_key, &endpoint_path)
        .await;
    let secret_path = format!("{endpoint_path}/secret");
    let shown = |view: Value| view["secret"].clone();
    assert_eq!(
        shown(first.app.get_json(&first.app.admin_key, &secret_path).await),
        json!(secret)
    );
    first.stop().await;

    // What an older version's API (or a hand edit) could leave behind.
    db.execute_sql(&format!(
        "UPDATE endpoints SET status = 'disabled', disabled_reason = 'manual', \
             disabled_at = 1, url = 'http://127.0.0.1:9/elsewhere', secret = '{}', \
             retry_schedule = '[]', headers = '{{\"X-Extra\":\"1\"}}' \
             WHERE id = '{OPERATOR_ENDPOINT}'",
        random_secret()
    ));
    let second = RestartableApp::start(db.url(), configure).await;
    let restored = second
        .app
        .get_json(&second.app.admin_key, &endpoint_path)
        .await;
    for field in ["url", "status", "retry_schedule", "headers", "disabled_at"] {
        assert_eq!(restored[field], configured[field], "{field}: {restored}");
    }
    assert_eq!(
        shown(
            second
                .app
                .get_json(&second.app.admin_key, &secret_path)
                .await
        ),
        json!(secret),
        "the configured secret is restored"
    );
    assert_eq!(restored["status"], json!("active"), "{restored}");
    second.stop().await;

    db.execute_sql(&format!(
        "DELETE FROM endpoints WHERE id = '{OPERATOR_ENDPOINT}'"
    ));
    let third = RestartableApp::start(db.url(), configure).await;
    let recreated = third
        .app
        .get_json(&third.app.admin_key, &endpoint_path)
        .await;
    for field in ["url", "status"] {
        assert_eq!(recreated[field], configured[field], "{field}: {recreated}");
    }
    assert_eq!(
        shown(third.app.get_json(&third.app.admin_key, &secret_path).await),
        json!(secret),
        "the configured secret is restored"
    );
    third.stop().await;
}
