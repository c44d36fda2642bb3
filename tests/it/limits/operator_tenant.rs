//! The operator's tenant, which holds the alert endpoint: readable by the
//! admin, written by nobody through the API, and restored at every start
//! whatever happened to it in the database.

use super::row_counts;
use crate::common::{
    random_secret, spawn_app_with, to_bytes, Receiver, RestartableApp, TestApp, TestDb,
};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    the_operator_tenant_can_be_read_not_written,
    start_up_restores_the_operator_endpoint_whatever_happened_to_it,
);

const OPERATOR_TENANT: &str = "hookrelay:operator";
const OPERATOR_ENDPOINT: &str = "ep_operator_alerts";

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
                body.as_ref().map(to_bytes),
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
