//! Prometheus metrics (issue 19): what a scrape shows after real
//! deliveries, who may scrape, and the address without a key.

use std::time::Duration;

use crate::common::{
    quiet, spawn_app_with, spawn_app_with_endpoint, wait_until, TestApp, TestDb, ADMIN_KEY,
    DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(
    a_scrape_counts_deliveries_refusals_alerts_and_status_changes,
    metrics_on_the_api_address_take_the_admin_key,
    the_metrics_address_serves_metrics_alone_without_a_key,
);

/// The stored gauges are read again at most every 5 s.
const GAUGE_REFRESH: Duration = Duration::from_secs(12);

async fn scrape(url: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("scrape /metrics");
    let status = response.status();
    (status, response.text().await.expect("the scrape's body"))
}

async fn scrape_app(app: &TestApp) -> String {
    let (status, text) = scrape(&app.url("/metrics"), Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

/// The value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn wait_for_series(app: &TestApp, series: &str, expected: f64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = scrape_app(app).await;
        if value(&text, series) == Some(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never became {expected}:\n{text}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_scrape_counts_deliveries_refusals_alerts_and_status_changes(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_endpoint(db, 200, quiet(json!({}))).await;
    ep.publish_numbered(&app, "evt_metrics", 2).await;
    wait_until(DELIVERY_TIMEOUT, || async { receiver.count() == 2 }).await;
    let refused = app
        .publish(&ep.key, &ep.tenant, &json!({"payload": {}}))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_key = app
        .publish(
            "hrk_not_a_key",
            &ep.tenant,
            &json!({"type": "a.b", "payload": {}}),
        )
        .await;
    assert_eq!(unknown_key.status, StatusCode::UNAUTHORIZED);

    wait_for_series(
        &app,
        "hookrelay_deliveries_finished_total{outcome=\"succeeded\"}",
        2.0,
        DELIVERY_TIMEOUT,
    )
    .await;
    let text = scrape_app(&app).await;
    for (series, expected) in [
        ("hookrelay_events_accepted_total", 2.0),
        ("hookrelay_events_refused_total{reason=\"invalid\"}", 1.0),
        (
            "hookrelay_events_refused_total{reason=\"unauthorized\"}",
            1.0,
        ),
        ("hookrelay_publish_duration_seconds_count", 4.0),
        (
            "hookrelay_attempts_total{error_kind=\"none\",status_class=\"2xx\"}",
            2.0,
        ),
        ("hookrelay_attempt_duration_seconds_count", 2.0),
        ("hookrelay_publish_to_delivery_seconds_count", 2.0),
        ("hookrelay_deliveries_in_flight", 0.0),
        ("hookrelay_endpoint_actors", 1.0),
        ("hookrelay_endpoints{status=\"active\"}", 1.0),
        ("hookrelay_endpoint_breakers{state=\"closed\"}", 1.0),
        ("hookrelay_deliveries{state=\"pending\"}", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
    }
    let commits = value(&text, "hookrelay_writer_commits_total").unwrap_or_default();
    assert!(commits >= 2.0, "the writer committed: {commits}\n{text}");
    assert!(
        !text.contains(&ep.id) && !text.contains(&ep.tenant),
        "no endpoint or tenant label unless asked for:\n{text}"
    );

    // A failing receiver: 5xx attempts and an alert at the endpoint's
    // threshold; then the operator disables the endpoint, and its held
    // delivery shows in the gauges.
    receiver.set_status(500);
    ep.patch(
        &app,
        json!({"alert_thresholds": [1], "retry_schedule": [3600]}),
    )
    .await;
    ep.publish_numbered(&app, "evt_metrics_failing", 1).await;
    wait_for_series(
        &app,
        "hookrelay_alerts_total{kind=\"endpoint.failing\"}",
        1.0,
        DELIVERY_TIMEOUT,
    )
    .await;
    let text = scrape_app(&app).await;
    assert_eq!(
        value(
            &text,
            "hookrelay_attempts_total{error_kind=\"http_status\",status_class=\"5xx\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let disabled = ep.disable(&app).await;
    assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
    wait_for_series(
        &app,
        "hookrelay_endpoint_status_changes_total{by=\"api\",change=\"disabled\"}",
        1.0,
        DELIVERY_TIMEOUT,
    )
    .await;
    wait_for_series(
        &app,
        "hookrelay_endpoints{status=\"disabled\"}",
        1.0,
        GAUGE_REFRESH,
    )
    .await;
    wait_for_series(
        &app,
        "hookrelay_deliveries{state=\"held\"}",
        1.0,
        GAUGE_REFRESH,
    )
    .await;
}

async fn metrics_on_the_api_address_take_the_admin_key(db: TestDb) {
    let (_receiver, app, ep) = spawn_app_with_endpoint(db, 200, json!({})).await;
    let (status, _) = scrape(&app.url("/metrics"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(&app.url("/metrics"), Some(&ep.key)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a tenant key sees every tenant's counts"
    );
    let (status, text) = scrape(&app.url("/metrics"), Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("# TYPE hookrelay_writer_commits_total counter"),
        "{text}"
    );
}

async fn the_metrics_address_serves_metrics_alone_without_a_key(db: TestDb) {
    let port = free_port();
    let app = spawn_app_with(db, |settings| {
        settings.metrics_listen = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let (status, text) = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("hookrelay_writer_commits_total"), "{text}");
    let (status, _) = scrape(
        &format!("http://127.0.0.1:{port}/v1/tenants"),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the API is not served there");
    let (status, _) = scrape(&app.url("/metrics"), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the API's address still takes a key"
    );
}

/// A port free now on loopback (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
