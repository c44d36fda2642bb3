//! Server-side request forgery: a tenant may not aim an endpoint at the
//! service's own host, a private network or a metadata service. Non-public
//! IP literals are refused when the endpoint is saved; every destination is
//! vetted again, by address, when it is sent to. Only 127.0.0.1 ever gets
//! traffic here: every other address is refused before connecting.

use crate::common::{
    attempts_of, data_of, id_of, spawn_app_with, spawn_app_with_acme_endpoint, wait_until,
    Receiver, RestartableApp, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

backend_tests!(
    with_the_default_policy_loopback_destinations_are_blocked_when_sent,
    endpoints_aimed_at_non_public_ip_literals_are_refused_and_not_stored,
    https_only_refuses_plain_http_endpoints,
    with_loopback_allowed_delivery_to_127_0_0_1_works,
);

async fn with_the_default_policy_loopback_destinations_are_blocked_when_sent(db: TestDb) {
    let receiver = Receiver::start();
    let loopback = receiver.url();
    let destinations = [
        loopback.clone(),
        loopback.replace("127.0.0.1", "[::1]"),
        loopback.replace("127.0.0.1", "[::ffff:127.0.0.1]"),
        loopback.replace("127.0.0.1", "localhost"),
    ];
    // The IP literals cannot be saved under the default policy: they are
    // saved while loopback is allowed, and the allow-list is then removed,
    // as an operator might.
    let allowing = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = allowing.app.create_tenant("acme").await;
    for url in &destinations {
        allowing
            .app
            .create_endpoint(&key, &tenant, json!({"url": url, "retry_schedule": []}))
            .await;
    }
    allowing.stop().await;

    let strict = RestartableApp::start(db.url(), |settings| settings.allow_targets.clear()).await;
    let app = &strict.app;
    let (event, deliveries) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"invoice": "in_1"}}),
        )
        .await;
    assert_eq!(deliveries, 4);
    let event = app.get_event(&key, &tenant, &event).await;
    let delivery_ids: Vec<String> = event["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("event has no deliveries: {event}"))
        .iter()
        .map(|d| d["id"].as_str().expect("delivery id").to_owned())
        .collect();
    for delivery_id in &delivery_ids {
        let delivery = first_attempted(app, &key, &tenant, delivery_id).await;
        let attempt = &attempts_of(&delivery)[0];
        assert_eq!(attempt["error_kind"], json!("blocked"), "{delivery}");
        let message = attempt["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains("is refused: it is a loopback address"),
            "the message says why: {delivery}"
        );
        assert_eq!(attempt["status_code"], Value::Null, "{delivery}");
    }
    assert_eq!(receiver.count(), 0, "nothing reached the receiver");
    strict.stop().await;
}

/// The delivery once its first attempt is recorded.
async fn first_attempted(app: &TestApp, key: &str, tenant: &str, delivery_id: &str) -> Value {
    wait_until(DELIVERY_TIMEOUT, || async {
        let delivery = app.get_delivery(key, tenant, delivery_id).await;
        if attempts_of(&delivery).is_empty() {
            Err(format!("an attempt of {delivery_id}, last seen {delivery}"))
        } else {
            Ok(delivery)
        }
    })
    .await
}

async fn endpoint_count(app: &TestApp, key: &str, tenant: &str) -> usize {
    let page = app
        .get_json(key, &format!("/v1/tenants/{tenant}/endpoints?limit=100"))
        .await;
    data_of(&page, "endpoint page").len()
}

async fn endpoints_aimed_at_non_public_ip_literals_are_refused_and_not_stored(db: TestDb) {
    let app = spawn_app_with(db, |settings| settings.allow_targets.clear()).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/endpoints");
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://2130706433/",
        "https://192.168.1.1:8443/hook",
        "http://[fd00::1]/",
    ] {
        let response = app.post(&key, &path, &json!({"url": url})).await;
        response.assert_invalid_field("url", &format!("POST {url}"));
        let detail = response.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("is refused"), "{url}: {}", response.body);
    }
    assert_eq!(endpoint_count(&app, &key, &tenant).await, 0);

    // A name is only resolved when it is sent to (no event is published,
    // so nothing is).
    let endpoint_path = refused_url_change(
        &app,
        &key,
        &tenant,
        "http://169.254.169.254/",
        "PATCH to a link-local address",
    )
    .await;
    let stored = app.get_json(&key, &endpoint_path).await;
    assert_eq!(stored["url"], json!("https://example.com/hook"), "{stored}");
    assert_eq!(endpoint_count(&app, &key, &tenant).await, 1);
}

/// Creates an endpoint on `https://example.com/hook` and asserts that a
/// PATCH to `url` is refused naming `url`; returns the endpoint's path.
async fn refused_url_change(
    app: &TestApp,
    key: &str,
    tenant: &str,
    url: &str,
    context: &str,
) -> String {
    let endpoint = app
        .create_endpoint(key, tenant, json!({"url": "https://example.com/hook"}))
        .await;
    let path = format!("/v1/tenants/{tenant}/endpoints/{}", id_of(&endpoint));
    app.patch(key, &path, &json!({"url": url}))
        .await
        .assert_invalid_field("url", context);
    path
}

async fn https_only_refuses_plain_http_endpoints(db: TestDb) {
    let app = spawn_app_with(db, |settings| settings.https_only = true).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/endpoints");
    let response = app
        .post(&key, &path, &json!({"url": "http://example.com/hook"}))
        .await;
    response.assert_invalid_field("url", "http with HOOKRELAY_HTTPS_ONLY");
    let http = "http://example.com/hook";
    let context = "PATCH to http with HOOKRELAY_HTTPS_ONLY";
    refused_url_change(&app, &key, &tenant, http, context).await;
    assert_eq!(endpoint_count(&app, &key, &tenant).await, 1);
}

async fn with_loopback_allowed_delivery_to_127_0_0_1_works(db: TestDb) {
    let receiver = Receiver::start();
    // The test settings allow 127.0.0.0/8 and ::1/128.
    let (app, tenant, key) = spawn_app_with_acme_endpoint(db, receiver.url()).await;
    let event = app
        .publish_event(&key, &tenant, "invoice.paid", json!({}))
        .await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let delivery_id = app.single_delivery_id(&key, &tenant, &event).await;
    app.wait_for_delivery_state(&key, &tenant, &delivery_id, "succeeded", DELIVERY_TIMEOUT)
        .await;
}

#[test]
fn an_invalid_allow_list_stops_the_service_at_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("hookrelay.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("HOOKRELAY_LISTEN", "127.0.0.1:0")
        .env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY)
        .env("HOOKRELAY_ALLOW_TARGETS", "127.0.0.0/8,localhost")
        .stdin(Stdio::null())
        .output()
        .expect("run the hookrelay binary");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allow-targets"), "{stderr}");
}
